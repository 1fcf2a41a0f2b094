"""The inspection and generation commands (next, rank, sample, generate, score,
tour) on a generated fixture, without the oracle: output shapes, --json
fields, --ids in place of --text, determinism, and every kind of bad input
giving one line on stderr, a non-zero exit and nothing on stdout."""
import json

import pytest

from conftest import run_cli
from fixtures import fixture_dir

TEXT = "After a long night of work, I really need a hot cup of"


@pytest.fixture(scope="module")
def tiny():
    return str(fixture_dir("tiny"))


def jrun(*args):
    p = run_cli(*args, "--json")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 1, "--json prints one line"
    return json.loads(lines[0])


def test_next_json_fields(tiny):
    o = jrun("next", "--model", tiny, "--text", TEXT, "--top-k", 5)
    assert o["pos"] == o["n_tokens"] - 1
    assert len(o["top"]) == 5
    for e in o["top"]:
        assert set(e) >= {"id", "token", "logit", "prob", "logprob"}
    assert o["top"][0]["id"] == o["argmax"]["id"]
    logits = [e["logit"] for e in o["top"]]
    assert logits == sorted(logits, reverse=True)
    assert isinstance(o["logit_sum"], float)


def test_next_pos_and_ids(tiny):
    ids = jrun("tokenize", "--model", tiny, "--text", TEXT)["ids"]
    a = jrun("next", "--model", tiny, "--ids", ",".join(map(str, ids)), "--pos", 3)
    b = jrun("next", "--model", tiny, "--text", TEXT, "--pos", 3 - len(ids))  # negative: from the end
    c = jrun("next", "--model", tiny, "--ids", ",".join(map(str, ids[:4])))   # causal: same row
    assert a["pos"] == b["pos"] == c["pos"] == 3
    assert a["top"] == b["top"] == c["top"]


def test_next_table(tiny):
    p = run_cli("next", "--model", tiny, "--text", TEXT, check=True)
    assert "most likely next token" in p.stdout and "Sum of the 50257 logits" in p.stdout
    assert len([l for l in p.stdout.splitlines() if l.strip()[:1].isdigit()]) == 10


def test_rank_json_and_consistency(tiny):
    o = jrun("rank", "--model", tiny, "--text", TEXT, "--token", " coffee")
    assert o["id"] == 6891 and o["token"] == " coffee"
    assert set(o) >= {"id", "rank", "logit", "prob"}
    top = jrun("next", "--model", tiny, "--text", TEXT, "--top-k", 1)["top"][0]
    r0 = jrun("rank", "--model", tiny, "--text", TEXT, "--token-id", top["id"])
    assert r0["rank"] == 0 and r0["logit"] == top["logit"] and r0["prob"] == top["prob"]


def test_sample_json_and_seed(tiny):
    a = jrun("sample", "--model", tiny, "--text", TEXT, "-n", 5, "--seed", 7)
    b = jrun("sample", "--model", tiny, "--text", TEXT, "-n", 5, "--seed", 7)
    c = jrun("sample", "--model", tiny, "--text", TEXT, "-n", 5, "--seed", 8)
    assert a["ids"] == b["ids"] and len(a["ids"]) == 5
    assert len(set(a["ids"])) == 5, "without replacement: no repeats"
    assert a["ids"] != c["ids"]
    assert a["replacement"] is False
    d = jrun("sample", "--model", tiny, "--text", TEXT, "-n", 50, "--replacement", "--top-k", 2)
    assert len(set(d["ids"])) <= 2 and len(d["ids"]) == 50


def test_sample_threads_do_not_change_draws(tiny):
    a = jrun("sample", "--model", tiny, "--text", TEXT, "-n", 20, "--replacement", "--threads", 1)
    b = jrun("sample", "--model", tiny, "--text", TEXT, "-n", 20, "--replacement", "--threads", 2)
    assert a["ids"] == b["ids"]


def test_generate_greedy_stream_and_json(tiny):
    o = jrun("generate", "--model", tiny, "--text", TEXT, "--max-new-tokens", 6)
    assert set(o) >= {"new_ids", "text", "prompt_ids", "stop"}
    assert len(o["new_ids"]) <= 6
    p = run_cli("generate", "--model", tiny, "--text", TEXT, "--max-new-tokens", 6, check=True)
    assert p.stdout == o["text"] + "\n", "the stream is the prompt then the new tokens"
    s = run_cli("generate", "--model", tiny, "--text", TEXT, "--max-new-tokens", 3, "--show-steps",
                check=True)
    lines = s.stdout.splitlines()
    assert [l.split(":")[0] for l in lines] == ["Iteration 0", "Iteration 1", "Iteration 2"]
    assert lines[-1] == "Iteration 2:  " + jrun("generate", "--model", tiny, "--text", TEXT,
                                                 "--max-new-tokens", 3)["text"]


