#!/usr/bin/env python3
"""Writes the generated seed inputs of the fuzz targets into tests/fuzz/corpus/
(committed; rerun only to change them): micro GPT-2 checkpoints made with
tests/gen_fixtures.py's writer (a few hundred bytes each), --hook specs, and
small .npy/.npz files."""
import json
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import gen_fixtures  # noqa: E402

MICRO = dict(vocab_size=5, n_embd=4, n_layer=1, n_head=2, n_positions=4)


def checkpoint(shape, opts, path):
    """Writes a micro checkpoint to `path` and returns (config text, bytes)."""
    dtype = opts.get("dtype", "F32")
    prefix = "transformer." if opts.get("prefix") else ""
    tensors = []
    for n, a in gen_fixtures.make_weights(shape, opts):
        full = n if n.startswith("lm_head") else prefix + n
        tensors.append((full, dtype, a.shape, gen_fixtures.encode(a, dtype)))
    gen_fixtures.write_safetensors(path, tensors, metadata={"format": "pt"},
                                   unaligned=opts.get("unaligned", True))
    cfg = {k: v for k, v in gen_fixtures.make_config(shape, opts).items()
           if k not in ("architectures", "attn_pdrop", "embd_pdrop", "resid_pdrop",
                        "initializer_range", "bos_token_id", "eos_token_id")}
    return json.dumps(cfg, separators=(",", ":")), path.read_bytes()


def main():
    st_dir = HERE / "corpus" / "fuzz_safetensors"
    model_dir = HERE / "corpus" / "fuzz_model"
    st_dir.mkdir(parents=True, exist_ok=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    variants = {
        "f32": (MICRO, dict(seed=1)),
        "f16_prefix": (MICRO, dict(seed=2, dtype="F16", prefix=True)),
        "bf16_untied": (MICRO, dict(seed=3, dtype="BF16", tied=False, unaligned=False)),
        "gelu_inner": (dict(MICRO, n_inner=3, n_layer=2),
                       dict(seed=4, config=dict(activation_function="gelu",
                                                scale_attn_by_inverse_layer_idx=True))),
    }
    for name, (shape, opts) in variants.items():
        cfg, raw = checkpoint(shape, opts, st_dir / name)
        (model_dir / name).write_bytes(cfg.encode() + b"\n@@\n" + raw)
    # hand-made headers: metadata only, empty tensor, every dtype, 0-d tensor
    def st(header, data=b""):
        h = json.dumps(header, separators=(",", ":")).encode()
        return struct.pack("<Q", len(h)) + h + data
    (st_dir / "meta_only").write_bytes(st({"__metadata__": {"a": "b"}}))
    (st_dir / "empty_tensor").write_bytes(st({"e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]}}))
    dts = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
           "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
    h, off = {}, 0
    for k, s in dts.items():
        h["t_" + k] = {"dtype": k, "shape": [2], "data_offsets": [off, off + 2 * s]}
        off += 2 * s
    (st_dir / "all_dtypes").write_bytes(st(h, bytes(range(off))))
    (st_dir / "scalar").write_bytes(st({"s": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]}},
                                       struct.pack("<d", 1.5)))

    # --hook specs (fuzz_hookspec): the forms the README shows, and edges
    hs_dir = HERE / "corpus" / "fuzz_hookspec"
    hs_dir.mkdir(parents=True, exist_ok=True)
    specs = {
        "set_max": "lm_head:set: coffee=max+10", "set_num": "hook_logits:set:50256=-1e9",
        "zero": "blocks.1.hook_mlp_out:zero", "scale_last": "blocks.*.attn.hook_z@-1:scale:0.5",
        "add_pos": "blocks.3.hook_resid_post@2:add:v.npy*4", "patch_head": "blocks.5.attn.hook_z[7]:patch:clean.npz",
        "slices": "blocks.0.attn.hook_pattern[0,3]@1:3,-2:,:1,5:scale:-2e-3", "set_min": "lm_head@0:set:x=min-0.5",
    }
    for name, text in specs.items():
        (hs_dir / name).write_text(text)
    # .npy / .npz files (fuzz_npy: first byte 0 = .npy, 1 = .npz)
    import io
    import numpy as np
    npy_dir = HERE / "corpus" / "fuzz_npy"
    npy_dir.mkdir(parents=True, exist_ok=True)
    for name, a in {"f32_2d": np.arange(6, dtype="<f4").reshape(2, 3),
                    "f64_1d": np.array([1.5, -2.0, np.inf], dtype="<f8"),
                    "scalar": np.array(3.0, dtype="<f4"), "empty": np.zeros((0, 4), dtype="<f4")}.items():
        b = io.BytesIO()
        np.save(b, a)
        (npy_dir / name).write_bytes(b"\x00" + b.getvalue())
    b = io.BytesIO()
    np.savez(b, **{"blocks.0.hook_z": np.ones((2, 4), dtype="<f4"), "hook_embed": np.arange(3, dtype="<f8")})
    (npy_dir / "npz_two").write_bytes(b"\x01" + b.getvalue())
    b = io.BytesIO()
    np.savez_compressed(b, a=np.ones(3, dtype="<f4"))
    (npy_dir / "npz_compressed").write_bytes(b"\x01" + b.getvalue())


if __name__ == "__main__":
    main()
