"""lm-evaluation-harness against the server: `local-completions` with
tokenizer_backend=remote (our /tokenize, /detokenize, /tokenizer_info and
/v1/completions with echo + logprobs) gives the metrics lm-eval's own `hf`
backend gives on the same checkpoint, on the repo's local tasks
(lm_eval_tasks/: LAMBADA-style last word, multiple choice)."""
import json
import math
import os
import subprocess
import sys

import pytest

from conftest import ROOT, require_oracle
from fixtures import fixture_dir
from serverlib import serve  # noqa: F401

RUN = ROOT / "tests" / "server" / "lm_eval_run.py"


def lm_eval(*args):
    p = subprocess.run([sys.executable, str(RUN), *map(str, args)], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_local_completions_equals_hf(serve):
    require_oracle()
    try:
        import lm_eval as _  # noqa: F401
    except ImportError as e:
        if os.environ.get("LSC_REQUIRE_ORACLE") == "1":
            pytest.fail(f"lm_eval required but not importable: {e}")
        pytest.skip(f"lm_eval not installed: {e}")
    s = serve("--threads", "1", "--served-model-name", "tiny")
    res = lm_eval(fixture_dir("tiny"), s.url, "tiny")
    api, hf = res["local-completions"], res["hf"]
    print("metric            local-completions  hf")
    for task, m in api["metrics"].items():
        for k, v in m.items():
            if k != "name":
                print(f"{task}.{k:<12} {v!r:>20} {hf['metrics'][task][k]!r:>20}")
    # every request: the same log-likelihood within 1e-4, the same is_greedy
    max_diff, n, n_greedy = 0.0, 0, 0
    for task, docs in api["samples"].items():
        assert docs.keys() == hf["samples"][task].keys()
        for doc, resps in docs.items():
            for (ll_a, g_a), (ll_b, g_b) in zip(resps, hf["samples"][task][doc], strict=True):
                max_diff = max(max_diff, abs(ll_a - ll_b))
                assert g_a == g_b, (task, doc)
                n += 1
                n_greedy += g_a
    print(f"{n} requests, max |loglikelihood difference| = {max_diff:.3g}, {n_greedy} greedy")
    assert max_diff < 1e-4
    assert n_greedy >= 5  # the 5 texts that end with the model's greedy word
    a, b = api["metrics"], hf["metrics"]
    assert a["lsc_lambada"]["acc"] == b["lsc_lambada"]["acc"]
    assert a["lsc_choice"]["acc"] == b["lsc_choice"]["acc"]
    assert a["lsc_choice"]["acc_norm"] == b["lsc_choice"]["acc_norm"]
    # perplexity = exp(-mean log-likelihood): its log differs by at most the
    # largest per-request difference (the random model's perplexity is ~1e10)
    assert abs(math.log(a["lsc_lambada"]["perplexity"]) - math.log(b["lsc_lambada"]["perplexity"])) < 1e-4
