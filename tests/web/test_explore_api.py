"""The explorer's JSON endpoints (/v1/explore/*) against the CLI: the numbers
the page shows must be the ones `score`, `rank`, `next`, `lens` and `--hook`
runs give (tiny fixture)."""
import base64
import json
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "server"))
from conftest import run_cli  # noqa: E402
from fixtures import fixture_dir  # noqa: E402
from serverlib import serve  # noqa: E402,F401  (a fixture)

TEXT = "The quick brown fox jumps over the lazy dog, and then"


def cli_json(*args):
    out = run_cli(*args, "--model", fixture_dir("tiny"), "--json", check=True)
    return json.loads(out.stdout)


def analyze(s, **body):
    status, out = s.post("/v1/explore/analyze", {"text": TEXT, **body})
    assert status == 200, out
    return out


def test_analysis_equals_score_rank_and_next(serve):
    s = serve("--threads", "1")
    a = analyze(s, top_k=5)
    score = cli_json("score", "--text", TEXT)
    toks = a["tokens"]
    assert [t["id"] for t in toks] == score["ids"]
    assert toks[0]["logprob"] is None and toks[0]["rank"] is None
    # bit for bit: the same float32 values
    assert [t["logprob"] for t in toks[1:]] == score["token_logprobs"]
    assert a["nll"] == pytest.approx(score["nll"], rel=1e-12)
    assert a["perplexity"] == pytest.approx(score["perplexity"], rel=1e-9)
    for t in (1, 5, len(toks) - 1):
        r = cli_json("rank", "--text", TEXT, "--pos", str(t - 1), "--token-id", str(toks[t]["id"]))
        assert toks[t]["rank"] == r["rank"]
        assert toks[t]["logprob"] == r["logprob"]
    nxt = cli_json("next", "--text", TEXT, "--pos", "3", "--top-k", "5")
    assert [(c["id"], c["logit"], c["logprob"]) for c in toks[3]["next"]["top"]] == \
        [(c["id"], c["logit"], c["logprob"]) for c in nxt["top"]]
    assert [c["text"] for c in toks[3]["next"]["top"]] == [c["token"] for c in nxt["top"]]
    # the entropy of the row from the CLI's probabilities
    p = np.array([c["prob"] for c in cli_json("next", "--text", TEXT, "--pos", "3",
                                              "--top-k", "50257")["top"]], dtype=np.float64)
    h = -(p[p > 0] * np.log(p[p > 0])).sum()
    assert toks[3]["next"]["entropy"] == pytest.approx(h, abs=1e-5)


def test_hooks_equal_the_cli(serve, tmp_path):
    s = serve("--threads", "1")
    for hook in ("lm_head:set: coffee=max+2", "blocks.0.hook_mlp_out@2:zero",
                 "blocks.1.attn.hook_z[1]:scale:0.5"):
        a = analyze(s, hooks=[hook])
        score = cli_json("score", "--text", TEXT, "--hook", hook)
        assert [t["logprob"] for t in a["tokens"][1:]] == score["token_logprobs"], hook
        plain = analyze(s)
        assert plain["tokens"][3]["logprob"] != a["tokens"][3]["logprob"] or hook.startswith("blocks.0")
    # a direction: plus - minus at the point's last position, added * strength
    point = "blocks.0.hook_resid_post"
    vec = []
    for prompt in ("Love", "Hate"):
        npz = tmp_path / f"{prompt}.npz"
        run_cli("logits", "--model", fixture_dir("tiny"), "--text", prompt, "--cache", point,
                "--cache-out", npz, check=True)
        vec.append(np.load(npz)[point][-1])
    np.save(tmp_path / "dir.npy", (vec[0] - vec[1]).astype(np.float32))
    a = analyze(s, direction={"point": point, "plus": "Love", "minus": "Hate", "strength": 3,
                              "positions": "-1"})
    score = cli_json("score", "--text", TEXT, "--hook", f"{point}@-1:add:{tmp_path / 'dir.npy'}*3")
    assert [t["logprob"] for t in a["tokens"][1:]] == score["token_logprobs"]


