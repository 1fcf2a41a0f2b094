#!/usr/bin/env python3
"""Writes deterministic random GPT-2 checkpoints in the Hugging Face layout.

    python3 tests/gen_fixtures.py [--out build/fixtures] NAME...   (or --all)

Each fixture is a folder with config.json, model.safetensors (written here,
numpy only, so the header length can be odd and the data section unaligned,
like the real gpt2 file whose data starts at byte 14291) and the real GPT-2
tokenizer files copied from tests/data. Weights come from numpy's PCG64 with a
fixed seed per fixture: the output is byte-identical run to run.

Weights are scaled so that next-token distributions are peaked like a real
model's (top probability typically above 0.3), not near uniform.
"""
import argparse
import hashlib
import json
import os
import pathlib
import shutil
import struct
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"

TINY = dict(vocab_size=50257, n_embd=32, n_layer=2, n_head=4, n_positions=64)

# name -> (shape, options). Options: dtype (F32/F16/BF16), prefix (tensor
# names start with "transformer."), tied (lm_head = wte), attn_bias (write the
# h.N.attn.bias buffers like the real gpt2 file), extra config keys.
FIXTURES = {
    "tiny": (TINY, dict(seed=1, attn_bias=True)),
    "tiny-prefix": (TINY, dict(seed=2, prefix=True)),
    "tiny-f16": (TINY, dict(seed=3, dtype="F16")),
    "tiny-bf16": (TINY, dict(seed=4, dtype="BF16", prefix=True)),
    "tiny-untied": (TINY, dict(seed=5, tied=False, prefix=True)),
    "tiny-scale-inv": (TINY, dict(seed=6, config=dict(scale_attn_by_inverse_layer_idx=True))),
    "tiny-gelu": (dict(TINY, n_inner=48), dict(seed=7, config=dict(activation_function="gelu"))),
    "gpt2-124m": (dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024),
                  dict(seed=124, attn_bias=True)),
}

# The widths and head counts of the public GPT-2 family (distilgpt2 is
# gpt2's width with 6 layers), with few layers and a 4096-token vocabulary to
# keep them small; large and xl in BF16 and F16 as some published copies are.
# Made on demand by tests/test_family.py.
FAMILY_SHAPE = dict(vocab_size=4096, n_positions=1024)
FAMILY_CONFIG = dict(bos_token_id=4095, eos_token_id=4095)
FAMILY = {
    "distilgpt2-shape": (dict(FAMILY_SHAPE, n_embd=768, n_head=12, n_layer=2),
                         dict(seed=11, config=FAMILY_CONFIG)),
    "gpt2-medium-shape": (dict(FAMILY_SHAPE, n_embd=1024, n_head=16, n_layer=1),
                          dict(seed=12, config=FAMILY_CONFIG)),
    "gpt2-large-shape": (dict(FAMILY_SHAPE, n_embd=1280, n_head=20, n_layer=1),
                         dict(seed=13, dtype="BF16", config=FAMILY_CONFIG)),
    "gpt2-xl-shape": (dict(FAMILY_SHAPE, n_embd=1600, n_head=25, n_layer=1),
                      dict(seed=14, dtype="F16", prefix=True, config=FAMILY_CONFIG)),
}
FIXTURES.update(FAMILY)

# Config options varied against transformers (tests/test_config_variants.py):
# one small checkpoint per option value, with a 4096-token vocabulary. Each
# differs from the defaults in one key only, chosen so that ignoring the key
# moves the logits far beyond the oracle tolerance (epsilon 0.1 is large
# against the layer inputs' variance of about 0.4).
VARIANT_SHAPE = dict(vocab_size=4096, n_embd=32, n_layer=2, n_head=4, n_positions=64)
ACTIVATIONS = ["gelu_new", "gelu_pytorch_tanh", "gelu_python_tanh", "gelu", "gelu_python",
               "gelu_fast", "quick_gelu", "relu", "relu6", "silu", "swish", "sigmoid", "tanh",
               "linear"]
VARIANTS = {
    "var-eps": dict(layer_norm_epsilon=0.1),
    "var-noscale": dict(scale_attn_weights=False),
    "var-scale-inv": dict(scale_attn_by_inverse_layer_idx=True),
    "var-reorder": dict(reorder_and_upcast_attn=True),
    "var-reorder-inv": dict(reorder_and_upcast_attn=True, scale_attn_by_inverse_layer_idx=True),
}
VARIANTS.update({f"var-act-{a}": dict(activation_function=a) for a in ACTIVATIONS})
for _i, (_name, _cfg) in enumerate(VARIANTS.items()):
    FIXTURES[_name] = (VARIANT_SHAPE, dict(seed=100 + _i, config=dict(FAMILY_CONFIG, **_cfg)))

# The fixtures `make test` generates before the C unit tests (the 124M one and
# the family are made only on demand).
DEFAULT = [n for n in FIXTURES if n != "gpt2-124m" and n not in FAMILY and n not in VARIANTS]


def to_bf16_bytes(a):
    """float32 array -> bfloat16 bytes, rounding to nearest even (as torch)."""
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def encode(a, dtype):
    if dtype == "F32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(a, dtype="<f2").tobytes()
    if dtype == "BF16":
        return to_bf16_bytes(a)
    raise ValueError(dtype)


