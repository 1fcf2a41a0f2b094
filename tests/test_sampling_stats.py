"""Statistical checks of `logitscope sample` against the oracle's
distribution (torch softmax of transformers' logits on a fixture): 100,000
draws with replacement agree with the probabilities (chi-square, p > 0.001),
also after transformers' warpers; draws without replacement agree with
sequential sampling without replacement (ordered triples, chi-square). The
figures are printed (pytest -s)."""
import collections
import itertools
import json

import numpy as np
import pytest

from conftest import require_oracle, run_cli
from fixtures import fixture_dir
from test_oracle_logits import oracle_model

P_MIN = 1e-3
IDS = [464, 2068, 7586, 21831, 18045, 625, 262]


def oracle_probs(temperature=1.0, top_k=0, top_p=1.0):
    """Next-token probabilities after IDS (float64), after transformers'
    warpers as generate() orders them."""
    import torch
    from transformers.generation.logits_process import (TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)
    with torch.no_grad():
        scores = oracle_model("tiny")(torch.tensor([IDS])).logits[:, -1].float()
    ids = torch.tensor([IDS])
    if temperature != 1.0:
        scores = TemperatureLogitsWarper(temperature)(ids, scores)
    if top_k:
        scores = TopKLogitsWarper(top_k)(ids, scores)
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(ids, scores)
    return torch.softmax(scores[0].double(), -1).numpy()


def chi_square(counts, probs, n):
    """Pearson's test over the categories with expected count >= 5, the rest
    pooled into one bin. Returns (chi2, dof, p, bins)."""
    from scipy.stats import chisquare
    exp = probs * n
    big = exp >= 5
    obs = [counts[i] for i in np.flatnonzero(big)]
    e = list(exp[big])
    rest_o, rest_e = n - sum(obs), n - sum(e)
    if rest_e > 0:
        obs.append(rest_o)
        e.append(rest_e)
    e = np.array(e) * (sum(obs) / sum(e))  # exact totals for scipy
    chi2, p = chisquare(obs, e)
    return float(chi2), len(obs) - 1, float(p), len(obs)


def sample(*args):
    p = run_cli("sample", "--model", fixture_dir("tiny"), "--ids", ",".join(map(str, IDS)),
                *args, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("warp", [{}, {"temperature": 2.0, "top_k": 40, "top_p": 0.9}],
                         ids=["softmax", "t2-k40-p0.9"])
def test_draws_with_replacement_follow_softmax(warp):
    require_oracle()
    n = 100_000
    args = ["-n", n, "--replacement", "--seed", 2024]
    for k, v in warp.items():
        args += ["--" + k.replace("_", "-"), v]
    o = sample(*args)
    probs = oracle_probs(**warp)
    counts = collections.Counter(o["ids"])
    assert sum(counts.values()) == n
    assert all(probs[i] > 0 for i in counts), "a token outside the oracle's support was drawn"
    chi2, dof, p, bins = chi_square(counts, probs, n)
    print(f"{n} draws with replacement ({warp or 'plain softmax'}): chi2 = {chi2:.1f}, "
          f"dof = {dof}, p = {p:.3f} over {bins} bins (support {int((probs > 0).sum())})")
    assert p > P_MIN


def test_draws_without_replacement_are_sequential():
    """Ordered triples drawn without replacement from 5 tokens (top-k 5 at
    temperature 2) have P(a, b, c) = p_a * p_b / (1 - p_a) * p_c / (1 - p_a - p_b)."""
    require_oracle()
    trials = 20_000
    o = sample("-n", 3, "--top-k", 5, "--temperature", 2, "--trials", trials, "--seed", 99)
    probs = oracle_probs(temperature=2.0, top_k=5)
    support = [int(i) for i in np.flatnonzero(probs > 0)]
    assert len(support) == 5
    triples = collections.Counter(tuple(t) for t in o["trials"])
    assert sum(triples.values()) == trials
    assert all(len(set(t)) == 3 and set(t) <= set(support) for t in triples)
    outcomes = list(itertools.permutations(support, 3))
    exp = np.array([probs[a] * probs[b] / (1 - probs[a]) * probs[c] / (1 - probs[a] - probs[b])
                    for a, b, c in outcomes])
    counts = [triples.get(t, 0) for t in outcomes]
    chi2, dof, p, bins = chi_square(dict(enumerate(counts)), exp, trials)
    print(f"{trials} draws of 3 without replacement from 5 tokens "
          f"(p = {np.round(probs[support], 3).tolist()}): ordered triples chi2 = {chi2:.1f}, "
          f"dof = {dof}, p = {p:.3f} over {bins} bins")
    assert p > P_MIN
    # and not the with-replacement distribution on the first two draws
    first = collections.Counter(t[0] for t in o["trials"])
    chi2f, doff, pf, _ = chi_square(first, probs, trials)
    print(f"first draws vs p: chi2 = {chi2f:.1f}, dof = {doff}, p = {pf:.3f}")
    assert pf > P_MIN
