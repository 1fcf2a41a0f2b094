"""Batch invariance on GPT-2's widths: tests/unit/test_batch.c (steps of
several sequences give each the same bits as its run alone, at every SIMD
level and 1-3 threads; batched generation gives each sequence its tokens
alone, greedy and seeded) on distilgpt2-shape and the 124M-shaped checkpoint,
which `make unit-test` leaves out (it runs the tiny fixtures only, whose
widths fit in one k block of the kernels)."""
import os
import subprocess

from fixtures import OUT, fixture_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("LOGITSCOPE_BUILD", "build"))


def test_batch_invariance_gpt2_widths():
    names = ["distilgpt2-shape", "gpt2-124m"]
    for n in names + ["tiny", "tiny-untied"]:
        fixture_dir(n)
    p = subprocess.run([os.path.join(BUILD, "tests", "test_batch"), *names],
                       env=dict(os.environ, LSC_FIXTURES=str(OUT)),
                       capture_output=True, text=True, timeout=900)
    print(p.stdout)
    print(p.stderr)
    assert p.returncode == 0
    assert "gpt2-124m, ref, 3 threads" in p.stdout and "test_generate_batch" in p.stdout
