"""Hooks against PyTorch: the CLI's --hook interventions and --cache
activations compared with forward hooks on transformers' GPT-2 modules, on
the generated fixtures, within 1e-4 (max |diff| printed). Also bad --hook
specs and bad .npy/.npz inputs (one-line errors, nothing written)."""
import functools
import math
import struct
import zipfile

import numpy as np
import pytest

from conftest import require_oracle, run_cli
from fixtures import fixture_dir

TOL = 1e-4
TEXT = "The quick brown fox jumps over the lazy dog, and then"
OTHER = "Paris is the capital of France, and the city of light!"


@functools.lru_cache(maxsize=None)
def oracle_model(name):
    import torch
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(str(fixture_dir(name)), dtype=torch.float32,
                                             attn_implementation="eager")
    return m.eval()


@functools.lru_cache(maxsize=None)
def tokenizer(name):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(fixture_dir(name)))


def ids_of(name, text):
    return tokenizer(name)(text)["input_ids"]


def first(o):
    """A module's output tensor (GPT2Block/GPT2Attention may return tuples)."""
    return o[0] if isinstance(o, tuple) else o


def torch_run(name, ids, edits=()):
    """Runs the oracle on ids with forward hooks: `edits` is a list of
    (module path, fn(output tensor) -> new tensor) applied in place of the
    module's output. Returns (logits [T, V], activations by TransformerLens
    name, in logitscope's layouts)."""
    import torch
    m = oracle_model(name)
    cfg = m.config
    H, E = cfg.n_head, cfg.n_embd
    D = E // H
    acts, handles = {}, []

    def mod(path):
        o = m
        for part in path.split("."):
            o = o[int(part)] if part.isdigit() else getattr(o, part)
        return o

    def keep(key, fn=lambda t: t):
        def hook(module, args, out):
            acts[key] = fn(first(out)[0]).detach().numpy().copy()
        return hook

    def keep_in(key, fn=lambda t: t):
        def hook(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            acts[key] = fn(x[0]).detach().numpy().copy()
        return hook

    def edit(fn):
        def hook(module, args, out):
            if isinstance(out, tuple):
                return (fn(out[0]),) + tuple(out[1:])
            return fn(out)
        return hook

    try:
        # the edits first, so the captures see the rewritten values
        for path, fn in edits:
            handles.append(mod(path).register_forward_hook(edit(fn)))
        tr = m.transformer
        handles.append(tr.wte.register_forward_hook(keep("hook_embed")))
        handles.append(tr.wpe.register_forward_hook(keep("hook_pos_embed")))
        for i, blk in enumerate(tr.h):
            b = f"blocks.{i}."
            handles.append(blk.register_forward_pre_hook(keep_in(b + "hook_resid_pre"),
                                                         with_kwargs=True))
            handles.append(blk.ln_1.register_forward_hook(keep(b + "ln1.hook_normalized")))
            for j, nm in enumerate("qkv"):
                handles.append(blk.attn.c_attn.register_forward_hook(
                    keep(b + f"attn.hook_{nm}",
                         lambda t, j=j: t[:, j * E:(j + 1) * E].reshape(-1, H, D))))
            handles.append(blk.attn.c_proj.register_forward_pre_hook(
                keep_in(b + "attn.hook_z", lambda t: t.reshape(-1, H, D)), with_kwargs=True))
            handles.append(blk.attn.register_forward_hook(keep(b + "hook_attn_out")))
            handles.append(blk.ln_2.register_forward_pre_hook(keep_in(b + "hook_resid_mid"),
                                                              with_kwargs=True))
            handles.append(blk.ln_2.register_forward_hook(keep(b + "ln2.hook_normalized")))
            handles.append(blk.mlp.c_fc.register_forward_hook(keep(b + "mlp.hook_pre")))
            handles.append(blk.mlp.c_proj.register_forward_pre_hook(keep_in(b + "mlp.hook_post"),
                                                                    with_kwargs=True))
            handles.append(blk.mlp.register_forward_hook(keep(b + "hook_mlp_out")))
            handles.append(blk.register_forward_hook(keep(b + "hook_resid_post")))
        handles.append(tr.ln_f.register_forward_hook(keep("ln_final.hook_normalized")))
        handles.append(m.lm_head.register_forward_hook(keep("hook_logits")))
        with torch.no_grad():
            out = m(torch.tensor([ids]), output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    T = len(ids)
    for i, att in enumerate(out.attentions):
        b = f"blocks.{i}.attn."
        acts[b + "hook_pattern"] = att[0].numpy().copy()
        # the scores are not a module output: recomputed from the captured q, k
        q, k = acts[b + "hook_q"], acts[b + "hook_k"]
        s = np.einsum("thd,shd->hts", q.astype(np.float64), k.astype(np.float64))
        if cfg.scale_attn_weights:
            s /= math.sqrt(D)
        if cfg.scale_attn_by_inverse_layer_idx:
            s /= i + 1
        s[:, np.triu(np.ones((T, T), bool), 1)] = -np.inf
        acts[b + "hook_attn_scores"] = s.astype(np.float32)
    return out.logits[0].numpy(), acts


def ours(name, text, *args, tmp_path, tag="a"):
    """Runs `logitscope logits --npy` with extra args; returns the logits."""
    out = tmp_path / f"logits-{tag}.npy"
    run_cli("logits", "--model", fixture_dir(name), "--text", text, "--npy", out, *args,
            check=True)
    return np.load(out)


def maxdiff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    fa, fb = np.isfinite(a), np.isfinite(b)
    assert (fa == fb).all() and (a[~fa] == b[~fb]).all()
    return float(np.abs(a[fa] - b[fb]).max()) if fa.any() else 0.0


def check(label, a, b, tol=TOL):
    d = maxdiff(a, b)
    print(f"{label}: max |logitscope - torch| = {d:.3g} (tol {tol})")
    assert d <= tol


@pytest.mark.parametrize("name", ["tiny", "tiny-scale-inv", "tiny-gelu", "tiny-untied"])
def test_cache_matches_torch_activations(name, tmp_path):
    """--cache-out alone caches every point; each equals what torch computes
    at the same place (the attention scores: from torch's q and k)."""
    require_oracle()
    npz = tmp_path / "acts.npz"
    logits = ours(name, TEXT, "--cache-out", npz, tmp_path=tmp_path)
    ref_logits, ref = torch_run(name, ids_of(name, TEXT))
    check(f"{name} logits", logits, ref_logits)
    got = np.load(npz)
    L = oracle_model(name).config.n_layer
    assert len(got.files) == 2 + 15 * L + 2
    assert set(got.files) == set(ref), set(got.files) ^ set(ref)
    worst = max((maxdiff(got[k], ref[k]), k) for k in got.files)
    for k in sorted(got.files, key=lambda k: -maxdiff(got[k], ref[k]))[:3]:
        print(f"  {k} {got[k].shape}: {maxdiff(got[k], ref[k]):.3g}")
    print(f"{name}: {len(got.files)} cached points, worst {worst[1]} {worst[0]:.3g} (tol {TOL})")
    assert worst[0] <= TOL


def test_cache_glob_and_shapes(tmp_path):
    """--cache PATTERN keeps only the matching points, with the documented
    shapes, and the file is what numpy.load reads."""
    require_oracle()
    npz = tmp_path / "acts.npz"
    ours("tiny", TEXT, "--cache", "blocks.*.hook_resid_post", "--cache", "blocks.1.attn.hook_pattern",
         "--cache", "lm_head", "--cache-out", npz, tmp_path=tmp_path)
    T = len(ids_of("tiny", TEXT))
    with np.load(npz) as z:
        assert sorted(z.files) == ["blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern",
                                   "blocks.1.hook_resid_post", "hook_logits"]
        assert z["blocks.0.hook_resid_post"].shape == (T, 32)
        assert z["blocks.1.attn.hook_pattern"].shape == (4, T, T)
        assert z["hook_logits"].shape == (T, 50257)
    assert zipfile.ZipFile(npz).testzip() is None
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_lm_head_set_coffee(tmp_path):
    """The notebook's edit: ' coffee' = max + 10 on every row of lm_head."""
    require_oracle()
    coffee = tokenizer("tiny")(" coffee")["input_ids"]
    assert len(coffee) == 1
    c = coffee[0]
    got = ours("tiny", TEXT, "--hook", "lm_head:set: coffee=max+10", tmp_path=tmp_path)

    def edit(t):
        t = t.clone()
        t[..., c] = t.max(-1).values + 10
        return t

    ref, _ = torch_run("tiny", ids_of("tiny", TEXT), [("lm_head", edit)])
    check("lm_head set ' coffee'=max+10", got, ref)
    assert (got.argmax(-1) == c).all()
    # by id, at the last position only, relative to the minimum
    got = ours("tiny", TEXT, "--hook", f"hook_logits@-1:set:{c}=min-2.5", tmp_path=tmp_path)

    def edit2(t):
        t = t.clone()
        t[:, -1, c] = t[:, -1].min(-1).values - 2.5
        return t

    ref, _ = torch_run("tiny", ids_of("tiny", TEXT), [("lm_head", edit2)])
    check("hook_logits@-1 set id=min-2.5", got, ref)


@pytest.mark.parametrize("name", ["tiny", "tiny-gelu"])
def test_zero_mlp_out(name, tmp_path):
    require_oracle()
    got = ours(name, TEXT, "--hook", "blocks.1.hook_mlp_out:zero", tmp_path=tmp_path)
    ref, _ = torch_run(name, ids_of(name, TEXT), [("transformer.h.1.mlp", lambda t: t * 0)])
    plain, _ = torch_run(name, ids_of(name, TEXT))
    print(f"{name}: zeroing changes logits by up to {np.abs(ref - plain).max():.3g}")
    assert np.abs(ref - plain).max() > 1e-2
    check(f"{name} blocks.1.hook_mlp_out zero", got, ref)


def test_add_vector_to_residual_at_one_position(tmp_path):
    require_oracle()
    v = np.random.default_rng(7).standard_normal(32).astype(np.float32)
    np.save(tmp_path / "v.npy", v)
    got = ours("tiny", TEXT, "--hook", f"blocks.0.hook_resid_post@2:add:{tmp_path / 'v.npy'}*0.5",
               tmp_path=tmp_path)

    def edit(t):
        t = t.clone()
        t[:, 2] += 0.5 * torch_tensor(v)
        return t

    ref, _ = torch_run("tiny", ids_of("tiny", TEXT), [("transformer.h.0", edit)])
    plain, _ = torch_run("tiny", ids_of("tiny", TEXT))
    assert np.abs(ref[:2] - plain[:2]).max() == 0  # earlier positions unaffected
    assert np.abs(ref[2:] - plain[2:]).max() > 1e-2
    check("blocks.0.hook_resid_post@2 add v*0.5", got, ref)
    # float64 .npy, a slice of positions
    np.save(tmp_path / "v64.npy", v.astype(np.float64))
    got = ours("tiny", TEXT, "--hook", f"blocks.1.hook_resid_pre@1:4:add:{tmp_path / 'v64.npy'}",
               tmp_path=tmp_path)

    def edit2(t):
        t = t.clone()
        t[:, 1:4] += torch_tensor(v)
        return t

    ref, _ = torch_run("tiny", ids_of("tiny", TEXT), [("transformer.h.0", edit2)])
    check("blocks.1.hook_resid_pre@1:4 add v (f8)", got, ref)


def torch_tensor(a):
    import torch
    return torch.tensor(a)


def test_patch_one_head_from_another_run(tmp_path):
    """Activation patching: hook_z of head 2 of block 1 from the cache of
    another prompt's run (same length), at every position and at the last."""
    require_oracle()
    a_ids, b_ids = ids_of("tiny", OTHER), ids_of("tiny", TEXT)
    n = min(len(a_ids), len(b_ids))
    a_ids, b_ids = a_ids[:n], b_ids[:n]
    A, B = ",".join(map(str, a_ids)), ",".join(map(str, b_ids))
    cache = tmp_path / "a.npz"
    run_cli("logits", "--model", fixture_dir("tiny"), "--ids", A, "--cache",
            "blocks.1.attn.hook_z", "--cache-out", cache, check=True)
    _, a_acts = torch_run("tiny", a_ids)
    za = a_acts["blocks.1.attn.hook_z"]  # [T, H, D]
    check("cached blocks.1.attn.hook_z", np.load(cache)["blocks.1.attn.hook_z"], za)
    H, D = za.shape[1], za.shape[2]
    for spec, rows in [("blocks.1.attn.hook_z[2]", slice(None)),
                       ("blocks.1.attn.hook_z[2]@-1", slice(n - 1, n))]:
        out = tmp_path / "patched.npy"
        run_cli("logits", "--model", fixture_dir("tiny"), "--ids", B, "--npy", out,
                "--hook", f"{spec}:patch:{cache}", check=True)

        def edit(x, rows=rows):  # pre-hook on c_proj: x is z [1, T, E]
            x = x.clone()
            x[0, rows, 2 * D:3 * D] = torch_tensor(za[rows, 2])
            return x

        import torch
        m = oracle_model("tiny")
        h = m.transformer.h[1].attn.c_proj.register_forward_pre_hook(
            lambda mod, args: (edit(args[0]),) + tuple(args[1:]))
        try:
            with torch.no_grad():
                ref = m(torch.tensor([b_ids])).logits[0].numpy()
        finally:
            h.remove()
        plain, _ = torch_run("tiny", b_ids)
        assert np.abs(ref - plain).max() > 1e-3
        check(f"{spec} patch from the other run", np.load(out), ref)


def test_scale_attn_out_and_pattern(tmp_path):
    require_oracle()
    got = ours("tiny", TEXT, "--hook", "blocks.0.hook_attn_out:scale:0.5", "--hook",
               "blocks.*.hook_mlp_out@-1:scale:2", tmp_path=tmp_path)
    T = len(ids_of("tiny", TEXT))

    def last2(t):
        t = t.clone()
        t[:, T - 1] *= 2
        return t

    ref, _ = torch_run("tiny", ids_of("tiny", TEXT),
                       [("transformer.h.0.attn", lambda t: t * 0.5),
                        ("transformer.h.0.mlp", last2), ("transformer.h.1.mlp", last2)])
    check("attn_out scale 0.5 + mlp_out@-1 scale 2", got, ref)


def test_lens_last_layer_is_the_logits_and_matches_hidden_states():
    """lens --json: layer i's top tokens are those of
    lm_head(ln_f(hidden_states[i])) in transformers; the last layer's are the
    logits' top tokens."""
    require_oracle()
    import json

    import torch
    name = "tiny"
    ids = ids_of(name, TEXT)
    m = oracle_model(name)
    with torch.no_grad():
        out = m(torch.tensor([ids]), output_hidden_states=True)
    hs = out.hidden_states  # [L + 1]; the last one already has ln_f applied
    L = m.config.n_layer
    for pos in (len(ids) - 1, 2):
        p = run_cli("lens", "--model", fixture_dir(name), "--text", TEXT, "--pos", pos,
                    "--top-k", 5, "--json", check=True)
        got = json.loads(p.stdout)
        assert got["pos"] == pos and len(got["layers"]) == L + 1
        worst = 0.0
        for i, layer in enumerate(got["layers"]):
            with torch.no_grad():
                if i < L:
                    row = m.lm_head(m.transformer.ln_f(hs[i][0, pos])).numpy()
                else:
                    row = out.logits[0, pos].numpy()
            top = [t["id"] for t in layer["top"]]
            ref_top = np.argsort(-row, kind="stable")[:5].tolist()
            assert top == ref_top, (i, top, ref_top)
            worst = max(worst, max(abs(t["logit"] - float(row[t["id"]])) for t in layer["top"]))
        print(f"lens pos {pos}: top-5 ids equal at all {L + 1} layers; max logit diff {worst:.3g}")
        assert worst <= TOL


def test_generate_keeps_hooks_across_steps(tmp_path):
    """With the KV cache, the hooks fire for every new token: greedy
    generation with ' coffee' = max + 10 gives only ' coffee', and a steering
    vector added at every position gives transformers' greedy tokens under the
    same forward hook."""
    require_oracle()
    import torch
    name = "tiny"
    ids = ids_of(name, "Hello, my dog")
    v = np.random.default_rng(3).standard_normal(32).astype(np.float32) * 0.5
    np.save(tmp_path / "v.npy", v)
    r = run_cli("generate", "--model", fixture_dir(name), "--ids", ",".join(map(str, ids)),
                "--max-new-tokens", 8, "--json", "--hook",
                f"blocks.0.hook_resid_post:add:{tmp_path / 'v.npy'}", check=True)
    import json
    got = json.loads(r.stdout)
    new = got.get("new_ids") or got.get("ids")
    m = oracle_model(name)
    h = m.transformer.h[0].register_forward_hook(
        lambda mod, a, o: (first(o) + torch_tensor(v)) if not isinstance(o, tuple)
        else (o[0] + torch_tensor(v),) + tuple(o[1:]))
    try:
        with torch.no_grad():
            ref = m.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                             pad_token_id=50256)[0, len(ids):].tolist()
    finally:
        h.remove()
    with torch.no_grad():
        plain = m.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                           pad_token_id=50256)[0, len(ids):].tolist()
    print(f"steered greedy: logitscope {new}, transformers {ref} (unsteered {plain})")
    assert new == ref
    assert ref != plain


