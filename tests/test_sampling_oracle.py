"""Sampling functions of the library against PyTorch and transformers' logits
processors, on random rows (no model needed): softmax, log-softmax, top-k,
rank, and lsc_sampler_apply vs RepetitionPenalty/Temperature/TopK/TopP/MinP.

The library is reached through ctypes: src/sampling.c, inspect.c, torchsort.c and
util.c are compiled into a small shared object for this test, with what they call
besides (softmax_row.c, the SIMD level's choice) from the build's liblogitscope.a."""
import ctypes
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT, require_oracle


class SamplerParams(ctypes.Structure):
    _fields_ = [("do_sample", ctypes.c_int), ("temperature", ctypes.c_float),
                ("top_k", ctypes.c_int), ("top_p", ctypes.c_double),
                ("min_p", ctypes.c_float), ("repetition_penalty", ctypes.c_float),
                ("seed", ctypes.c_uint64)]


class Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("message", ctypes.c_char * 512)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    if "san" in BUILD.name:
        # its liblogitscope.a is ASan/UBSan code, which an uninstrumented
        # Python cannot load through ctypes; `make test` runs this test
        pytest.skip("the sanitized liblogitscope.a cannot be loaded into Python (run by make test)")
    so = tmp_path_factory.mktemp("lib") / "libsampling.so"
    subprocess.run([cc, "-std=c11", "-D_GNU_SOURCE", "-O2", "-shared", "-fPIC",
                    f"-I{ROOT}/include", f"-I{ROOT}/src", str(ROOT / "src/sampling.c"), str(ROOT / "src/inspect.c"), str(ROOT / "src/torchsort.c"),
                    str(ROOT / "src/util.c"), str(BUILD / "liblogitscope.a"), "-o", str(so), "-lm",
                    "-pthread"], check=True)
    L = ctypes.CDLL(str(so))
    fp = ctypes.POINTER(ctypes.c_float)
    ip = ctypes.POINTER(ctypes.c_int32)
    L.lsc_softmax.argtypes = [fp, ctypes.c_size_t, fp]
    L.lsc_log_softmax.argtypes = [fp, ctypes.c_size_t, fp]
    L.lsc_top_k.argtypes = [fp, ctypes.c_size_t, ctypes.c_size_t, ip, ctypes.c_void_p]
    L.lsc_rank.argtypes = [fp, ctypes.c_size_t, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t),
                           ctypes.c_void_p]
    L.lsc_sampler_new.argtypes = [SamplerParams, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.POINTER(Error)]
    L.lsc_sampler_apply.argtypes = [ctypes.c_void_p, fp, ctypes.c_size_t, ip, ctypes.c_size_t,
                                    fp, ctypes.POINTER(Error)]
    L.lsc_sampler_free.argtypes = [ctypes.c_void_p]
    return L


