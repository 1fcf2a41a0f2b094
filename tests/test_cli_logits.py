"""`logitscope logits`: the table, --pos, --json and --npy agree with each
other (no oracle needed here; see test_oracle_logits.py for transformers)."""
import json

import numpy as np

from conftest import run_cli
from fixtures import fixture_dir

IDS = "464,2068,7586,21831,18045"


def npy_of(tmp_path, ids=IDS, name="tiny"):
    out = tmp_path / "l.npy"
    run_cli("logits", "--model", fixture_dir(name), "--ids", ids, "--npy", out, check=True)
    return np.load(out)


def test_npy_shape_and_dtype(tmp_path):
    a = npy_of(tmp_path)
    assert a.dtype == np.float32 and a.shape == (5, 50257)
    assert np.isfinite(a).all()


def test_table_matches_npy(tmp_path):
    a = npy_of(tmp_path)
    p = run_cli("logits", "--model", fixture_dir("tiny"), "--ids", IDS, check=True)
    lines = p.stdout.splitlines()
    assert lines[0] == "logits shape [5, 50257]"
    rows = [l.split() for l in lines[2:]]
    assert len(rows) == 5
    for t, r in enumerate(rows):
        assert int(r[0]) == t and int(r[1]) == int(IDS.split(",")[t])
        assert int(r[2]) == int(a[t].argmax())
        assert abs(float(r[3]) - float(a[t].max())) < 1e-5
        assert abs(float(r[4]) - float(a[t].astype(np.float64).sum())) < 1e-3


def test_json_and_pos(tmp_path):
    a = npy_of(tmp_path)
    p = run_cli("logits", "--model", fixture_dir("tiny"), "--ids", IDS, "--json", "--pos", "-1",
                check=True)
    j = json.loads(p.stdout)
    assert j["shape"] == [5, 50257]
    assert len(j["positions"]) == 1
    r = j["positions"][0]
    assert r["pos"] == 4 and r["id"] == 18045 and r["argmax"] == int(a[4].argmax())
    assert abs(r["logit"] - float(a[4].max())) < 1e-5
    p2 = run_cli("logits", "--model", fixture_dir("tiny"), "--ids", IDS, "--json", "--pos", "2",
                 check=True)
    assert json.loads(p2.stdout)["positions"][0]["pos"] == 2


def test_single_token_and_full_context(tmp_path):
    assert npy_of(tmp_path, ids="50256").shape == (1, 50257)
    assert npy_of(tmp_path, ids=",".join(["7"] * 64)).shape == (64, 50257)


def test_text_input_uses_tokenizer(tmp_path):
    a = npy_of(tmp_path, ids="464,2068,7586")
    out = tmp_path / "t.npy"
    run_cli("logits", "--model", fixture_dir("tiny"), "--text", "The quick brown", "--npy", out,
            check=True)
    assert np.array_equal(np.load(out), a)


def test_bad_flags():
    d = fixture_dir("tiny")
    for args, needle in [
        (["--pos", "5"], "--pos"),
        (["--pos", "-6"], "--pos"),
        (["--pos", "x"], "--pos"),
        (["--frob"], "--frob"),
        (["extra"], "exactly one of TEXT/--text or --ids"),
    ]:
        p = run_cli("logits", "--model", d, "--ids", IDS, *args)
        assert p.returncode != 0 and p.stderr.count("\n") == 1 and needle in p.stderr, p.stderr
    p = run_cli("logits", "--model", d)
    assert p.returncode != 0 and "--text or --ids" in p.stderr
    p = run_cli("logits", "--help")
    assert p.returncode == 0 and "--npy" in p.stdout
