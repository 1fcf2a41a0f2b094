"""The small result objects that Model methods return (plain, picklable).

Plain classes rather than dataclasses: a dataclass compiles its methods at
import, which costs tens of milliseconds of `import logitscope`.
"""
from typing import List

import numpy as np


class _Plain:
    __slots__ = ()

    def _fields(self):
        return tuple(getattr(self, f) for f in self.__slots__)

    def __repr__(self):
        body = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__ if f not in
                         self._hidden)
        return f"{type(self).__name__}({body})"

    def __getstate__(self):
        return self._fields()

    def __setstate__(self, state):
        for f, v in zip(self.__slots__, state):
            object.__setattr__(self, f, v)

    _hidden = ()


class Generation(_Plain):
    """What Model.generate made: `ids` = prompt + `new_ids`; `text` decodes
    `ids`, `new_text` decodes `new_ids`; `stop` is "eos" or "max_new_tokens"."""
    __slots__ = ("ids", "new_ids", "text", "new_text", "stop")

    def __init__(self, ids: List[int], new_ids: List[int], text: str, new_text: str, stop: str):
        self.ids, self.new_ids, self.text, self.new_text, self.stop = \
            ids, new_ids, text, new_text, stop

    def __eq__(self, other):
        return isinstance(other, Generation) and self._fields() == other._fields()


class GeneratedToken(_Plain):
    """One token of a streamed generation (Model.generate(..., stream=True))."""
    __slots__ = ("id", "token", "step")

    def __init__(self, id: int, token: str, step: int):
        self.id, self.token, self.step = id, token, step

    def __eq__(self, other):
        return isinstance(other, GeneratedToken) and self._fields() == other._fields()


class Score(_Plain):
    """How well the model predicts a text: transformers' model(ids, labels=ids).

    token_logprobs[t - 1] = log p(ids[t] | ids[:t]) (float32, n_tokens - 1 of
    them); nll is their negated mean (the loss), total_nll their negated sum,
    perplexity = exp(nll); n_windows the forward windows of a long text.
    """
    __slots__ = ("ids", "token_logprobs", "nll", "total_nll", "perplexity", "n_windows")
    _hidden = ("token_logprobs",)

    def __init__(self, ids: List[int], token_logprobs: np.ndarray, nll: float, total_nll: float,
                 perplexity: float, n_windows: int = 1):
        self.ids, self.token_logprobs, self.nll, self.total_nll = ids, token_logprobs, nll, \
            total_nll
        self.perplexity, self.n_windows = perplexity, n_windows

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def n_scored(self) -> int:
        return len(self.ids) - 1

    def __eq__(self, other):
        """Equal ids and the same numbers, bit for bit."""
        if not isinstance(other, Score):
            return NotImplemented
        return (self.ids == other.ids and self.nll == other.nll and
                self.total_nll == other.total_nll and self.perplexity == other.perplexity and
                np.array_equal(self.token_logprobs, other.token_logprobs))
