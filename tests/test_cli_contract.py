"""The CLI contract every command keeps (tools/common/args.c): -h/--help and
`logitscope help CMD` print the command's usage (exit 0); an unknown option,
a missing value or a stray argument is one line naming it (exit 2); every
flag the help lists is one the parser takes, and no other; the text may be
the bare argument; one message for a text that is not one token; nothing
printed before an error that could be found first; the softmax command."""
import json
import re

import numpy as np
import pytest

from conftest import run_cli
from fixtures import fixture_dir

TEXT = "After a long night of work, I really need a hot cup of"
COMMANDS = ["tokenize", "detokenize", "logits", "next", "rank", "softmax", "sample", "generate",
            "score", "lens", "plot", "arch", "download", "tour", "serve"]


@pytest.fixture(scope="module")
def tiny():
    return str(fixture_dir("tiny"))


def usage_error(p, *needles):
    assert p.returncode == 2 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("logitscope: error: "), p.stderr
    for n in needles:
        assert n in p.stderr, (n, p.stderr)


def test_global_help_lists_every_command():
    p = run_cli("--help")
    assert p.returncode == 0
    listed = re.findall(r"^  (\S+) ", p.stdout, re.M)
    assert listed == COMMANDS


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_forms_agree(cmd):
    outs = [run_cli(cmd, flag) for flag in ("-h", "--help")] + [run_cli("help", cmd)]
    for p in outs:
        assert p.returncode == 0 and p.stdout.startswith(f"usage: logitscope {cmd}"), p.stderr
    assert outs[0].stdout == outs[1].stdout == outs[2].stdout


def help_flags(cmd, *sub):
    text = run_cli(cmd, *sub, "--help").stdout
    # "  --name VALUE   help" or "  -x, --name VALUE"
    return re.findall(r"^  (?:-\w, )?--([\w-]+)( [^ ]+)?", text, re.M)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_listed_flag_is_parsed(cmd):
    """A flag in the help is never 'unknown'; one that takes a value says it
    needs one when it has none."""
    sub = ("logits",) if cmd == "plot" else ()
    flags = help_flags(cmd, *sub)
    assert ("help", "") in flags
    for name, value in flags:
        if name == "help":
            continue
        p = run_cli(cmd, *sub, f"--{name}")
        assert "unknown option" not in p.stderr, (cmd, name, p.stderr)
        if value:
            usage_error(p, f"'--{name}' needs a value")


@pytest.mark.parametrize("cmd,flag", [("tokenize", "--weights"), ("tokenize", "--threads"),
                                      ("detokenize", "--no-mmap"),
                                      ("arch", "--text"), ("detokenize", "--hook"),
                                      ("download", "--json"), ("tour", "--temperature")])
def test_options_a_command_does_not_use_are_errors(cmd, flag):
    usage_error(run_cli(cmd, flag, "1"), f"unknown option '{flag}'", f"logitscope {cmd} --help")


def test_usage_errors_exit_2(tiny):
    usage_error(run_cli("arch", "--model", tiny, "stray"), "unexpected argument 'stray'")
    usage_error(run_cli("next", "--model", tiny, "--pos"), "'--pos' needs a value")
    usage_error(run_cli("next", "--model", tiny, "--json=1"), "'--json' takes no value")
    usage_error(run_cli("next", "--model", tiny, "--top-k", "x", TEXT), "--top-k: 'x'")
    usage_error(run_cli("next", "--model", tiny, "a", "b"), "unexpected argument 'b'")
    usage_error(run_cli("next", "--model", tiny, "--threads", "1025", TEXT), "1024")
    usage_error(run_cli("frobnicate"), "unknown command")
    # a runtime error is 1
    p = run_cli("next", "--model", "/nonexistent/model", TEXT)
    assert p.returncode == 1 and p.stdout == ""


def test_no_mmap_gives_the_same_output(tiny):
    """--no-mmap reads the weights into memory: same results, any weight type."""
    for w in ("f32", "q8"):
        a = run_cli("next", "--model", tiny, TEXT, "--weights", w, "--json", check=True).stdout
        b = run_cli("next", "--model", tiny, TEXT, "--weights", w, "--no-mmap", "--json",
                    check=True).stdout
        assert a == b
    a = run_cli("score", "--model", tiny, TEXT, "--json", check=True).stdout
    assert a == run_cli("score", "--model", tiny, TEXT, "--no-mmap", "--json", check=True).stdout


