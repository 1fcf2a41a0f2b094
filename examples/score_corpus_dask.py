#!/usr/bin/env python3
"""Scores a corpus (one text per line of the given files) on a Dask cluster
with logitscope: one model per worker process, results in the input's order,
the same numbers as Model.score_many in one process.

    # on one machine: a LocalCluster of N worker processes
    python3 examples/score_corpus_dask.py --model gpt2 --workers 2 corpus.txt
    # on a cluster started with `dask scheduler` / `dask worker tcp://host:8786`
    python3 examples/score_corpus_dask.py --model gpt2 --scheduler tcp://host:8786 corpus.txt

The model is a Hub name (each worker resolves it through its own Hugging Face
cache) or a folder present at the same path on every worker.
"""
import argparse
import json
import math

from dask.distributed import Client, LocalCluster

import logitscope.dask as lsd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--model", default="gpt2")
    ap.add_argument("--scheduler", help="address of a running Dask scheduler")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    ap.add_argument("--threads", type=int, default=1, help="threads per model")
    a = ap.parse_args()
    texts = [line.rstrip("\n") for f in a.files for line in open(f, encoding="utf-8")
             if line.strip()]
    if a.scheduler:
        client = Client(a.scheduler)
    else:
        client = Client(LocalCluster(n_workers=a.workers, threads_per_worker=1,
                                     dashboard_address=None))
    with client:
        scores = lsd.score_texts(texts, a.model, client=client, threads=a.threads)
    total = sum(s.total_nll for s in scores)
    n = sum(s.n_scored for s in scores)
    for text, s in zip(texts, scores):
        print(json.dumps({"text": text[:60], "n_tokens": s.n_tokens, "nll": s.nll,
                          "perplexity": s.perplexity}))
    print(f"{len(texts)} texts, {n} tokens scored: corpus perplexity {math.exp(total / n):.4g}")


if __name__ == "__main__":
    main()
