"""The C logits against values committed from the oracle
(tests/expected/logits.json, written by tests/make_expected.py): correctness is
checked even where PyTorch is not installed. Tolerance 1e-4, max |diff|
printed."""
import json
import pathlib

import numpy as np
import pytest

from conftest import run_cli
from fixtures import fixture_dir

EXPECTED = json.loads((pathlib.Path(__file__).resolve().parent / "expected" / "logits.json").read_text())
TOL = 1e-4


@pytest.mark.parametrize("case", EXPECTED["cases"], ids=lambda c: f"{c['fixture']}-{len(c['ids'])}")
def test_expected_logits(case, tmp_path):
    out = tmp_path / "l.npy"
    run_cli("logits", "--model", fixture_dir(case["fixture"]), "--ids",
            ",".join(map(str, case["ids"])), "--npy", out, check=True)
    a = np.load(out).astype(np.float64)
    assert a.shape == (len(case["ids"]), 50257)
    worst = 0.0
    for t, row in enumerate(case["rows"]):
        top = np.argsort(-a[t], kind="stable")[:5]
        # the top-5 ids must agree (up to order of values within tolerance)
        assert sorted(top.tolist()) == sorted(row["top5_ids"]) or \
            abs(a[t][top[4]] - row["top5_logits"][4]) <= TOL
        worst = max(worst, float(np.abs(a[t][row["top5_ids"]] - row["top5_logits"]).max()))
        worst = max(worst, float(np.abs(a[t][case["probe_ids"]] - row["probe_logits"]).max()))
        m = a[t].max()
        lse = m + np.log(np.exp(a[t] - m).sum())
        worst = max(worst, abs(lse - row["logsumexp"]))
    print(f"{case['fixture']} ids={case['ids']}: max |ours - expected| = {worst:.3g} (tol {TOL})")
    assert worst <= TOL
