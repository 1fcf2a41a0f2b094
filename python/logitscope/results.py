"""The small result objects that Model methods return (plain, picklable)."""
from dataclasses import dataclass, field
from typing import List, NamedTuple

import numpy as np


@dataclass
class Generation:
    """What Model.generate made: `ids` = prompt + `new_ids`; `text` decodes `ids`."""
    ids: List[int]
    new_ids: List[int]
    text: str
    new_text: str
    stop: str  # "eos" or "max_new_tokens"


class GeneratedToken(NamedTuple):
    """One token of a streamed generation (Model.generate(..., stream=True))."""
    id: int
    token: str
    step: int


@dataclass
class Score:
    """How well the model predicts a text: transformers' model(ids, labels=ids).

    token_logprobs[t - 1] = log p(ids[t] | ids[:t]) (float32, n_tokens - 1 of
    them); nll is their negated mean (the loss), total_nll their negated sum,
    perplexity = exp(nll).
    """
    ids: List[int]
    token_logprobs: np.ndarray = field(repr=False)
    nll: float
    total_nll: float
    perplexity: float
    n_windows: int = 1

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def n_scored(self) -> int:
        return len(self.ids) - 1

    def __eq__(self, other):
        if not isinstance(other, Score):
            return NotImplemented
        return (self.ids == other.ids and self.nll == other.nll and
                self.total_nll == other.total_nll and self.perplexity == other.perplexity and
                np.array_equal(self.token_logprobs, other.token_logprobs))
