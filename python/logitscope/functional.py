"""softmax and log_softmax over numpy arrays, computed the stable way.

Subtracting the maximum first keeps exp() from overflowing (a logit of 1000
gives inf directly) and log-softmax uses the log-sum-exp trick, so neither
ever takes log(0) of an underflowed probability. float32 in, float32 out:
exp runs in the input's precision, the sums in float64.
"""
import numpy as np


def softmax(x, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along `axis` (rows sum to 1)."""
    x = _float(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return (e / np.sum(e, axis=axis, keepdims=True, dtype=np.float64)).astype(x.dtype, copy=False)


def log_softmax(x, axis: int = -1) -> np.ndarray:
    """x - max - log(sum(exp(x - max))) along `axis`: log-probabilities."""
    x = _float(x)
    z = x - np.max(x, axis=axis, keepdims=True)
    lse = np.log(np.sum(np.exp(z), axis=axis, keepdims=True, dtype=np.float64))
    return (z - lse).astype(x.dtype, copy=False)


def _float(x) -> np.ndarray:
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