BAD_SPECS = [
    ("blocks.9.hook_mlp_out:zero", "no hook point matches 'blocks.9.hook_mlp_out'"),
    ("blocks.0.hook_mlp_out:zap", "unknown op 'zap'"),
    ("blocks.0.hook_mlp_out", "expected ':' and an op"),
    ("blocks.0.hook_mlp_out:scale:abc", "scale: 'abc' is not a finite number"),
    ("blocks.0.hook_mlp_out:scale:inf", "not a finite number"),
    ("blocks.0.hook_mlp_out:set: coffee=max+10", "set works only on hook_logits"),
    ("lm_head:set: coffee pot=max+10", "is 2 tokens"),
    ("lm_head:set: coffee=maxx", "set: bad value 'maxx'"),
    ("lm_head:set:99999999=1", "outside the vocabulary"),
    ("lm_head:set:=1", "the token before '=' is empty"),
    ("blocks.0.hook_mlp_out@x:zero", "bad positions after '@'"),
    ("blocks.0.hook_mlp_out@99:zero", "selected nothing"),
    ("blocks.0.hook_mlp_out[1]:zero", "has no head axis"),
    ("blocks.0.attn.hook_z[9]:zero", "head 9 is out of range"),
    ("blocks.0 hook:zero", "bad character ' '"),
    (":zero", "the point is empty"),
    ("blocks.0.hook_mlp_out:add:/nonexistent.npy", "/nonexistent.npy"),
    ("blocks.0.hook_mlp_out:patch:/nonexistent.npz", "/nonexistent.npz"),
]


