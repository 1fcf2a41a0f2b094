"""Scoring a corpus on a Dask cluster (dask.distributed), one model per worker.

    from dask.distributed import Client
    import logitscope.dask as lsd

    client = Client("tcp://scheduler:8786")           # or Client(LocalCluster(...))
    scores = lsd.score_texts(texts, "gpt2", client=client)   # a list of Score
    bag = lsd.score_bag(dask.bag.read_text("corpus/*.txt"), "gpt2")  # lazy: a Bag of Score
    frame = lsd.score_frame(df, "gpt2", column="text")  # lazy: a DataFrame of nll, ...

Each worker process loads the model once (the first task that needs it) and
keeps it for the tasks that follow; each worker thread gets its own context on
those weights (Model.fork), so threads of one worker run in parallel. The
model is named as for logitscope.load: a folder that exists on every worker
machine, or a Hub name that each worker resolves through its own Hugging Face
cache. A partition is scored with Model.score_many, so the results are the
same numbers, bit for bit, as score_many in one process. Needs
`pip install "dask[distributed]"` (and pandas + pyarrow for score_frame;
logitscope itself only needs numpy).
"""
import os
import threading
from typing import Iterable, List, Optional

from .model import Model, load
from .results import Score

_loaded = {}  # (model, threads, weights) -> the worker's Model
_load_lock = threading.Lock()
_local = threading.local()  # this thread's fork of each loaded model


def worker_model(model: str, threads: Optional[int] = None, weights: str = "f32") -> Model:
    """This worker thread's Model: loaded once per process, forked per thread."""
    key = (os.fspath(model), threads, weights)
    forks = getattr(_local, "forks", None)
    if forks is None:
        forks = _local.forks = {}
    m = forks.get(key)
    if m is not None and not m.closed:
        return m
    with _load_lock:
        base = _loaded.get(key)
        if base is None or base.closed:
            base = _loaded[key] = load(key[0], threads=threads, weights=weights)
    m = forks[key] = base.fork()
    return m


def loaded_models() -> List[str]:
    """The models this worker process holds (for client.run(loaded_models))."""
    return sorted(k[0] for k in _loaded)


def _score_partition(texts, model, batch_size, threads, weights) -> List[Score]:
    return worker_model(model, threads, weights).score_many(list(texts), batch_size=batch_size)


def score_bag(bag, model, batch_size: int = 16, threads: Optional[int] = None,
              weights: str = "f32"):
    """A dask.bag.Bag of Score, one per text (str or list of ids) of `bag`, in order."""
    return bag.map_partitions(_score_partition, os.fspath(model), batch_size, threads, weights)


# score_frame's columns: Score's numbers, one row per text
_FRAME_COLUMNS = {"n_tokens": "int64", "nll": "float64", "total_nll": "float64",
                  "perplexity": "float64", "n_windows": "int64"}


def _score_frame_partition(part, column, model, batch_size, threads, weights):
    import pandas as pd
    scores = _score_partition(part[column].tolist(), model, batch_size, threads, weights)
    return pd.DataFrame({k: [getattr(s, k) for s in scores] for k in _FRAME_COLUMNS},
                        index=part.index).astype(_FRAME_COLUMNS)


def score_frame(df, model, column: str = "text", batch_size: int = 16,
                threads: Optional[int] = None, weights: str = "f32"):
    """A dask DataFrame with df's index and, for each text of df[column], its
    Score's n_tokens, nll, total_nll, perplexity and n_windows."""
    import pandas as pd
    meta = pd.DataFrame({k: pd.Series(dtype=t) for k, t in _FRAME_COLUMNS.items()})
    return df.map_partitions(_score_frame_partition, column, os.fspath(model), batch_size,
                             threads, weights, meta=meta)


def score_texts(texts: Iterable, model, client=None, npartitions: Optional[int] = None,
                batch_size: int = 16, threads: Optional[int] = None,
                weights: str = "f32") -> List[Score]:
    """Scores a list of texts on the cluster of `client` (None: dask's current
    scheduler) in npartitions pieces (default two per worker) and returns
    the list of Score in the texts' order."""
    import dask.bag as db
    texts = list(texts)
    if not texts:
        return []
    if npartitions is None:
        workers = len(client.scheduler_info().get("workers", {})) if client is not None else 1
        npartitions = max(1, 2 * workers)
    bag = score_bag(db.from_sequence(texts, npartitions=min(npartitions, len(texts))), model,
                    batch_size, threads, weights)
    return client.compute(bag).result() if client is not None else bag.compute()