def test_generate_sampling_is_seeded_across_runs_and_threads(tiny):
    args = ("generate", "--model", tiny, "--text", TEXT, "--max-new-tokens", 12, "--do-sample",
            "--seed", 11, "--top-k", 0, "--temperature", 1.5)
    a = jrun(*args, "--threads", 1)
    b = jrun(*args, "--threads", 2)
    c = jrun(*args, "--threads", 2)
    assert a["new_ids"] == b["new_ids"] == c["new_ids"]
    d = jrun(*args[:-6], "--seed", 12, "--top-k", 0, "--temperature", 1.5)
    assert d["new_ids"] != a["new_ids"]


def test_generate_no_stop_runs_to_max_new_tokens(tiny):
    # stopping at <|endoftext|> itself is tested in tests/unit/test_generate.c,
    # where a hook makes eos the argmax
    o = jrun("generate", "--model", tiny, "--text", TEXT, "--max-new-tokens", 5, "--no-stop")
    assert len(o["new_ids"]) == 5 and o["stop"] == "max_new_tokens"


def test_score_json_fields(tiny):
    o = jrun("score", "--model", tiny, "--text", TEXT)
    n = o["n_tokens"]
    assert len(o["token_logprobs"]) == n - 1 == o["n_scored"]
    assert abs(o["nll"] + sum(o["token_logprobs"]) / (n - 1)) < 1e-5
    assert abs(o["perplexity"] - __import__("math").exp(o["nll"])) < 1e-6 * o["perplexity"]


