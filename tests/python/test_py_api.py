"""The Python package against the CLI on the generated fixtures (no torch):
the same logits, top-k, rank, draws, generations and scores, bit for bit
where both print full precision; the KV-cache reuse of m.logits and the
batched score_many equal a fresh run exactly."""
import json
import subprocess

import numpy as np
import pytest

import pkg_path  # noqa: F401  (before logitscope)
import logitscope
from conftest import BIN, run_cli
from fixtures import fixture_dir

TEXT = "The quick brown fox jumps over the lazy dog, and then"


@pytest.fixture(scope="module")
def m():
    with logitscope.load(fixture_dir("tiny"), threads=1) as model:
        yield model


def jcli(*args):
    p = run_cli(*args, "--json", check=True)
    return json.loads(p.stdout)


def test_load_config_repr_and_help(m):
    cfg = m.config
    assert {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "n_vocab", "n_ctx")} == \
        {"n_layer": 2, "n_head": 4, "n_embd": 32, "n_vocab": 50257, "n_ctx": 64}
    arch = run_cli("arch", "--model", fixture_dir("tiny"), check=True).stdout
    assert repr(m) + "\n" in arch  # the module tree the CLI prints as PyTorch does
    assert "threads" in logitscope.load.__doc__ and logitscope.__version__ == "0.1.0"
    assert m.hook_points[0] == "hook_embed" and m.hook_points[-1] == "hook_logits"


def test_tokenizer_matches_cli(m):
    want = jcli("tokenize", "--model", fixture_dir("tiny"), "--text", TEXT + " coffee")
    ids = m.tokenizer.encode(TEXT + " coffee")
    assert ids == want["ids"]
    assert [m.tokenizer.token(i) for i in ids] == want["tokens"]
    assert m.tokenizer.decode(ids) == TEXT + " coffee"
    assert m.tokenizer.token(6891) == " coffee"
    assert m.tokenizer.encode("<|endoftext|>") == [50256]
    assert m.tokenizer.encode("<|endoftext|>", special=False) != [50256]


def test_logits_equal_cli_npy(m, tmp_path):
    run_cli("logits", "--model", fixture_dir("tiny"), "--text", TEXT, "--npy",
            tmp_path / "l.npy", check=True)
    want = np.load(tmp_path / "l.npy")
    got = m.logits(TEXT)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got, want)
    assert np.array_equal(m.logits(m.tokenizer.encode(TEXT)), want)  # ids in, same bits


def test_prefix_reuse_is_bit_identical_and_arrays_stay_valid(m):
    ids = m.tokenizer.encode(TEXT)
    m.reset()
    first = m.logits(ids[:3])
    keep = first.copy()
    grown = [m.logits(ids[:n]) for n in range(4, len(ids) + 1)]  # one new token per call
    other = m.logits([5, 6, 7])  # diverges: runs from scratch in a new buffer
    assert np.array_equal(first, keep)  # an earlier array is never rewritten
    m.reset()
    fresh = m.logits(ids)
    assert np.array_equal(grown[-1], fresh)
    assert np.array_equal(other, m.logits([5, 6, 7]))
    with pytest.raises(ValueError):
        first[0, 0] = 1  # read-only: nobody can corrupt the cache through it


def test_next_and_rank_match_cli(m):
    d = fixture_dir("tiny")
    want = jcli("next", "--model", d, "--text", TEXT, "--top-k", "10")
    got = m.next(TEXT, k=10)
    key = "top" if "top" in want else "tokens"
    assert [t["id"] for t in got] == [t["id"] for t in want[key]]
    for g, w in zip(got, want[key]):
        assert g["logit"] == pytest.approx(w["logit"], abs=1e-5)
        assert g["prob"] == pytest.approx(w["prob"], rel=1e-5)
    r = m.rank(TEXT, " coffee")
    w = jcli("rank", "--model", d, "--text", TEXT, "--token", " coffee")
    assert (r["id"], r["rank"]) == (w["id"], w["rank"]) == (6891, w["rank"])
    assert r["logit"] == pytest.approx(w["logit"], abs=1e-5)
    assert m.rank(TEXT, 6891) == r
    top = m.next(TEXT, k=1)[0]
    assert m.rank(TEXT, top["id"])["rank"] == 0
    with pytest.raises(ValueError, match="not one"):
        m.rank(TEXT, " coffee cup")


@pytest.mark.parametrize("flags", [dict(), dict(replacement=False),
                                   dict(temperature=0.7, top_k=20),
                                   dict(top_p=0.9, seed=12345)])