def test_bare_text_is_the_text(tiny):
    a = run_cli("next", "--model", tiny, TEXT, "--json", check=True).stdout
    b = run_cli("next", "--model", tiny, "--text", TEXT, "--json", check=True).stdout
    c = run_cli("next", "--model", tiny, "--json", "--text=" + TEXT, check=True).stdout
    assert a == b == c


def test_top_k_zero_means_no_cut_everywhere(tiny):
    o = json.loads(run_cli("next", "--model", tiny, TEXT, "--top-k", "0", "--json", check=True).stdout)
    assert len(o["top"]) == o["n_vocab"]
    assert [t["rank"] for t in o["top"][:3]] == [0, 1, 2]
    p = run_cli("lens", "--model", tiny, TEXT, "--top-k", "0", "--json", check=True)
    layers = json.loads(p.stdout)["layers"]
    assert len(layers[0]["top"]) == o["n_vocab"]
    top = layers[-1]["top"][0]
    assert top["rank"] == 0 and abs(np.exp(top["logprob"]) - top["prob"]) < 1e-6
    s = json.loads(run_cli("sample", "--model", tiny, TEXT, "--top-k", "0", "--json", check=True).stdout)
    assert len(s["ids"]) == 5


def test_one_message_for_a_text_that_is_not_one_token(tiny):
    # "coffee" is two tokens; " coffee" one (6891): every flag names the spaced form
    for args in (("rank", TEXT, "--token", "coffee"),
                 ("lens", TEXT, "--plot", "/tmp/never.png", "--mark", "coffee"),
                 ("next", TEXT, "--hook", "lm_head:set:coffee=max+10")):
        p = run_cli(args[0], "--model", tiny, *args[1:])
        assert p.returncode == 1 and p.stdout == "" and p.stderr.count("\n") == 1, p.stderr
        assert "'coffee' is 2 tokens" in p.stderr, p.stderr
        assert "' coffee' with the leading space is one token, id 6891" in p.stderr, p.stderr


def test_hook_set_takes_the_quoted_form_it_prints(tiny):
    by_id = run_cli("next", "--model", tiny, TEXT, "--hook", "lm_head:set:6891=max+10", "--json",
                    check=True).stdout
    quoted = run_cli("next", "--model", tiny, TEXT, "--hook", "lm_head:set:' coffee'=max+10", "--json",
                     check=True).stdout
    assert by_id == quoted and json.loads(quoted)["argmax"]["id"] == 6891


def test_no_output_before_an_error_found_after_the_run(tiny):
    p = run_cli("next", "--model", tiny, "The quick brown", "--hook", "blocks.1.hook_mlp_out@5:zero")
    assert p.returncode == 1 and p.stdout == "" and "selected nothing" in p.stderr, p.stderr
    p = run_cli("tour", "--model", tiny, "--max-new-tokens", "60")
    assert p.returncode == 1 and p.stdout == "" and "context of 64" in p.stderr, p.stderr


def test_generate_and_tour_check_hook_positions_before_streaming(tiny):
    """generate and tour stream their output: a --hook whose positions select
    nothing in the run they are about to make is reported before the first
    line; the last position the run feeds is still accepted."""
    n = len(json.loads(run_cli("tokenize", "--model", tiny, TEXT, "--json", check=True).stdout)["ids"])
    gen = ("generate", "--model", tiny, TEXT, "--greedy", "--max-new-tokens", "3")
    last = n + 3 - 2  # the prompt's positions, then each new token but the last is fed
    ok = run_cli(*gen, "--hook", f"blocks.1.hook_mlp_out@{last}:zero")
    assert ok.returncode == 0 and ok.stdout.strip(), ok.stderr
    for args in (gen + ("--hook", f"blocks.1.hook_mlp_out@{last + 1}:zero"),
                 # the logits run only on the prompt's last position and on new ones
                 gen + ("--hook", "hook_logits@0:zero"),
                 ("tour", "--model", tiny, "--max-new-tokens", "5", "--steps", "5",
                  "--hook", "blocks.1.hook_mlp_out@200:zero")):
        p = run_cli(*args)
        assert p.returncode == 1 and p.stdout == "" and p.stderr.count("\n") == 1, (args, p.stderr)
        assert "select nothing in this run" in p.stderr, p.stderr
    p = run_cli("tour", "--model", tiny, "--max-new-tokens", "5", "--steps", "5",
                "--hook", "hook_logits@0:zero")
    assert p.returncode == 1 and p.stdout == "", p.stderr


