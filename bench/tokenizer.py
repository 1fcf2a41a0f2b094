#!/usr/bin/env python3
"""Tokenizer speed: logitscope vs tiktoken vs Hugging Face tokenizers.

Encodes two texts of a few MB each, single-threaded, and prints MB/s (10^6
bytes of UTF-8 per second) as the median of --runs runs, with the ratios:
  english  Python's own documentation: pydoc topics + stdlib docstrings (prose, some code)
  mixed    tests/tokenizer_corpus.py strings: many scripts, emoji, code points
logitscope is timed in-process around lsc_tokenizer_encode only (build/bench/
tokenizer_bench, a fresh tokenizer per run, so its piece cache starts cold);
tiktoken's Encoding.encode and tokenizers' Tokenizer.encode are timed around the
call. tiktoken's gpt2 encoding is built offline from the same vocab.json.

  bench/tokenizer.py [--runs 5] [--mb 4]
"""
import argparse
import ast
import glob
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
BUILD = ROOT / os.environ.get("LOGITSCOPE_BUILD", "build")
sys.path.insert(0, str(ROOT / "tests"))


def english_text(limit):
    """The Python documentation that ships with Python (pydoc's topics, then
    the docstrings of the standard library), up to `limit` bytes."""
    from pydoc_data.topics import topics
    out = [topics[k] for k in sorted(topics)]
    size = sum(len(t.encode()) for t in out)
    lib = os.path.dirname(os.__file__)
    for path in sorted(glob.glob(lib + "/**/*.py", recursive=True)):
        if size >= limit:
            break
        if "site-packages" in path:
            continue
        try:
            tree = ast.parse(open(path, encoding="utf-8").read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                d = ast.get_docstring(node)
                if d:
                    out.append(d)
                    size += len(d.encode()) + 2
    return "\n\n".join(out).encode()[:limit].decode(errors="ignore")


def mixed_text(limit):
    """Corpus strings (all categories) joined by newlines, up to `limit` bytes."""
    from tokenizer_corpus import corpus
    out, size, seed = [], 0, 1
    while size < limit:
        for s in corpus(4000, seed=seed):
            out.append(s)
            size += len(s.encode()) + 1
        seed += 1
    return "\n".join(out)


def tiktoken_gpt2():
    import json
    import tiktoken
    from test_tokenizer_oracle import GPT2_PAT, bytes_to_unicode
    u2b = {c: b for b, c in bytes_to_unicode().items()}
    vocab = json.loads((DATA / "vocab.json").read_text(encoding="utf-8"))
    ranks = {bytes(u2b[c] for c in t): i for t, i in vocab.items() if i != 50256}
    return tiktoken.Encoding("gpt2-offline", pat_str=GPT2_PAT, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def time_calls(fn, runs):
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mb", type=float, default=3.0, help="size of each text in MB (english: at most ~2.8)")
    args = ap.parse_args()
    bench_bin = BUILD / "bench" / "tokenizer_bench"
    if not bench_bin.exists():
        sys.exit(f"{bench_bin} is missing: run make first")
    from transformers import GPT2Tokenizer
    hf = GPT2Tokenizer.from_pretrained(str(DATA))._tokenizer  # the Rust tokenizers.Tokenizer
    tt = tiktoken_gpt2()
    limit = int(args.mb * 1e6)
    print(f"tokenizer encode speed, MB/s (median of {args.runs} runs, one thread)")
    print(f"{'text':8} {'MB':>6} {'tokens':>9} {'logitscope':>11} {'tiktoken':>9} {'HF tok':>8}"
          f" {'vs tiktoken':>12} {'vs HF':>7}")
    for name, text in (("english", english_text(limit)), ("mixed", mixed_text(limit))):
        data = text.encode()
        mb = len(data) / 1e6
        with tempfile.NamedTemporaryFile(suffix=".txt") as f:
            f.write(data)
            f.flush()
            out = subprocess.run([str(bench_bin), str(DATA), f.name, str(args.runs)], capture_output=True,
                                 text=True, check=True).stdout.split()
        n_ours = int(out[out.index("tokens") + 1])
        t_ours = statistics.median(map(float, out[out.index("times") + 1:]))
        t_tt, ids_tt = time_calls(lambda: tt.encode(text, allowed_special="all"), args.runs)
        t_hf, enc_hf = time_calls(lambda: hf.encode(text, add_special_tokens=False), args.runs)
        assert n_ours == len(ids_tt) == len(enc_hf.ids), (n_ours, len(ids_tt), len(enc_hf.ids))
        s_ours, s_tt, s_hf = mb / t_ours, mb / t_tt, mb / t_hf
        print(f"{name:8} {mb:6.2f} {n_ours:9d} {s_ours:11.1f} {s_tt:9.1f} {s_hf:8.1f}"
              f" {s_ours / s_tt:11.2f}x {s_ours / s_hf:6.1f}x")


if __name__ == "__main__":
    main()
