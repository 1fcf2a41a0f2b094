"""The oracle at full size: the 124M-shaped checkpoint (GPT-2's real shape:
12 layers, 12 heads, 768 wide, 1,024 positions; random weights written by
tests/gen_fixtures.py, 525 MB, made on first use) against transformers'
AutoModelForCausalLM in float32:

- every position of a full 1,024-token context, max |diff| printed, within
  1e-4;
- the logits of cached decode steps (`generate`, one position per step on
  the KV cache, captured at hook_logits) at the end of the context, against
  transformers' logits of the same positions, and the greedy tokens.

The context is long enough that the attention of the last rows spans 1,000+
keys and positions reach the end of wpe."""
import functools

import numpy as np

from conftest import require_oracle, run_cli
from fixtures import fixture_dir

NAME = "gpt2-124m"
TOL = 1e-4
N_CTX = 1024


@functools.lru_cache(maxsize=None)
def oracle():
    import torch
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(str(fixture_dir(NAME)), dtype=torch.float32).eval()


def oracle_logits(ids):
    import torch
    with torch.no_grad():
        return oracle()(torch.tensor([ids])).logits[0].float().numpy()


def ids_of(n, seed):
    return np.random.default_rng(seed).integers(0, 50257, n).tolist()


def test_full_context_matches_transformers(tmp_path):
    require_oracle()
    ids = ids_of(N_CTX, seed=1024)
    out = tmp_path / "l.npy"
    run_cli("logits", "--model", fixture_dir(NAME), "--ids", ",".join(map(str, ids)), "--npy", out,
            check=True)
    ours = np.load(out)
    ref = oracle_logits(ids)
    assert ours.shape == ref.shape == (N_CTX, 50257)
    d = np.abs(ours - ref).max(-1)
    print(f"{NAME} T={N_CTX}: max |ours - transformers| = {d.max():.3g} (tol {TOL}); first 64 "
          f"positions {d[:64].max():.3g}, last 64 {d[-64:].max():.3g}")
    assert d.max() <= TOL
    assert (ours.argmax(-1) == ref.argmax(-1)).all()


def test_cached_decode_logits_match_transformers(tmp_path):
    """A 1,000-token prompt, then 24 greedy steps on the KV cache: the logits
    of each step (captured at hook_logits) are transformers' at that
    position, and the tokens its argmaxes."""
    import json
    require_oracle()
    n_prompt, n_new = N_CTX - 24, 24
    ids = ids_of(n_prompt, seed=1000)
    npz = tmp_path / "steps.npz"
    p = run_cli("generate", "--model", fixture_dir(NAME), "--ids", ",".join(map(str, ids)),
                "--max-new-tokens", n_new, "--no-stop", "--json", "--cache", "hook_logits",
                "--cache-out", npz, check=True)
    new = json.loads(p.stdout)["new_ids"]
    assert len(new) == n_new
    rows = np.load(npz)["hook_logits"]  # the prompt's rows, then one row per decode step
    steps = rows[-(n_new - 1):]          # positions n_prompt .. n_prompt + n_new - 2
    ref = oracle_logits(ids + new)
    want = ref[n_prompt:n_prompt + n_new - 1]
    d = float(np.abs(steps - want).max())
    print(f"{NAME}: {n_new - 1} cached decode steps after {n_prompt} tokens: max |ours - "
          f"transformers| = {d:.3g} (tol {TOL})")
    assert d <= TOL
    assert new == ref[n_prompt - 1:n_prompt + n_new - 1].argmax(-1).tolist()