def _fp(a):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def _rows(torch, n_rows=12, n=2000):
    """Random logit rows in GPT-2's range, some with many ties, some with -inf."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for r in range(n_rows):
        x = torch.randn(n, generator=g) * (1 + r % 4) - 80
        if r % 3 == 1:
            x = torch.round(x)  # ties everywhere
        if r % 4 == 2:
            x[torch.randperm(n, generator=g)[: n // 5]] = -float("inf")
        rows.append(x.float())
    return rows


def test_softmax_topk_rank_match_torch(lib):
    require_oracle()
    import numpy as np
    import torch
    worst_p = worst_lp = 0.0
    n_topk = n_rank = 0
    for x in _rows(torch) + _rows(torch, 3, 50257):
        a = x.numpy().copy()
        n = a.size
        p = np.empty(n, np.float32)
        lp = np.empty(n, np.float32)
        lib.lsc_softmax(_fp(a), n, _fp(p))
        lib.lsc_log_softmax(_fp(a), n, _fp(lp))
        tp = torch.softmax(x, -1).numpy()
        tlp = torch.log_softmax(x, -1).numpy()
        worst_p = max(worst_p, float(np.max(np.abs(p - tp))))
        fin = np.isfinite(tlp)
        assert np.array_equal(fin, np.isfinite(lp))
        worst_lp = max(worst_lp, float(np.max(np.abs(lp[fin] - tlp[fin]))))
        for k in (1, 10, 31, 32, 50, 1000, n):  # partial_sort (k * 64 <= n) and nth_element
            idx = np.empty(k, np.int32)
            assert lib.lsc_top_k(_fp(a), n, k, idx.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                 None) == 0
            tv, ti = torch.topk(x, k)
            assert np.array_equal(a[idx], tv.numpy())  # same values
            assert list(idx) == ti.tolist(), f"k={k}: tie order differs from torch.topk"
            n_topk += 1
        order = torch.argsort(x, descending=True)  # default: stable=False
        r = ctypes.c_size_t()
        for tid in list(range(0, n, n // 25)) + [int(order[0]), int(order[123]), n - 1]:
            want = int(torch.where(order == tid)[0])
            assert lib.lsc_rank(_fp(a), n, tid, ctypes.byref(r), None) == 0
            assert r.value == want, f"rank of {tid}: {r.value} vs torch {want}"
            n_rank += 1
    print(f"{n_topk} topk and {n_rank} rank results identical to torch (ties included); "
          f"max |softmax - torch| = {worst_p:.3g} (tol 1e-6), "
          f"max |log_softmax - torch| = {worst_lp:.3g} (tol 1e-4)")
    assert worst_p <= 1e-6 and worst_lp <= 1e-4


CASES = [  # temperature, top_k, top_p, min_p, repetition_penalty
    (1.0, 50, 1.0, 0.0, 1.0),
    (0.7, 0, 0.9, 0.0, 1.0),
    (1.3, 40, 0.95, 0.0, 1.2),
    (1.0, 0, 0.5, 0.0, 1.0),
    (0.5, 100, 0.8, 0.05, 1.0),
    (1.0, 0, 1.0, 0.1, 1.5),
    (2.0, 3, 0.3, 0.0, 0.8),
    (1.0, 5000, 0.999, 0.0, 1.0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "t%g-k%d-p%g-minp%g-rep%g" % c)
def test_sampler_apply_matches_transformers(lib, case):
    require_oracle()
    import numpy as np
    import torch
    from transformers.generation.logits_process import (MinPLogitsWarper,
                                                        RepetitionPenaltyLogitsProcessor,
                                                        TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)
    t, k, p, minp, rep = case
    procs = []  # as GenerationMixin._get_logits_processor orders them
    if rep != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(rep))
    if t != 1.0:
        procs.append(TemperatureLogitsWarper(t))
    if k:
        procs.append(TopKLogitsWarper(k))
    if p < 1.0:
        procs.append(TopPLogitsWarper(p))
    if minp:
        procs.append(MinPLogitsWarper(minp))
    params = SamplerParams(1, t, k, p, minp, rep, 0)
    s = ctypes.c_void_p()
    err = Error()
    assert lib.lsc_sampler_new(params, ctypes.byref(s), ctypes.byref(err)) == 0, err.message
    g = torch.Generator().manual_seed(1)
    kept_counts = []
    try:
        for x in _rows(torch):
            n = x.numel()
            prev = torch.randint(0, n, (30,), generator=g)
            want = x[None].clone()
            for proc in procs:
                want = proc(prev[None], want)
            want = want[0].numpy()
            a = x.numpy().copy()
            out = np.empty(n, np.float32)
            pv = prev.to(torch.int32).numpy().copy()
            st = lib.lsc_sampler_apply(s, _fp(a), n,
                                       pv.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), len(pv),
                                       _fp(out), ctypes.byref(err))
            assert st == 0, err.message
            kept, tkept = np.isfinite(out), np.isfinite(want)
            assert np.array_equal(kept, tkept), (
                f"kept sets differ: ours {kept.sum()} vs transformers {tkept.sum()}")
            assert np.array_equal(out[kept], want[kept])
            kept_counts.append(int(kept.sum()))
    finally:
        lib.lsc_sampler_free(s)
    print(f"{case}: kept counts {kept_counts} identical to transformers")
