"""logitscope: GPT-2 next-token prediction on a small C engine, from Python.

The same numbers as transformers' GPT2LMHeadModel in float32, as numpy
arrays, with hooks written as Python functions:

    >>> import logitscope
    >>> m = logitscope.load("gpt2")              # a folder or a Hub name
    >>> logits = m.logits("The quick brown")     # float32 [T, n_vocab]
    >>> m.next("The quick brown", k=3)           # [{id, token, logit, prob, logprob}, ...]
    >>> m.generate("Once upon a time", max_new_tokens=20).text
    >>> with m.hooks({"blocks.0.hook_mlp_out": lambda act, name: act * 0}):
    ...     m.logits("The quick brown")

See help(logitscope.Model) for every method.
"""
from ._lsc import ffi as _ffi, lib as _lib
from .errors import (ClosedError, ContextFullError, Error, FormatError, HookError,
                     InvalidInputError, IOFailureError, NetworkError, NotFoundError,
                     OutOfMemoryError)
from .functional import log_softmax, softmax
from .hooks import Hook
from .model import Model, load, resolve
from .results import GeneratedToken, Generation, Score
from .tokenizer import Tokenizer

__version__ = _ffi.string(_lib._lsc_py_version()).decode()  # the header's LSC_VERSION


def simd_level() -> str:
    """The instruction set the C kernels use in this process: "ref", "avx2" or "avx512"."""
    return _ffi.string(_lib.lsc_simd_level()).decode()


__all__ = [
    "load", "resolve", "Model", "Tokenizer", "Hook", "softmax", "log_softmax", "Generation",
    "GeneratedToken", "Score", "Error", "InvalidInputError", "ContextFullError",
    "NotFoundError", "FormatError", "IOFailureError", "OutOfMemoryError", "NetworkError",
    "HookError", "ClosedError", "simd_level", "__version__",
]
