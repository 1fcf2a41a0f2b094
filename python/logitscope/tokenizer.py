"""Tokenizer: GPT-2's byte-level BPE from the C library (lsc_tokenizer_*)."""
import threading
from typing import Iterable, List, Optional

from ._lsc import ffi, lib
from .errors import ClosedError, InvalidInputError, new_err, raise_for


class Tokenizer:
    """The model folder's tokenizer (vocab.json + merges.txt or tokenizer.json).

    encode() and decode() give the ids and text of transformers'
    GPT2Tokenizer; "<|endoftext|>" in a text is the special token (id 50256)
    unless special=False. The files are read at the first call that needs
    them (their errors are raised there): a model that only runs ids never
    pays for them.
    """

    def __init__(self, path: str, owner=None):
        self._path = path
        self._ptr = None  # loaded at first use: parsing the files is most of a load's time
        self._owner = owner  # the model's shared state, which frees the C tokenizer
        self._lock = threading.Lock()  # encode keeps a cache: one caller at a time

    def _tok(self):
        if self._owner is not None and self._owner.closed:
            raise ClosedError()
        if self._ptr is None:
            with self._lock:
                if self._ptr is None:
                    out = ffi.new("lsc_tokenizer **")
                    err = new_err()
                    raise_for(lib.lsc_tokenizer_load(self._path.encode(), out, err), err)
                    self._ptr = out[0]
        return self._ptr

    def _free(self):
        with self._lock:  # never under an encode running in another thread
            if self._ptr is not None:
                lib.lsc_tokenizer_free(self._ptr)
                self._ptr = None

    def __del__(self):
        self._free()

    @property
    def n_vocab(self) -> int:
        return lib.lsc_tokenizer_n_vocab(self._tok())

    @property
    def eos_id(self) -> Optional[int]:
        """The id of "<|endoftext|>", or None when the vocabulary lacks it."""
        eos = lib.lsc_tokenizer_eos_id(self._tok())
        return eos if eos >= 0 else None

    def __len__(self) -> int:
        return self.n_vocab

    def encode(self, text: str, special: bool = True) -> List[int]:
        """The token ids of `text` (a str)."""
        if not isinstance(text, str):
            raise TypeError(f"encode: text must be a str, not {type(text).__name__}")
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidInputError(f"text is not valid Unicode: {e.reason} at index {e.start}",
                                    "LSC_ERR_INVALID_ARG") from None
        ids = ffi.new("int32_t **")
        n = ffi.new("size_t *")
        err = new_err()
        flags = 0 if special else lib.LSC_ENCODE_NO_SPECIAL
        tok = self._tok()
        with self._lock:
            st = lib.lsc_tokenizer_encode(tok, data, len(data), flags, ids, n, err)
        raise_for(st, err)
        try:
            return list(ffi.unpack(ids[0], n[0])) if n[0] else []
        finally:
            lib.lsc_free(ids[0])

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids` (invalid UTF-8 becomes U+FFFD, as bytes.decode(errors='replace'))."""
        ids = self.check_ids(ids, allow_empty=True)
        arr = ffi.new("int32_t[]", ids) if ids else ffi.NULL
        text = ffi.new("char **")
        n = ffi.new("size_t *")
        err = new_err()
        st = lib.lsc_tokenizer_decode(self._tok(), arr, len(ids), text, n, err)
        raise_for(st, err)
        try:
            return ffi.unpack(text[0], n[0]).decode("utf-8")
        finally:
            lib.lsc_free(text[0])

    def token(self, id: int) -> str:
        """The decoded text of one token (" coffee" for 6891)."""
        return self.decode([id])

    def token_bytes(self, id: int) -> bytes:
        """The raw bytes of one token (a token may hold part of a character)."""
        self.check_ids([id])
        n = ffi.new("size_t *")
        p = lib.lsc_tokenizer_token_bytes(self._tok(), int(id), n)
        return ffi.unpack(p, n[0])

    def check_ids(self, ids, allow_empty=False, limit=None) -> List[int]:
        """ids as a list of ints in [0, limit or n_vocab), else ValueError with the
        library's message (what `logitscope logits --ids` prints)."""
        try:
            out = [int(i) for i in ids]
        except (TypeError, ValueError):
            raise TypeError("ids must be a sequence of integers (or a str to encode)") from None
        if not out and not allow_empty:
            raise InvalidInputError("no tokens to run the model on", "LSC_ERR_INVALID_ARG")
        V = self.n_vocab if limit is None else limit
        for i, t in enumerate(out):
            if t < 0 or t >= V:
                raise InvalidInputError(  # lsc_ctx_forward's words (`logitscope logits`)
                    f"token id {t} (at index {i}) is outside the vocabulary [0, {V})",
                    "LSC_ERR_INVALID_ARG")
        return out

    def __repr__(self) -> str:  # never reads the files, nor raises on a closed model
        if self._ptr is None:
            return f"<logitscope.Tokenizer of {self._path!r} (not read yet, or closed)>"
        return f"<logitscope.Tokenizer n_vocab={self.n_vocab} eos_id={self.eos_id}>"