def test_score_file_and_sliding_window(tiny, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text(TEXT * 12)  # about 160 tokens > the fixture's 64 positions
    o = jrun("score", "--model", tiny, "--file", f, "--stride", 16)
    assert o["n_tokens"] > 64 and o["n_windows"] > 1 and o["max_length"] == 64
    assert len(o["token_logprobs"]) == o["n_tokens"] - 1
    a = jrun("score", "--model", tiny, "--text", TEXT * 12, "--stride", 16)
    assert a["token_logprobs"] == o["token_logprobs"]
    # a window that holds everything scores each token with its full context
    short = jrun("score", "--model", tiny, "--text", TEXT)
    inwin = jrun("score", "--model", tiny, "--text", TEXT, "--max-length", 64, "--stride", 3)
    assert short["token_logprobs"] == inwin["token_logprobs"]


def test_tour_runs_the_notebook(tiny):
    p = run_cli("tour", "--model", tiny, check=True)
    for part in ("== 1. Tokens", "5th and 6th", "argmax", "sum of the", "softmax",
                 "== 4. Rank of ' coffee'", "draws without replacement", "Iteration 9:",
                 "generate(max_new_tokens=20)"):
        assert part in p.stdout, part
    o = jrun("tour", "--model", tiny)
    assert len(o["loop"]) == 10 and len(o["last"]["top"]) == 10 and len(o["samples"]["ids"]) == 5
    assert o["rank"]["token"] == " coffee"


def test_tour_numbers_are_the_other_commands(tiny):
    """Every number tour prints is what the command for that step gives."""
    o = jrun("tour", "--model", tiny)
    tok = jrun("tokenize", "--model", tiny, "--text", TEXT)
    assert o["text"] == TEXT and o["ids"] == tok["ids"] and o["tokens"] == tok["tokens"]
    assert o["n_tokens"] == len(tok["ids"])
    at5 = jrun("next", "--model", tiny, "--text", TEXT, "--pos", 5)
    assert o["position_5"]["argmax"] == at5["argmax"]["id"]
    assert o["position_5"]["logit"] == at5["argmax"]["logit"]
    assert o["position_5"]["logit_sum"] == at5["logit_sum"]
    last = jrun("next", "--model", tiny, "--text", TEXT, "--top-k", 10)
    assert o["last"]["top"] == [{k: e[k] for k in ("id", "token", "logit", "prob", "logprob")}
                                for e in last["top"]]
    assert o["last"]["logit_sum"] == last["logit_sum"]
    assert o["last"]["max_prob"] == last["top"][0]["prob"]
    assert o["last"]["max_logprob"] == last["top"][0]["logprob"]
    assert abs(o["last"]["prob_sum"] - 1) < 1e-6
    r = jrun("rank", "--model", tiny, "--text", TEXT, "--token", " coffee")
    assert o["rank"] == {k: r[k] for k in ("id", "token", "rank", "logit", "prob")}
    smp = jrun("sample", "--model", tiny, "--text", TEXT, "-n", 5, "--seed", o["samples"]["seed"])
    assert o["samples"]["ids"] == smp["ids"] and o["samples"]["tokens"] == smp["tokens"]
    for i, text in enumerate(o["loop"]):  # the greedy loop, one token per iteration
        g = jrun("generate", "--model", tiny, "--text", TEXT, "--max-new-tokens", i + 1)
        assert text == g["text"], i
    g = jrun("generate", "--model", tiny, "--text", TEXT, "--max-new-tokens", 20)
    assert o["generate"]["new_ids"] == g["new_ids"] and o["generate"]["text"] == g["text"]


BAD = [
    # (args after the command's --model, words the one-line error must contain)
    (("next", "--text", ""), "empty"),
    (("next", "--text", TEXT, "--pos", "14"), "outside the sequence of 14 tokens"),
    (("next", "--text", TEXT, "--pos", "-15"), "outside the sequence"),
    (("next", "--text", TEXT, "--pos", "x"), "--pos"),
    (("next", "--text", TEXT, "--top-k", "-1"), "--top-k: '-1' is not a whole number >= 0"),
    (("next", "--ids", "1,2,99999"), "outside the model's vocabulary"),
    (("next", "--ids", "1,,2"), "--ids"),
    (("next", "--text", TEXT, "--ids", "1"), "exactly one of TEXT/--text or --ids"),
    (("next", "--text", TEXT, "--frobnicate"), "unknown"),
    (("rank", "--text", TEXT, "--token", " coffee cup"), "is 2 tokens (6891, 6508), not one"),
    (("rank", "--text", TEXT, "--token", ""), "is 0 tokens"),
    (("rank", "--text", TEXT), "--token"),
    (("rank", "--text", TEXT, "--token-id", "50257"), "--token-id"),
    (("sample", "--text", TEXT, "-n", "60000"), "need 60000 tokens of non-zero probability; here 50257"),
    (("sample", "--text", TEXT, "-n", "5", "--top-k", "3"), "here 3 have one: use --replacement or -n 3"),
    (("sample", "--text", TEXT, "-n", "0"), "-n"),
    (("sample", "--text", TEXT, "--top-p", "0"), "--top-p: '0' is not a number in (0, 1]"),
    (("sample", "--text", TEXT, "--top-p", "1.5"), "(0, 1]"),
    (("sample", "--text", TEXT, "--temperature", "-1"), "--temperature: '-1' is not a number >= 0"),
    (("sample", "--text", TEXT, "--seed", "-3"), "--seed"),
    (("generate", "--text", TEXT, "--top-p", "2"), "(0, 1]"),
    (("generate", "--text", TEXT, "--temperature", "-0.5"), ">= 0"),
    (("generate", "--text", TEXT, "--greedy", "--temperature", "0.7"), "only applies when sampling"),
    (("generate", "--text", TEXT, "--greedy", "--do-sample"), "exclude each other"),
    (("generate", "--text", TEXT, "--max-new-tokens", "60"), "more than the context of 64"),
    (("generate", "--text", TEXT, "--max-new-tokens", "0"), "--max-new-tokens"),
    (("generate", "--text", TEXT, "--repetition-penalty", "0"), "--repetition-penalty"),
    (("score", "--text", "Hello"), "at least 2"),
    (("score", "--file", "/nonexistent/file.txt"), "--file /nonexistent/file.txt"),
    (("score", "--text", TEXT, "--stride", "100"), "stride 100 is longer than the window"),
    (("score", "--text", TEXT, "--max-length", "65"), "more than the context of 64"),
    (("tour", "--text", "Hi there"), "at least 6"),
    (("tour", "--token", " coffee cup"), "not one"),
]


@pytest.mark.parametrize("args,words", BAD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD])
def test_bad_input_is_one_line_error(tiny, args, words):
    p = run_cli(args[0], "--model", tiny, *args[1:])
    assert p.returncode != 0
    assert p.stdout == "", "nothing on stdout on error"
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("logitscope: error: "), p.stderr
    assert words in p.stderr, p.stderr


def test_empty_file_and_missing_model(tiny, tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("")
    p = run_cli("score", "--model", tiny, "--file", f)
    assert p.returncode != 0 and "empty" in p.stderr and p.stderr.count("\n") == 1
    p = run_cli("next", "--model", tmp_path / "nope", "--text", TEXT)
    assert p.returncode != 0 and p.stderr.count("\n") == 1


@pytest.mark.parametrize("cmd", ["next", "rank", "sample", "generate", "score", "tour"])
def test_help(cmd):
    p = run_cli(cmd, "--help")
    assert p.returncode == 0 and "usage: logitscope " + cmd in p.stdout