def write_safetensors(path, tensors, metadata=None, unaligned=True):
    """tensors: list of (name, dtype, shape, raw bytes). Writes the file with
    the header padded by spaces so that the data section starts at an odd
    offset when `unaligned` (at a multiple of 8 otherwise)."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    off = 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    if unaligned:
        while (8 + len(h)) % 8 != 3:
            h += b" "
    else:
        h += b" " * (-(8 + len(h)) % 8)
    tmp = str(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in tensors:
            f.write(raw)
    os.replace(tmp, path)


def make_weights(shape, opts):
    """The state dict, in the order GPT-2 declares it, as float32 arrays."""
    rng = np.random.Generator(np.random.PCG64(opts["seed"]))
    V, E, L, Pn = shape["vocab_size"], shape["n_embd"], shape["n_layer"], shape["n_positions"]
    M = shape.get("n_inner") or 4 * E

    def normal(*s, std):
        return (rng.standard_normal(s, dtype=np.float32) * np.float32(std)).astype(np.float32)

    def gain(n, mean=1.0, std=0.1):
        return (np.float32(mean) + normal(n, std=std)).astype(np.float32)

    # logit std ~ ln_f gain * sqrt(E) * wte std: about 7 -> peaked softmax
    wte_std = 7.0 / (2.0 * np.sqrt(E))
    w = [("wte.weight", normal(V, E, std=wte_std)), ("wpe.weight", normal(Pn, E, std=wte_std / 3))]
    for i in range(L):
        p = f"h.{i}."
        w += [
            (p + "ln_1.weight", gain(E)), (p + "ln_1.bias", normal(E, std=0.05)),
            (p + "attn.c_attn.weight", normal(E, 3 * E, std=1.4 / np.sqrt(E))),
            (p + "attn.c_attn.bias", normal(3 * E, std=0.05)),
            (p + "attn.c_proj.weight", normal(E, E, std=0.5 / np.sqrt(E))),
            (p + "attn.c_proj.bias", normal(E, std=0.05)),
            (p + "ln_2.weight", gain(E)), (p + "ln_2.bias", normal(E, std=0.05)),
            (p + "mlp.c_fc.weight", normal(E, M, std=1.0 / np.sqrt(E))),
            (p + "mlp.c_fc.bias", normal(M, std=0.05)),
            (p + "mlp.c_proj.weight", normal(M, E, std=0.5 / np.sqrt(M))),
            (p + "mlp.c_proj.bias", normal(E, std=0.05)),
        ]
    w += [("ln_f.weight", gain(E, mean=2.0, std=0.2)), ("ln_f.bias", normal(E, std=0.05))]
    if not opts.get("tied", True):
        w.append(("lm_head.weight", normal(V, E, std=wte_std)))
    return w


def make_config(shape, opts):
    cfg = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": shape["n_positions"],
        "n_embd": shape["n_embd"],
        "n_head": shape["n_head"],
        "n_layer": shape["n_layer"],
        "n_positions": shape["n_positions"],
        "resid_pdrop": 0.1,
        "vocab_size": shape["vocab_size"],
    }
    if shape.get("n_inner"):
        cfg["n_inner"] = shape["n_inner"]
    if not opts.get("tied", True):
        cfg["tie_word_embeddings"] = False
    cfg.update(opts.get("config", {}))
    return cfg


def generate(name, out_root):
    """Writes fixture `name` into out_root/name (through a temporary folder
    renamed at the end, so a half-written fixture is never seen)."""
    shape, opts = FIXTURES[name]
    final = pathlib.Path(out_root) / name
    tmp = pathlib.Path(out_root) / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    dtype = opts.get("dtype", "F32")
    prefix = "transformer." if opts.get("prefix") else ""
    tensors = []
    for n, a in make_weights(shape, opts):
        full = n if n.startswith("lm_head") else prefix + n
        tensors.append((full, dtype, a.shape, encode(a, dtype)))
        if opts.get("attn_bias") and n.endswith("attn.c_proj.bias"):
            Pn = shape["n_positions"]
            mask = np.tril(np.ones((Pn, Pn), dtype=np.float32)).reshape(1, 1, Pn, Pn)
            tensors.append((full.replace("attn.c_proj.bias", "attn.bias"), "F32", mask.shape,
                            encode(mask, "F32")))
    write_safetensors(tmp / "model.safetensors", tensors, metadata={"format": "pt"})
    (tmp / "config.json").write_text(json.dumps(make_config(shape, opts), indent=2, sort_keys=True) + "\n")
    for f in ("vocab.json", "merges.txt"):
        shutil.copyfile(DATA / f, tmp / f)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def _stamp():
    return hashlib.sha256(pathlib.Path(__file__).read_bytes()).hexdigest()


def ensure(name, out_root):
    """Path of fixture `name` under out_root, generated when absent or made by
    another version of this script (a STAMP file holds the script's hash)."""
    d = pathlib.Path(out_root) / name
    stamp = d / "STAMP"
    want = _stamp()
    if not (stamp.exists() and stamp.read_text() == want):
        os.makedirs(out_root, exist_ok=True)
        generate(name, out_root)
        stamp.write_text(want)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE.parent / "build" / "fixtures"))
    ap.add_argument("--all", action="store_true", help="every fixture except gpt2-124m")
    ap.add_argument("--ensure", action="store_true",
                    help="only (re)generate fixtures that are absent or stale")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    names = a.names or (DEFAULT if a.all else [])
    if not names:
        ap.error("name fixtures or give --all; known: " + ", ".join(FIXTURES))
    for n in names:
        if n not in FIXTURES:
            ap.error(f"unknown fixture {n!r}; known: " + ", ".join(FIXTURES))
    os.makedirs(a.out, exist_ok=True)
    for n in names:
        if a.ensure:
            ensure(n, a.out)
        else:
            print(generate(n, a.out))


if __name__ == "__main__":
    sys.exit(main())