def test_lens_attention_logits_generate(serve, tmp_path):
    s = serve("--threads", "1")
    status, lens = s.post("/v1/explore/lens", {"text": TEXT})
    assert status == 200, lens
    n = len(lens["layers"][0]["top_id"])
    for pos in (2, n - 1):
        cli = cli_json("lens", "--text", TEXT, "--pos", str(pos), "--top-k", "1")
        assert [ly["top_id"][pos] for ly in lens["layers"]] == [ly["top"][0]["id"] for ly in cli["layers"]]
        assert [ly["top_prob"][pos] for ly in lens["layers"]] == \
            pytest.approx([ly["top"][0]["prob"] for ly in cli["layers"]], rel=1e-5)
    # the final layer is the model (float32 log-softmax against double: ~1e-8)
    assert lens["layers"][-1]["kl"] == pytest.approx([0] * n, abs=1e-6)
    assert lens["layers"][0]["next_rank"][-1] is None
    status, part = s.post("/v1/explore/lens", {"text": TEXT, "pos0": 2, "n_pos": 3})
    assert status == 200 and part["pos0"] == 2 and part["n_pos"] == 3
    for key in ("top_id", "top_prob", "next_rank", "kl"):
        assert [ly[key] for ly in part["layers"]] == [ly[key][2:5] for ly in lens["layers"]], key

    # a text longer than one request's window: read in windows, the same numbers
    long_text = " ".join(["one two three four five six seven"] * 8)
    n_long = len(cli_json("tokenize", "--text", long_text)["ids"])
    W = json.loads(s.get("/v1/explore/model")[1])["max_lens_positions"]
    assert W < n_long <= 64, (W, n_long)
    status, err = s.post("/v1/explore/lens", {"text": long_text})
    assert status == 400 and f"at most {W} positions" in err["error"]["message"], err
    status, err = s.post("/v1/explore/lens", {"text": long_text, "n_pos": W + 1})
    assert status == 400 and "'n_pos'" in err["error"]["message"], err
    windows = []
    for pos0 in range(0, n_long, W):
        status, w = s.post("/v1/explore/lens", {"text": long_text, "pos0": pos0, "n_pos": W})
        assert status == 200 and w["n_pos"] == min(W, n_long - pos0), w
        windows.append(w)
    for pos in (0, W - 1, W, n_long - 1):
        w = windows[pos // W]
        cli = cli_json("lens", "--text", long_text, "--pos", str(pos), "--top-k", "1")
        assert [ly["top_id"][pos - w["pos0"]] for ly in w["layers"]] == \
            [ly["top"][0]["id"] for ly in cli["layers"]], pos

    status, att = s.post("/v1/explore/attention", {"text": TEXT, "layer": 1})
    assert status == 200, att
    H, T = att["n_head"], att["n_tokens"]
    pat = np.frombuffer(base64.b64decode(att["pattern_f32"]), dtype="<f4").reshape(H, T, T)
    run_cli("logits", "--model", fixture_dir("tiny"), "--text", TEXT, "--cache",
            "blocks.1.attn.hook_pattern", "--cache-out", tmp_path / "c.npz", check=True)
    np.testing.assert_array_equal(pat, np.load(tmp_path / "c.npz")["blocks.1.attn.hook_pattern"])

    # the logits row: after another text, after a hooked run of the same text
    # and after the same text's analysis (the server reuses that run's logits)
    for before in ({"text": "Other words"}, {"text": TEXT, "hooks": ["lm_head:zero"]}, {"text": TEXT}):
        assert s.post("/v1/explore/analyze", before)[0] == 200
        status, lg = s.post("/v1/explore/logits", {"text": TEXT, "pos": 4})
        row = np.frombuffer(base64.b64decode(lg["logits_f32"]), dtype="<f4")
        assert int(np.argmax(row)) == cli_json("next", "--text", TEXT, "--pos", "4")["argmax"]["id"]
    status, lg = s.post("/v1/explore/logits", {"text": TEXT, "pos": 4})
    row = np.frombuffer(base64.b64decode(lg["logits_f32"]), dtype="<f4")
    nxt = cli_json("next", "--text", TEXT, "--pos", "4", "--top-k", "3")
    assert [float(row[c["id"]]) for c in nxt["top"]] == [c["logit"] for c in nxt["top"]]
    assert int(np.argmax(row)) == nxt["argmax"]["id"]

    gen = cli_json("generate", "--text", TEXT, "--max-new-tokens", "5")
    status, g = s.post("/v1/explore/generate", {"text": TEXT, "max_new_tokens": 5})
    assert status == 200, g
    assert g["ids"] == gen["new_ids"] and g["text"] == gen["new_text"]


def test_errors_and_the_page(serve):
    s = serve("--threads", "1")
    status, out = s.post("/v1/explore/analyze", {"text": "word " * 100})
    assert status == 400 and "more than the model's context of 64" in out["error"]["message"]
    for body, msg in (({"text": TEXT, "hooks": ["nope:zero"]}, "no hook point matches 'nope'"),
                      ({"text": TEXT, "hooks": ["blocks.0.hook_mlp_out:add:/etc/passwd"]},
                       "not taken from clients"),
                      ({"text": TEXT, "hooks": ["blocks.0.hook_mlp_out:frobnicate"]}, "--hook"),
                      ({"text": TEXT, "hooks": ["lm_head@40:zero"]}, "selected nothing"),
                      ({"ids": [1, 99999999]}, "ids[1]"),
                      ({"text": TEXT, "direction": {"point": "blocks.0.hook_resid_post", "plus": "a",
                                                    "minus": "b", "positions": "-1:add:/etc/x.npy"}},
                       "'positions' must be"),
                      ({"text": TEXT, "direction": {"point": "blocks.0.attn.hook_pattern", "plus": "a",
                                                    "minus": "b"}}, "one vector per position"),
                      ({"text": ""}, "empty"),
                      ({}, "exactly one of")):
        status, out = s.post("/v1/explore/analyze", body)
        assert status == 400 and msg in out["error"]["message"], (body, out)
    status, out = s.post("/v1/explore/attention", {"text": TEXT, "layer": 9})
    assert status == 400 and "'layer'" in out["error"]["message"]
    status, headers, page = s.request("GET", "/?text=Hello")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"default-src 'self'" in page and b'src="/js/app.mjs"' in page
    status, headers, js = s.request("GET", "/js/logic.mjs")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert js == (pathlib.Path(__file__).resolve().parents[2] / "web/js/logic.mjs").read_bytes()
    assert s.request("GET", "/js/nope.mjs")[0] == 404
    # the server still answers completions afterwards
    assert s.post("/v1/completions", {"prompt": "Hi", "max_tokens": 2})[0] == 200


def test_analysis_is_the_same_at_any_thread_count(serve):
    """The per-position work is split over the server's threads: the answer
    must not depend on how (bit for bit)."""
    one = analyze(serve("--threads", "1"), top_k=7)
    for th in ("2", "3"):
        assert analyze(serve("--threads", th), top_k=7) == one, th