@pytest.mark.parametrize("spec,message", BAD_SPECS)
def test_bad_hook_specs(spec, message, tmp_path):
    out = tmp_path / "x.npy"
    p = run_cli("logits", "--model", fixture_dir("tiny"), "--text", "Hello there", "--npy", out,
                "--hook", spec)
    assert p.returncode != 0
    assert message in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("logitscope: error: ")
    assert not out.exists()


def test_bad_vectors_and_caches(tmp_path):
    tiny = fixture_dir("tiny")

    def err(*args):
        p = run_cli("logits", "--model", tiny, "--text", "Hello there", *args)
        assert p.returncode != 0 and p.stderr.count("\n") == 1, p.stderr
        return p.stderr

    np.save(tmp_path / "short.npy", np.zeros(31, np.float32))
    assert "holds 32 values per position" in err("--hook", f"blocks.0.hook_mlp_out:add:{tmp_path / 'short.npy'}")
    np.save(tmp_path / "int.npy", np.zeros(32, np.int32))
    assert "dtype" in err("--hook", f"blocks.0.hook_mlp_out:add:{tmp_path / 'int.npy'}")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY\x01\x00\xff\xff{")
    assert "junk.npy" in err("--hook", f"blocks.0.hook_mlp_out:add:{tmp_path / 'junk.npy'}")
    # compressed npz: refused with a clear message
    np.savez_compressed(tmp_path / "c.npz", **{"blocks.0.hook_mlp_out": np.zeros((2, 32), np.float32)})
    assert "savez_compressed" in err("--hook", f"blocks.0.hook_mlp_out:patch:{tmp_path / 'c.npz'}")
    # a numpy.savez file works; a missing key is named
    np.savez(tmp_path / "s.npz", other=np.zeros(3, np.float32))
    assert "has no array 'blocks.0.hook_mlp_out'" in err(
        "--hook", f"blocks.0.hook_mlp_out:patch:{tmp_path / 's.npz'}")
    # corruptions of a valid cache: flipped data byte (CRC), truncation, junk
    good = tmp_path / "good.npz"
    run_cli("logits", "--model", tiny, "--text", "Hello there", "--cache",
            "blocks.0.hook_mlp_out", "--cache-out", good, check=True)
    raw = bytearray(good.read_bytes())
    raw[200] ^= 0xff
    (tmp_path / "crc.npz").write_bytes(raw)
    assert "CRC" in err("--hook", f"blocks.0.hook_mlp_out:patch:{tmp_path / 'crc.npz'}")
    for cut in (10, 100, len(raw) - 30):
        (tmp_path / "cut.npz").write_bytes(bytes(good.read_bytes()[:cut]))
        assert "cut.npz" in err("--hook", f"blocks.0.hook_mlp_out:patch:{tmp_path / 'cut.npz'}")
    # a member whose name is not printable: escaped in the message
    with zipfile.ZipFile(tmp_path / "odd.npz", "w") as zf:
        zf.writestr("odd\x01name.bin", b"x")
    assert "odd\\x01name.bin" in err("--hook", f"blocks.0.hook_mlp_out:patch:{tmp_path / 'odd.npz'}")
    (tmp_path / "e.npz").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    assert "e.npz" in err("--hook", f"blocks.0.hook_mlp_out:patch:{tmp_path / 'e.npz'}")
    # a cache of fewer positions than the patched run
    assert "position 2 is not in the cache" in run_cli(
        "logits", "--model", tiny, "--text", "Hello there you", "--hook",
        f"blocks.0.hook_mlp_out:patch:{good}").stderr
    # --cache without --cache-out, unknown --cache pattern, unwritable output
    assert "--cache needs --cache-out" in err("--cache", "blocks.0.hook_mlp_out")
    assert "no hook point matches 'nope'" in err("--cache", "nope", "--cache-out", tmp_path / "n.npz")
    assert "cannot create" in err("--cache-out", tmp_path / "no" / "dir" / "x.npz")
    assert not (tmp_path / "n.npz").exists()
