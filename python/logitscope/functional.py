"""softmax and log_softmax over numpy arrays, computed the stable way.

Subtracting the maximum first keeps exp() from overflowing (a logit of 1000
gives inf directly) and log-softmax uses the log-sum-exp trick, so neither
ever takes log(0) of an underflowed probability. float32 in, float32 out
(the sums run in float64).
"""
import numpy as np


def softmax(x, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along `axis` (rows sum to 1)."""
    x = np.asarray(x)
    out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    z = x.astype(np.float64) - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(out_dtype, copy=False)


def log_softmax(x, axis: int = -1) -> np.ndarray:
    """x - max - log(sum(exp(x - max))) along `axis`: log-probabilities."""
    x = np.asarray(x)
    out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    z = x.astype(np.float64) - np.max(x, axis=axis, keepdims=True)
    return (z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))).astype(out_dtype, copy=False)
