"""The CLI's batched commands give what the one-at-a-time commands give:
`score --jsonl` writes, in input order, for each line the object `score
--json` writes for that text alone (the same numbers, whatever --batch and
--threads), with an error line for each bad input while the others are
scored; `generate --n N` gives the N samples `generate --seed S+i` gives one
by one."""
import json
import random

import pytest

from conftest import run_cli
from fixtures import fixture_dir


def score_alone(model, item, *extra):
    arg = ["--text", item["text"]] if "text" in item else ["--ids", ",".join(map(str, item["ids"]))]
    p = run_cli("score", "--model", model, "--json", *arg, *extra, check=True)
    return json.loads(p.stdout)


def inputs(vocab, seed=3):
    rng = random.Random(seed)
    items = [{"text": "Hello world, this is a test"}, {"ids": [464, 2068]}]
    # lengths from 2 to past the tiny fixtures' 64 positions (sliding windows)
    for n in (5, 70, 2, 33, 150, 9, 64, 1, 17):
        items.append({"ids": [rng.randrange(vocab) for _ in range(n)]})
    items.append({"text": "The quick brown fox jumps over the lazy dog. " * 3})
    return items


BAD = [
    ('{"ids": [1, 99999999]}', "outside the vocabulary"),
    ('not json', "not a JSON object"),
    ('{"text": "x", "ids": [1]}', "exactly one of"),
    ('{"ids": [3, "a"]}', "not a whole number"),
    ('{"text": "a\\u0000b"}', "U+0000"),
    ('{"ids": [7]}', "at least 2"),
]


@pytest.mark.parametrize("name", ["tiny", "tiny-scale-inv"])
def test_score_jsonl_equals_score_json(name):
    model = fixture_dir(name)
    items = inputs(50257)
    want = [score_alone(model, it) for it in items if len(it.get("ids", [0, 0])) >= 2]
    lines = [json.dumps(it) for it in items]
    for bad, _ in BAD:  # bad lines spread through the good ones
        lines.insert(len(lines) // 2, bad)
    outs = []
    for batch, threads in ((1, 1), (3, 2), (16, 3)):
        p = run_cli("score", "--model", model, "--jsonl", "--batch", batch, "--threads", threads,
                    input="\n".join(lines) + "\n")
        assert p.returncode == 1  # some lines failed
        got = [json.loads(l) for l in p.stdout.splitlines()]
        assert len(got) == len(lines)
        outs.append(got)
        good = [g for g in got if "error" not in g]
        assert good == want  # same numbers, same order
        errors = {g["line"]: g["error"] for g in got if "error" in g}
        for bad, msg in BAD:
            lineno = lines.index(bad) + 1
            assert msg in errors[lineno], (bad, errors)
    assert outs[0] == outs[1] == outs[2]
    print(f"{name}: {len(want)} texts, score --jsonl at --batch 1/3/16 = score --json alone")


def test_score_jsonl_windows_and_flags():
    model = fixture_dir("tiny")
    items = inputs(50257, seed=9)
    items = [it for it in items if len(it.get("ids", [0, 0])) >= 2]
    want = [score_alone(model, it, "--max-length", 24, "--stride", 8) for it in items]
    p = run_cli("score", "--model", model, "--jsonl", "--batch", 4, "--max-length", 24,
                "--stride", 8, input="".join(json.dumps(it) + "\n" for it in items), check=True)
    assert [json.loads(l) for l in p.stdout.splitlines()] == want
    assert any(w["n_windows"] > 1 for w in want)
    p = run_cli("score", "--model", model, "--jsonl", input="")
    assert p.returncode == 0 and p.stdout == ""
    # usage errors exit 2, runtime errors 1 (docs/cli.md)
    for args, msg, rc in ((["--batch", "2", "--text", "hi"], "--batch goes with --jsonl", 2),
                          (["--jsonl", "--text", "hi"], "--jsonl reads stdin", 2),
                          (["--jsonl", "--batch", "0"], "--batch", 2),
                          (["--jsonl", "--max-length", "100"], "more than the context", 1)):
        p = run_cli("score", "--model", model, *args, input="")
        assert p.returncode == rc and msg in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_generate_n_equals_one_by_one():
    model = fixture_dir("tiny")
    for mode in (["--do-sample", "--top-k", "20", "--temperature", "100"], ["--greedy"]):
        p = run_cli("generate", "--model", model, "--text", "Once upon a time", "--n", 4,
                    "--seed", 11, "--max-new-tokens", 12, "--no-stop", "--json", *mode, check=True)
        got = json.loads(p.stdout)
        assert [s["seed"] for s in got["samples"]] == [11, 12, 13, 14]
        for s in got["samples"]:
            q = run_cli("generate", "--model", model, "--text", "Once upon a time", "--seed",
                        s["seed"], "--max-new-tokens", 12, "--no-stop", "--json", *mode,
                        check=True)
            one = json.loads(q.stdout)
            assert s["new_ids"] == one["new_ids"] and s["text"] == one["text"]
            assert one["prompt_ids"] == got["prompt_ids"]
        if mode[0] == "--do-sample":  # different seeds, different samples
            assert len({tuple(s["new_ids"]) for s in got["samples"]}) > 1
    p = run_cli("generate", "--model", model, "--text", "Once upon a time", "--n", 2,
                "--max-new-tokens", 3, check=True)
    assert p.stdout.count("--- sample") == 2
    for args, msg in ((["--n", "0"], "--n"), (["--n", "2", "--show-steps"], "--show-steps")):
        p = run_cli("generate", "--model", model, "--text", "hi", *args)
        assert p.returncode == 2 and msg in p.stderr and p.stderr.count("\n") == 1, p.stderr
