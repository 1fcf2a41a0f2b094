"""Config options against the oracle: one small checkpoint per option value
(tests/gen_fixtures.py VARIANTS: layer_norm_epsilon 0.1, each of the 14
activation names src/config.c accepts (transformers 5.24's ACT2FN accepts the
same 14: gelu_pytorch_tanh and gelu_python_tanh are its GELUTanh, swish its
SiLU, gelu_python its GELUActivation), scale_attn_weights false,
scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn), each compared with
transformers' AutoModelForCausalLM (float32, eager attention: the only
implementation that takes the reorder_and_upcast_attn path) at every position
of a full-context prompt, max |diff| printed, tolerance 1e-4.

Each variant changes one key from the defaults by enough that ignoring the key
or mapping a name to another function moves the logits by far more than the
tolerance; test_variant_is_not_the_default checks that with the oracle."""
import functools

import numpy as np
import pytest

import gen_fixtures
from conftest import require_oracle, run_cli
from fixtures import fixture_dir

TOL = 1e-4
VARIANTS = list(gen_fixtures.VARIANTS)


@functools.lru_cache(maxsize=None)
def oracle_model(name, config_override=None):
    import torch
    from transformers import AutoModelForCausalLM
    kw = dict(config_override) if config_override else {}
    m = AutoModelForCausalLM.from_pretrained(str(fixture_dir(name)), dtype=torch.float32,
                                             attn_implementation="eager", **kw)
    return m.eval()


def oracle_logits(name, ids, config_override=None):
    import torch
    with torch.no_grad():
        return oracle_model(name, config_override)(torch.tensor([ids])).logits[0].float().numpy()


def ids_for(n, seed=5):
    return np.random.default_rng(seed).integers(0, 4096, n).tolist()


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_matches_transformers(name, tmp_path):
    require_oracle()
    ids = ids_for(64)
    out = tmp_path / "l.npy"
    run_cli("logits", "--model", fixture_dir(name), "--ids", ",".join(map(str, ids)),
            "--npy", out, check=True)
    ours = np.load(out)
    ref = oracle_logits(name, ids)
    assert ours.shape == ref.shape == (64, 4096)
    diff = float(np.abs(ours - ref).max())
    print(f"{name} ({gen_fixtures.VARIANTS[name]}) T=64: max |ours - transformers| = "
          f"{diff:.3g} (tol {TOL})")
    assert diff <= TOL


# The default each variant's key replaces (activation variants: gelu_new,
# except that the tanh approximations, gelu_new's aliases and gelu_fast, which
# is the same formula, are compared with exact gelu instead).
def _default_of(name):
    cfg = dict(gen_fixtures.VARIANTS[name])
    if "activation_function" in cfg:
        a = cfg["activation_function"]
        return {"activation_function": "gelu" if a in ("gelu_new", "gelu_pytorch_tanh",
                                                       "gelu_python_tanh", "gelu_fast") else "gelu_new"}
    defaults = {"layer_norm_epsilon": 1e-5, "scale_attn_weights": True,
                "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False}
    return {k: defaults[k] for k in cfg}


# reorder_and_upcast_attn only reorders float32 arithmetic: nothing to tell apart
@pytest.mark.parametrize("name", [n for n in VARIANTS if "reorder" not in n])
def test_variant_is_not_the_default(name):
    """The oracle itself gives logits far (> 10x the tolerance) from those of
    the same weights with the key left at its default (or, for an activation,
    its nearest other function): a test above that passes cannot pass with
    the key ignored or the name mapped to that function."""
    require_oracle()
    ids = ids_for(64)
    a = oracle_logits(name, ids)
    b = oracle_logits(name, ids, tuple(_default_of(name).items()))
    d = float(np.abs(a - b).max())
    print(f"{name}: max |with key - with default {_default_of(name)}| = {d:.3g}")
    assert d > 10 * TOL