def test_json_vocabulary(tiny):
    n = json.loads(run_cli("next", "--model", tiny, TEXT, "--json", check=True).stdout)
    r = json.loads(run_cli("rank", "--model", tiny, TEXT, "--token", " coffee", "--json",
                           check=True).stdout)
    lg = json.loads(run_cli("logits", "--model", tiny, TEXT, "--json", check=True).stdout)
    assert n["pos"] == r["pos"] == lg["positions"][-1]["pos"]
    assert isinstance(n["input"]["token"], str) and isinstance(r["token"], str)
    assert n["logit_sum"] == pytest.approx(lg["positions"][-1]["logit_sum"], rel=1e-6)
    g = json.loads(run_cli("generate", "--model", tiny, TEXT, "--max-new-tokens", "3", "--show-steps",
                           "--json", check=True).stdout)
    assert len(g["steps"]) == 3 and g["steps"][-1] == g["text"]


def test_softmax_direct_and_stable(tiny, tmp_path):
    npy = tmp_path / "l.npy"
    run_cli("logits", "--model", tiny, TEXT, "--npy", npy, check=True)
    x = np.load(npy)[-1].astype(np.float64)
    o = json.loads(run_cli("softmax", "--model", tiny, TEXT, "--json", check=True).stdout)
    p = np.exp(x - x.max())
    p /= p.sum()
    assert o["n_overflow"] == 0 and o["argmax"]["id"] == int(x.argmax())
    assert abs(o["argmax"]["stable_prob"] - p.max()) < 1e-6
    assert o["max_abs_diff"] < 1e-6
    # a temperature that pushes max(x) / T past float32's exp range: the direct way breaks
    t = float(x.max()) / 100.0
    o = json.loads(run_cli("softmax", "--model", tiny, TEXT, "--temperature", t, "--json",
                           check=True).stdout)
    assert o["n_overflow"] == int((x / t > 88.7228).sum()) >= 1
    assert o["direct_sum"] is None and o["max_abs_diff"] is None
    q = np.exp((x - x.max()) / t)
    assert abs(o["argmax"]["stable_prob"] - q.max() / q.sum()) < 1e-5
    text = run_cli("softmax", "--model", tiny, TEXT, "--temperature", t, check=True).stdout
    assert "overflowed to inf" in text and "NaN" in text


def test_offline_dead_ends_name_the_offline_way(tmp_path, tiny):
    env = dict(__import__("os").environ, HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_CACHE=str(tmp_path / "c"))
    env.pop("HF_HUB_OFFLINE", None)
    p = run_cli("tour", env=env)  # the default model, gpt2, with no network
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert "gpt2 is not a folder here, and as a Hub repo id: cannot reach" in p.stderr
    assert "--model DIR" in p.stderr and "gen_fixtures.py" in p.stderr
    # a mistyped relative folder is not taken for a repo id silently
    (tmp_path / "fx").mkdir()
    p = run_cli("next", "--model", "fx/tiny-typo", TEXT, env=env, cwd=tmp_path)
    assert p.returncode == 1 and "fx/tiny-typo is not a folder here (fx/ exists: mistyped?)" in p.stderr
    env["HF_HUB_OFFLINE"] = "1"
    p = run_cli("next", TEXT, env=env)
    assert p.returncode == 1 and "offline mode" in p.stderr and "--model DIR" in p.stderr


def test_cache_out_says_what_it_wrote(tiny, tmp_path):
    out = tmp_path / "c.npz"
    p = run_cli("next", "--model", tiny, TEXT, "--cache", "blocks.0.hook_mlp_out", "--cache-out", out,
                "--json", check=True)
    json.loads(p.stdout)  # stdout is still the one JSON object
    assert p.stderr == f"logitscope: wrote {out}: 1 array (blocks.0.hook_mlp_out)\n"
    assert list(np.load(out).keys()) == ["blocks.0.hook_mlp_out"]
