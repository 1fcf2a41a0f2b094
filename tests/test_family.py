"""The whole GPT-2 family and `logitscope arch`, against the oracle:
- checkpoints with the widths and head counts of distilgpt2, gpt2-medium,
  gpt2-large (BF16) and gpt2-xl (F16, "transformer." names), few layers
  (tests/gen_fixtures.py FAMILY): logits within 1e-4 of transformers in float32;
- a checkpoint written by transformers' own save_pretrained loads and matches;
- a folder with only pytorch_model.bin gets the message that says how to convert;
- `arch` prints the module tree exactly as print(model) and the parameter
  count as sum(p.numel() for p in model.parameters())."""
import functools
import json

import numpy as np
import pytest

from conftest import require_oracle, run_cli
from fixtures import NAMES, fixture_dir
from gen_fixtures import FAMILY

TOL = 1e-4


@functools.lru_cache(maxsize=2)
def oracle(path):
    import torch
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


def compare_logits(path, ids, tmp_path, label):
    import torch
    out = tmp_path / "logits.npy"
    run_cli("logits", "--model", path, "--ids", ",".join(map(str, ids)), "--npy", out, check=True)
    ours = np.load(out)
    with torch.no_grad():
        ref = oracle(path)(torch.tensor([ids])).logits[0].numpy()
    assert ours.shape == ref.shape
    diff = float(np.abs(ours - ref).max())
    print(f"{label} T={len(ids)}: max |ours - transformers| = {diff:.3g} (tol {TOL}), "
          f"max |logit| {np.abs(ref).max():.3g}")
    assert diff <= TOL
    assert (ours.argmax(-1) == ref.argmax(-1)).all()


@pytest.mark.parametrize("name", list(FAMILY))
def test_family_logits_match_transformers(name, tmp_path):
    require_oracle()
    d = fixture_dir(name)
    n_vocab = json.loads((d / "config.json").read_text())["vocab_size"]
    for n in (1, 9):
        ids = np.random.default_rng(n).integers(0, n_vocab, n).tolist()
        compare_logits(d, ids, tmp_path, name)


def check_arch(path):
    """`arch` against print(model) and the parameter count."""
    p = run_cli("arch", "--model", path, check=True)
    tree, _, rest = p.stdout.partition("\n\nparameters: ")
    m = oracle(path)
    assert tree == str(m), f"ours:\n{tree}\ntransformers:\n{m}"
    n_params = sum(t.numel() for t in m.parameters())
    assert rest.split("\n", 1)[0] == f"{n_params:,}"
    return p.stdout


@pytest.mark.parametrize("name", list(NAMES) + list(FAMILY))
def test_arch_matches_pytorch_print(name):
    require_oracle()
    check_arch(fixture_dir(name))


def test_arch_json_and_hook_points():
    d = fixture_dir("tiny-bf16")
    j = json.loads(run_cli("arch", "--model", d, "--json", check=True).stdout)
    cfg = json.loads((d / "config.json").read_text())
    assert j["file"]["dtype"] == "BF16" and j["file"]["transformer_prefix"] is True
    assert j["file"]["bytes"] == (d / "model.safetensors").stat().st_size
    L, E, H = cfg["n_layer"], cfg["n_embd"], cfg["n_head"]
    names = [h["name"] for h in j["hook_points"]]
    assert len(names) == 15 * L + 4 and names[0] == "hook_embed" and names[-1] == "hook_logits"
    shapes = {h["name"]: h["shape"] for h in j["hook_points"]}
    assert shapes["blocks.0.attn.hook_q"] == ["T", H, E // H]
    assert shapes["blocks.0.attn.hook_pattern"] == [H, "T", "P"]
    assert shapes["hook_logits"] == ["T", cfg["vocab_size"]]
    assert j["parameters"]["lm_head"] == 0 and j["parameters"]["tied"] is True
    assert json.loads(run_cli("arch", "--model", fixture_dir("tiny"), "--json",
                              check=True).stdout)["file"]["dtype"] == "F32"


def test_arch_bad_input(tmp_path):
    for args in (["--model", tmp_path / "nope/"], ["--bogus"], ["extra"]):
        p = run_cli("arch", *args)
        assert p.returncode != 0 and p.stderr.count("\n") == 1, p.stderr


def test_save_pretrained_checkpoint(tmp_path):
    """transformers' save_pretrained writes "transformer."-prefixed names
    without lm_head (tied): loads and matches."""
    require_oracle()
    out = tmp_path / "saved"
    oracle(fixture_dir("tiny")).save_pretrained(out)
    from safetensors import safe_open
    with safe_open(out / "model.safetensors", "np") as f:
        keys = list(f.keys())
    assert all(k.startswith("transformer.") for k in keys), keys[:3]
    ids = [464, 2068, 7586, 21831, 18045]
    compare_logits(out, ids, tmp_path, "save_pretrained(tiny)")
    check_arch(out)


def test_pytorch_bin_only_folder(tmp_path):
    """A folder with pytorch_model.bin but no model.safetensors: one line
    saying that safetensors is needed and how to convert."""
    d = tmp_path / "bin-only"
    d.mkdir()
    (d / "config.json").write_bytes((fixture_dir("tiny") / "config.json").read_bytes())
    (d / "pytorch_model.bin").write_bytes(b"not read")
    for cmd in (["logits", "--ids", "1"], ["arch"]):
        p = run_cli(*cmd, "--model", d)
        assert p.returncode != 0 and p.stderr.count("\n") == 1, p.stderr
        assert "only pytorch_model.bin" in p.stderr and "save_pretrained" in p.stderr
