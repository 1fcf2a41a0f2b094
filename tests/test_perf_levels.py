"""The fast kernels change no answer: `logitscope logits` at every SIMD level
(LSC_SIMD=ref|avx2|avx512, those the CPU has) and thread count (1, 2, 3)
agrees with transformers within the oracle tolerance, every level gives the
same bits at every thread count, AVX-512 gives AVX2's bits,
and a prefill split into T = 1 steps gives the same logits as one pass. The
reduced-precision weights (--weights bf16|q8) are measured against the F32
oracle, with their max difference printed and bounded."""
import os

import numpy as np
import pytest

from conftest import require_oracle, run_cli
from fixtures import fixture_dir
from test_oracle_logits import oracle_logits, prompt

TOL = 1e-4
# distilgpt2-shape has GPT-2's widths (768, 12 heads of 64: the kernels' main
# paths); tiny-* cover odd widths, the inverse-layer scale and exact gelu.
NAMES = ["distilgpt2-shape", "tiny", "tiny-scale-inv", "tiny-gelu"]


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_avx2():
    return {"avx2", "fma"} <= cpu_flags()


def levels():
    """The SIMD levels this CPU runs (src/kernels/dispatch.c, lsc_simd_best)."""
    out = ["ref"]
    if cpu_has_avx2():
        out.append("avx2")
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= cpu_flags():
            out.append("avx512")
    return out


def logits_at(name, ids, tmp_path, level, threads, weights="f32"):
    out = tmp_path / f"{level}-{threads}-{weights}.npy"
    env = dict(os.environ, LSC_SIMD=level)
    vocab = 4096 if name.endswith("-shape") else 50257
    ids = [i % vocab for i in ids]
    run_cli("logits", "--model", fixture_dir(name), "--ids", ",".join(map(str, ids)),
            "--threads", threads, "--weights", weights, "--npy", out, env=env, check=True)
    return ids, np.load(out)


@pytest.mark.parametrize("name", NAMES)
def test_every_level_and_thread_count(name, tmp_path):
    require_oracle()
    ids = prompt(37, seed=7)
    by_level = {}
    for level in levels():
        runs = {}
        for threads in (1, 2, 3):
            ids_v, runs[threads] = logits_at(name, ids, tmp_path, level, threads)
        ref = oracle_logits(name, ids_v)
        for threads, ours in runs.items():
            diff = float(np.abs(ours - ref).max())
            print(f"{name} LSC_SIMD={level} --threads {threads}: max |ours - transformers| = "
                  f"{diff:.3g} (tol {TOL})")
            assert diff <= TOL
            assert (ours.argmax(-1) == ref.argmax(-1)).all()
            assert np.array_equal(ours, runs[1]), f"{level}: {threads} threads differ from 1"
        by_level[level] = runs[1]
    if "avx2" in by_level:
        d = float(np.abs(by_level["ref"] - by_level["avx2"]).max())
        print(f"{name}: max |ref - avx2| = {d:.3g}")
    if "avx512" in by_level:
        assert np.array_equal(by_level["avx512"], by_level["avx2"]), "avx512 differs from avx2"


@pytest.mark.parametrize("weights,tol", [("bf16", 0.05), ("q8", 0.15)])
def test_reduced_precision_weights(weights, tol, tmp_path):
    """BF16 / Q8 against the F32 oracle: the differences are the formats'
    rounding of the weights, bounded loosely; the argmax mostly survives."""
    require_oracle()
    for name in ("distilgpt2-shape", "tiny"):
        ids_v, ours = logits_at(name, prompt(64, seed=3), tmp_path, "avx2" if cpu_has_avx2()
                                else "ref", 2, weights)
        ref = oracle_logits(name, ids_v)
        diff = float(np.abs(ours - ref).max())
        mean = float(np.abs(ours - ref).mean())
        spread = float(ref.std())
        agree = float((ours.argmax(-1) == ref.argmax(-1)).mean())
        print(f"{name} --weights {weights}: max |ours - transformers F32| = {diff:.3g} "
              f"(mean {mean:.3g}; logit std {spread:.3g}, tol {tol} x std); argmax agrees at "
              f"{agree:.0%}")
        assert diff <= tol * spread
        assert agree >= 0.9


def test_weights_flag_rejects_unknown(tmp_path):
    p = run_cli("logits", "--model", fixture_dir("tiny"), "--ids", "1,2", "--weights", "f16")
    assert p.returncode != 0
    assert "--weights" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_threads_flag_rejects_bad_values():
    for bad in ("-1", "x", "100000"):
        p = run_cli("logits", "--model", fixture_dir("tiny"), "--ids", "1,2", "--threads", bad)
        assert p.returncode != 0 and "--threads" in p.stderr


def test_seeded_sampling_identical_everywhere():
    """`generate --do-sample --seed` draws the same tokens at every SIMD level
    and thread count (the logits are bit-identical across thread counts and
    within ~2e-5 across levels)."""
    import json
    seen = {}
    for level in levels():
        for threads in (1, 2, 3):
            p = run_cli("generate", "--model", fixture_dir("tiny"), "--ids", "464,2068,7586",
                        "--do-sample", "--temperature", "2", "--seed", "7", "--max-new-tokens", "24",
                        "--no-stop",
                        "--json", "--threads", threads, env=dict(os.environ, LSC_SIMD=level),
                        check=True)
            seen[(level, threads)] = json.loads(p.stdout)["new_ids"]
    first = next(iter(seen.values()))
    print(f"seed 7: {first}")
    for key, ids in seen.items():
        assert ids == first, f"LSC_SIMD={key[0]} --threads {key[1]}: {ids} != {first}"


@pytest.mark.parametrize("name", ["distilgpt2-shape", "tiny-scale-inv"])
def test_caching_the_pattern_changes_no_bit(name, tmp_path):
    """Observing never changes results: `logits --npy` with the attention
    pattern (and scores) cached gives the same bits as without, at every
    level (the hooked path runs the level's own attention in steps)."""
    vocab = 4096 if name.endswith("-shape") else 50257
    ids = ",".join(str((i * 7919 + 13) % vocab) for i in range(33))
    for level in levels():
        env = dict(os.environ, LSC_SIMD=level)
        plain, hooked = tmp_path / f"{level}-plain.npy", tmp_path / f"{level}-hooked.npy"
        run_cli("logits", "--model", fixture_dir(name), "--ids", ids, "--threads", "2",
                "--npy", plain, env=env, check=True)
        run_cli("logits", "--model", fixture_dir(name), "--ids", ids, "--threads", "2",
                "--npy", hooked, "--cache", "blocks.*.attn.hook_pattern",
                "--cache", "blocks.*.attn.hook_attn_scores", "--cache-out",
                tmp_path / f"{level}.npz", env=env, check=True)
        a, b = np.load(plain), np.load(hooked)
        print(f"{name} LSC_SIMD={level}: max |plain - pattern cached| = "
              f"{float(np.abs(a - b).max()):.3g}")
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
        with np.load(tmp_path / f"{level}.npz") as z:
            pattern = z["blocks.0.attn.hook_pattern"]
            assert np.allclose(pattern.sum(-1), 1.0, atol=1e-5)
