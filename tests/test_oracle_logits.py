"""Logits against the oracle: transformers' AutoModelForCausalLM loads the same
generated folders in float32 and every position's logits must agree with
`logitscope logits --npy` within 1e-4 (max |diff| printed), for prompts of 1
token, a few tokens and the full context, on every fixture variant."""
import functools

import numpy as np
import pytest

from conftest import require_oracle, run_cli
from fixtures import NAMES, fixture_dir

TOL = 1e-4


@functools.lru_cache(maxsize=None)
def oracle_model(name):
    import torch
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(str(fixture_dir(name)), dtype=torch.float32)
    return m.eval()


def oracle_logits(name, ids):
    import torch
    with torch.no_grad():
        return oracle_model(name)(torch.tensor([ids])).logits[0].float().numpy()


def our_logits(name, ids, tmp_path):
    out = tmp_path / "logits.npy"
    run_cli("logits", "--model", fixture_dir(name), "--ids", ",".join(map(str, ids)),
            "--npy", out, check=True)
    return np.load(out)


def prompt(n, seed):
    return np.random.default_rng(seed).integers(0, 50257, n).tolist()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 5, 64])
def test_logits_match_transformers(name, n, tmp_path):
    require_oracle()
    ids = prompt(n, seed=n)
    ours = our_logits(name, ids, tmp_path)
    ref = oracle_logits(name, ids)
    assert ours.shape == ref.shape == (n, 50257)
    diff = float(np.abs(ours - ref).max())
    e = np.exp(ref - ref.max(-1, keepdims=True))
    top = float((e.max(-1) / e.sum(-1)).mean())
    print(f"{name} T={n}: max |ours - transformers| = {diff:.3g} (tol {TOL}); "
          f"mean top prob ~ {top:.2f}")
    assert diff <= TOL
    assert (ours.argmax(-1) == ref.argmax(-1)).all()


def test_fixtures_are_peaked():
    """The oracle's next-token distributions are far from uniform."""
    require_oracle()
    import torch
    ids = prompt(64, seed=64)
    p = torch.softmax(torch.tensor(oracle_logits("tiny", ids)), -1).max(-1).values
    print(f"tiny: median top prob {p.median():.2f}, min {p.min():.2f}")
    assert p.median() > 0.3