def test_sample_matches_cli_seed(m, flags):
    args = ["sample", "--model", fixture_dir("tiny"), "--text", TEXT, "-n", "8",
            "--seed", str(flags.get("seed", 0))]
    if flags.get("replacement", True):
        args.append("--replacement")
    for k in ("temperature", "top_k", "top_p"):
        if k in flags:
            args += ["--" + k.replace("_", "-"), str(flags[k])]
    want = jcli(*args)["ids"]
    assert m.sample(TEXT, n=8, **flags) == want


@pytest.mark.parametrize("flags", [dict(), dict(do_sample=True, seed=7, top_k=50),
                                   dict(do_sample=True, seed=3, temperature=0.8, top_p=0.9, top_k=0,
                                        repetition_penalty=1.3)])
def test_generate_matches_cli_and_stream(m, flags):
    args = ["generate", "--model", fixture_dir("tiny"), "--text", "Once upon a time",
            "--max-new-tokens", "12"]
    if flags.get("do_sample"):
        args += ["--do-sample", "--seed", str(flags["seed"])]
    for k in ("temperature", "top_k", "top_p", "repetition_penalty"):
        if k in flags:
            args += ["--" + k.replace("_", "-"), str(flags[k])]
    want = jcli(*args)
    g = m.generate("Once upon a time", max_new_tokens=12, **flags)
    want_new = want.get("new_ids", want.get("ids"))
    assert g.new_ids == want_new[-len(g.new_ids):] and len(g.new_ids) == len(want_new)
    assert g.ids == m.tokenizer.encode("Once upon a time") + g.new_ids
    assert g.text == m.tokenizer.decode(g.ids)
    streamed = list(m.generate("Once upon a time", max_new_tokens=12, stream=True, **flags))
    assert [t.id for t in streamed] == g.new_ids
    assert [t.step for t in streamed] == list(range(len(g.new_ids)))


def test_stream_refuses_interleaved_calls(m):
    it = m.generate("Once upon a time", max_new_tokens=5, stream=True)
    next(it)
    m.logits("other text")
    with pytest.raises(RuntimeError, match="another call"):
        next(it)


def test_score_matches_cli_and_score_many_is_exact(m):
    d = fixture_dir("tiny")
    want = jcli("score", "--model", d, "--text", TEXT)
    s = m.score(TEXT)
    assert s.nll == pytest.approx(want["nll"], rel=1e-12)
    assert s.perplexity == pytest.approx(want["perplexity"], rel=1e-12)
    assert np.allclose(s.token_logprobs, want["token_logprobs"], atol=1e-6, rtol=0)
    texts = [TEXT, "Hello world, this is a test", "a b", TEXT[:20], "x " * 40,
             "Paris is the capital of France"]
    many = m.score_many(texts, batch_size=4)
    for t, got in zip(texts, many):
        assert got == m.score(t)  # bit for bit (the 80-token text: windows, alone)
    with pytest.raises(ValueError, match="at least 2"):
        m.score_many(["Hi"])


def test_softmax_and_log_softmax_are_stable():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1e30, 0.0, 1.0]], np.float32)
    p = logitscope.softmax(x)
    lp = logitscope.log_softmax(x)
    assert p.dtype == np.float32 and np.all(np.isfinite(p)) and np.allclose(p.sum(-1), 1)
    assert np.allclose(p[0], [0.09003057, 0.24472847, 0.66524096])
    assert np.all(np.isfinite(lp[0])) and np.allclose(np.exp(lp), p, atol=1e-7)
    assert np.allclose(logitscope.softmax(x, axis=0).sum(0), 1)


def test_logit_lens_last_layer_is_the_logits(m):
    lens = m.logit_lens(TEXT, pos=-1, k=5)
    assert len(lens) == m.config["n_layer"] + 1
    assert [t["id"] for t in lens[-1]["top"]] == [t["id"] for t in m.next(TEXT, k=5)]
    arr = m.logit_lens(TEXT, pos=2, return_logits=True)
    assert arr.shape == (3, m.n_vocab)
    assert np.allclose(arr[-1], m.logits(TEXT)[2], atol=1e-4)


def test_load_errors_and_offline_hub(tmp_path, monkeypatch):
    with pytest.raises(logitscope.NotFoundError):
        logitscope.load(tmp_path / "missing")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(logitscope.NotFoundError) as e:
        logitscope.load("someone/not-cached-model")
    cli = subprocess.run([str(BIN), "arch", "--model", "someone/not-cached-model"],
                         capture_output=True, text=True,
                         env={"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"})
    assert str(e.value) in cli.stderr  # the CLI's message
    with pytest.raises(ValueError):
        logitscope.load(fixture_dir("tiny"), weights="f8")


def test_load_into_memory_gives_the_same_logits(m):
    """mmap=False reads the weights into memory: the same bits as the mapped file."""
    with logitscope.load(fixture_dir("tiny"), threads=1, mmap=False) as copied:
        assert np.array_equal(copied.logits(TEXT), m.logits(TEXT))
