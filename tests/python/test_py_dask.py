"""logitscope.dask on a LocalCluster of 2 worker processes: each worker loads
the model once and the scores of a list and of a dataframe column equal
single-process score_many bit for bit."""
import os

import pkg_path  # noqa: F401  (before logitscope)
import logitscope

from fixtures import fixture_dir

TEXTS = [f"Text number {i}: the quick brown fox jumps over the lazy dog {i} times."
         for i in range(10)] + ["a b", "Paris is the capital of France " * 3, "x " * 40]


def test_score_texts_on_two_worker_processes_equals_score_many(monkeypatch):
    import dask.dataframe as dd
    import pandas as pd
    from dask.distributed import Client, LocalCluster
    import logitscope.dask as lsd

    path = fixture_dir("tiny")
    want = logitscope.load(path, threads=1).score_many(TEXTS)
    # the workers are new processes: they import logitscope from python/ too
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(pkg_path.ROOT / "python"), os.environ.get("PYTHONPATH", "")]))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        got = lsd.score_texts(TEXTS, path, client=client, npartitions=4, threads=1)
        index = [100 + 7 * i for i in range(len(TEXTS))]  # kept as given
        df = dd.from_pandas(pd.DataFrame({"text": TEXTS, "n": range(len(TEXTS))}, index=index),
                            npartitions=3)
        frame = client.compute(lsd.score_frame(df, path, threads=1)).result()
        per_worker = client.run(lsd.loaded_models)
    assert got == want
    assert list(frame.index) == index and list(frame.columns) == \
        ["n_tokens", "nll", "total_nll", "perplexity", "n_windows"]
    for i, s in zip(index, want):
        row = frame.loc[i]
        assert (row.n_tokens, row.nll, row.total_nll, row.perplexity, row.n_windows) == \
            (s.n_tokens, s.nll, s.total_nll, s.perplexity, s.n_windows), (i, row, s)
    assert len(per_worker) == 2 and all(v == [str(path)] for v in per_worker.values()), \
        per_worker
