"""Model: a GPT-2 checkpoint on the C engine, with numpy in and out.

One Model owns one lsc_ctx (KV cache, scratch, hooks) over weights that it
may share with its forks (Model.fork()): the weights are freed when the last
model using them is closed. Every C call that runs the model releases the GIL
(cffi API mode), so two threads with two models, or two forks of one model,
run in parallel; calls on one Model from two threads take turns (a lock).

m.logits() keeps the ids in the KV cache and the rows it computed, so a call
whose ids extend the previous call's only runs the new tokens (a Python
generation loop costs one token per step). The rows of earlier positions are
the same bits either way: the engine's rows do not depend on how the tokens
were split between calls. With hooks registered every call runs from scratch,
so hooks see every position.
"""
import math
import os
import threading
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import hooks as _hooks
from ._lsc import ffi, lib
from .errors import ClosedError, ContextFullError, InvalidInputError, new_err, raise_for
from .results import GeneratedToken, Generation, Score
from .tokenizer import Tokenizer

IdsOrText = Union[str, Sequence[int], np.ndarray]

_WEIGHTS = {"f32": lib.LSC_WEIGHTS_F32, "bf16": lib.LSC_WEIGHTS_BF16, "q8": lib.LSC_WEIGHTS_Q8}

# positions per sequence per forward step while scoring, as lsc_score (bounds
# the logits buffer), and the most rows one batched step stacks: its logits
# [rows, n_vocab] live in the first context's scratch (~100 MB for GPT-2)
_SCORE_CHUNK = 128
_BATCH_ROWS = 512


class _Weights:
    """The loaded lsc_model + its tokenizer, shared by a model and its forks."""

    def __init__(self, path: str, model_ptr):
        self.path = path
        self.ptr = model_ptr
        self.users = 0
        self.closed = False
        self.lock = threading.Lock()
        self.tokenizer = Tokenizer(path, owner=self)
        self.n_vocab = lib.lsc_model_n_vocab(model_ptr)
        self.n_ctx = lib.lsc_model_n_ctx(model_ptr)

    def acquire(self):
        with self.lock:
            if self.closed:
                raise ClosedError()
            self.users += 1

    def release(self):
        with self.lock:
            self.users -= 1
            if self.users == 0 and not self.closed:
                self.closed = True
                self.tokenizer._free()
                lib.lsc_model_free(self.ptr)


def resolve(name_or_dir: Union[str, os.PathLike], revision: Optional[str] = None,
            offline: Optional[bool] = None) -> str:
    """The folder of a model: a local folder as given, or a Hub repo id
    ("gpt2", "openai-community/gpt2") through the Hugging Face cache, downloading
    what it lacks (the CLI's code: lsc_hub_resolve). offline=None follows
    $HF_HUB_OFFLINE."""
    name = os.fspath(name_or_dir)
    p = lib.lsc_hub_default_params()
    keep = []
    if revision is not None:
        keep.append(ffi.new("char[]", revision.encode()))
        p.revision = keep[-1]
    if offline is not None:
        p.offline = 1 if offline else 0
    out = ffi.new("char **")
    err = new_err()
    st = lib.lsc_hub_resolve(name.encode(), p, out, err)
    raise_for(st, err)
    try:
        return ffi.string(out[0]).decode()
    finally:
        lib.lsc_free(out[0])


def load(name_or_dir: Union[str, os.PathLike], threads: Optional[int] = None,
         weights: str = "f32", revision: Optional[str] = None,
         offline: Optional[bool] = None, mmap: bool = True) -> "Model":
    """Loads a GPT-2 checkpoint: a local folder (config.json, model.safetensors,
    vocab.json + merges.txt or tokenizer.json) or a Hub name resolved through
    the Hugging Face cache as the CLI does.

    threads: threads for the matrix products (None = all cores).
    weights: "f32" (exact, mapped without copy), "bf16" or "q8" (converted at load).
    mmap: True uses the weights file where it lies (instant load, shared page
    cache); False reads it into this process's memory in huge pages, F32
    matrices in the batched products' layout (a 0.5 s load for 124M, 1.5x
    faster batches: docs/performance.md, "Weights in panels"). Same bits.
    Raises NotFoundError (missing folder/file, or offline and not cached),
    FormatError (corrupt files), InvalidInputError for bad arguments. The
    tokenizer's files are read at its first use (encode, decode, a text input).

        >>> m = logitscope.load("gpt2")
        >>> m.next("The capital of France is", k=3)
    """
    if weights not in _WEIGHTS:
        raise InvalidInputError(f"weights must be one of {', '.join(_WEIGHTS)}, not {weights!r}",
                                "LSC_ERR_INVALID_ARG")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidInputError(f"threads must be a whole number >= 1 or None, not {threads!r}",
                                "LSC_ERR_INVALID_ARG")
    path = resolve(name_or_dir, revision=revision, offline=offline)
    mp = lib.lsc_model_default_params()
    mp.weight_type = _WEIGHTS[weights]
    mp.use_mmap = 1 if mmap else 0
    model = ffi.new("lsc_model **")
    err = new_err()
    raise_for(lib.lsc_model_load(path.encode(), mp, model, err), err)
    return Model(_Weights(path, model[0]), threads)


class Model:
    """A loaded GPT-2 model and one context (KV cache, hooks) to run it in.

    Inputs named ids_or_text are a str (encoded with m.tokenizer) or a
    sequence / 1-D array of token ids. Returned arrays are float32 and stay
    valid (they are never views into the engine's buffers).
    """

    def __init__(self, weights: _Weights, threads: Optional[int] = None):
        weights.acquire()
        self._w = weights
        self._ctx = None
        self.threads = threads
        try:
            self._ctx = self._new_ctx()
        except BaseException:
            weights.release()
            raise
        self.tokenizer: Tokenizer = weights.tokenizer
        self._lock = threading.Lock()
        self._busy = None  # the thread running a call (to catch calls from hooks)
        self._regs: List[_hooks._Registration] = []
        self._hook_error: Optional[BaseException] = None
        self._epoch = 0  # bumped by every call that changes the context
        self._seq: Optional[np.ndarray] = None  # ids in the KV cache, when reusable
        self._rows: Optional[np.ndarray] = None  # their logits [capacity, V], when kept

    # ------------------------------------------------------------------ life
    def _new_ctx(self, n_ctx: int = 0, threads: Optional[int] = None):
        p = lib.lsc_ctx_default_params()
        p.n_threads = (self.threads if threads is None else threads) or 0
        p.n_ctx = n_ctx
        out = ffi.new("lsc_ctx **")
        err = new_err()
        raise_for(lib.lsc_ctx_new(self._w.ptr, p, out, err), err)
        return out[0]

    def fork(self, threads: Optional[int] = None) -> "Model":
        """A new Model on the same weights with its own context (KV cache,
        hooks): for a second thread, or a second conversation."""
        self._check_open()
        return Model(self._w, self.threads if threads is None else threads)

    def close(self) -> None:
        """Frees the context (and the weights when no fork uses them). Calling
        a closed model raises ClosedError; closing twice is fine."""
        with self._lock:
            if self._ctx is None:
                return
            lib.lsc_ctx_free(self._ctx)
            self._ctx = None
            self._regs.clear()
            self._rows = self._seq = None
            self._w.release()

    @property
    def closed(self) -> bool:
        return self._ctx is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_ctx", None) is not None and hasattr(self, "_lock"):
            self.close()

    def _check_open(self):
        if self._ctx is None:
            raise ClosedError()

    class _Using:
        """Holds the model's lock for one call; refuses calls from its own hooks."""
        __slots__ = ("m",)

        def __init__(self, m):
            self.m = m

        def __enter__(self):
            m = self.m
            if m._busy == threading.get_ident():
                raise RuntimeError("a hook cannot call the model it is running in "
                                   "(use a fork: m.fork())")
            m._lock.acquire()
            if m._ctx is None:
                m._lock.release()
                raise ClosedError()
            m._busy = threading.get_ident()
            return m._ctx

        def __exit__(self, *exc):
            self.m._busy = None
            self.m._lock.release()

    def _using(self):
        return Model._Using(self)

    # ---------------------------------------------------------- description
    @property
    def path(self) -> str:
        """The folder the checkpoint was loaded from."""
        return self._w.path

    @property
    def config(self) -> Dict[str, object]:
        """The hyper-parameters from config.json (n_layer, n_head, n_embd, n_vocab, n_ctx, ...)."""
        self._check_open()
        c = lib.lsc_model_config(self._w.ptr)
        return {
            "n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd,
            "n_vocab": c.n_vocab, "n_ctx": c.n_ctx, "n_inner": c.n_inner,
            "layer_norm_epsilon": float(str(np.float32(c.layer_norm_epsilon))),  # as config.json says it
            "activation_function": ffi.string(c.activation_function).decode(),
            "scale_attn_weights": bool(c.scale_attn_weights),
            "scale_attn_by_inverse_layer_idx": bool(c.scale_attn_by_inverse_layer_idx),
            "tie_word_embeddings": bool(c.tie_word_embeddings),
        }

    @property
    def n_vocab(self) -> int:
        return self._w.n_vocab

    @property
    def n_ctx(self) -> int:
        return self._w.n_ctx

    @property
    def hook_points(self) -> List[str]:
        """The hook point names in forward order (TransformerLens names)."""
        self._check_open()
        p = self._w.ptr
        return [ffi.string(lib.lsc_model_hook_point_name(p, i)).decode()
                for i in range(lib.lsc_model_n_hook_points(p))]

    def __repr__(self) -> str:
        if self._ctx is None:
            return "<logitscope.Model (closed)>"
        n = lib.lsc_model_module_tree(self._w.ptr, ffi.NULL, 0)
        buf = ffi.new("char[]", n + 1)
        lib.lsc_model_module_tree(self._w.ptr, buf, n + 1)
        return ffi.string(buf).decode().rstrip("\n")  # print(model), as `logitscope arch`

    # ---------------------------------------------------------------- input
    def _ids(self, ids_or_text: IdsOrText) -> np.ndarray:
        """The input as a contiguous int32 array, checked against the vocabulary."""
        self._check_open()
        if isinstance(ids_or_text, str):
            ids = self.tokenizer.encode(ids_or_text)
            if not ids:
                raise InvalidInputError("the text encodes to no tokens", "LSC_ERR_INVALID_ARG")
        else:
            if isinstance(ids_or_text, np.ndarray) and ids_or_text.ndim != 1:
                raise InvalidInputError(f"ids must be 1-D, got shape {ids_or_text.shape}",
                                        "LSC_ERR_INVALID_ARG")
            ids = self.tokenizer.check_ids(ids_or_text, limit=self.n_vocab)
        if len(ids) > self.n_ctx:
            raise ContextFullError(
                f"{len(ids)} tokens after 0 cached ones exceed the context of {self.n_ctx} "
                "positions (n_positions)", "LSC_ERR_CONTEXT_FULL")
        return np.ascontiguousarray(ids, dtype=np.int32)

    def _token_id(self, token: Union[int, str]) -> int:
        if isinstance(token, str):
            ids = self.tokenizer.encode(token)
            if len(ids) != 1:
                raise InvalidInputError(f"token {token!r} is {len(ids)} tokens {ids}, not one "
                                        "(give its id instead)", "LSC_ERR_INVALID_ARG")
            return ids[0]
        return self.tokenizer.check_ids([token], limit=self.n_vocab)[0]

    def _check_k(self, k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or \
                not 1 <= k <= self.n_vocab:
            raise InvalidInputError(f"k must be a whole number in 1..{self.n_vocab}, not {k!r}",
                                    "LSC_ERR_INVALID_ARG")
        return int(k)

    def _pos(self, pos: int, n: int) -> int:
        if not -n <= pos < n:
            raise InvalidInputError(f"pos {pos} is outside the sequence of {n} tokens (use "
                                    f"0..{n - 1}, or -{n}..-1 from the end)", "LSC_ERR_INVALID_ARG")
        return pos % n

    # -------------------------------------------------------------- forward
    def _hook_failed(self, e: BaseException) -> None:
        if self._hook_error is None:
            self._hook_error = e

    def _check(self, st: int, err) -> None:
        """raise_for, but a hook's own exception comes first."""
        e, self._hook_error = self._hook_error, None
        if st == lib.LSC_ERR_HOOK and e is not None:
            raise e
        raise_for(st, err)

    def _forward(self, ctx, ids: np.ndarray, mode) -> None:
        err = new_err()
        st = lib.lsc_ctx_forward(ctx, ffi.from_buffer("int32_t[]", ids), len(ids), mode, err)
        self._check(st, err)

    def _rows_for(self, ctx, ids: np.ndarray) -> np.ndarray:
        """Logits [T, V] of ids, run only from where the cached ids stop."""
        self._epoch += 1
        n, V = len(ids), self.n_vocab
        seq, rows = self._seq, self._rows
        reuse = (not self._regs and seq is not None and rows is not None and
                 len(seq) <= n and np.array_equal(ids[:len(seq)], seq))
        if reuse and len(seq) == n:
            return _read_only(rows[:n])
        start = len(seq) if reuse else 0
        self._seq = None  # unknown until the forward succeeds
        if not reuse:
            lib.lsc_ctx_reset(ctx)
            rows = None
        if rows is None:
            # a new buffer for the whole context: rows handed out are never
            # rewritten, and the pages of rows not yet computed are never touched
            rows = np.empty((self.n_ctx, V), dtype=np.float32)
        try:
            self._forward(ctx, ids[start:], lib.LSC_LOGITS_ALL)
        except BaseException:
            if start:
                self._seq, self._rows = ids[:start].copy(), rows  # the cache is as before
            raise
        nr = ffi.new("size_t *")
        out = lib.lsc_ctx_logits(ctx, nr)
        rows[start:n] = np.frombuffer(ffi.buffer(out, 4 * V * nr[0]), np.float32).reshape(-1, V)
        if self._regs:
            self._rows = None
        else:
            self._seq, self._rows = ids.copy(), rows
        return _read_only(rows[:n])

    def reset(self) -> None:
        """Forgets the cached ids and logits (the next call runs from scratch)."""
        with self._using() as ctx:
            lib.lsc_ctx_reset(ctx)
            self._seq = self._rows = None
            self._epoch += 1

    # ------------------------------------------------------------- the API
    def logits(self, ids_or_text: IdsOrText) -> np.ndarray:
        """The logits at every position: float32 [T, n_vocab] (read-only;
        rows[t] predicts the token after position t). Same numbers as
        transformers' model(ids).logits[0]."""
        ids = self._ids(ids_or_text)
        with self._using() as ctx:
            return self._rows_for(ctx, ids)

    def next(self, ids_or_text: IdsOrText, k: int = 10, pos: int = -1) -> List[dict]:
        """The k most likely next tokens after position pos (default the last),
        as torch.topk: [{id, token, logit, prob, logprob}, ...] best first."""
        ids = self._ids(ids_or_text)
        p = self._pos(pos, len(ids))
        V = self.n_vocab
        k = self._check_k(k)
        with self._using() as ctx:
            row = np.ascontiguousarray(self._rows_for(ctx, ids[:p + 1])[-1])
        probs, logprobs = _c_softmax(row), _c_log_softmax(row)
        top = ffi.new("int32_t[]", k)
        err = new_err()
        raise_for(lib.lsc_top_k(ffi.from_buffer("float[]", row), V, k, top, err), err)
        return [{"id": int(i), "token": self.tokenizer.token(int(i)), "logit": float(row[i]),
                 "prob": float(probs[i]), "logprob": float(logprobs[i])} for i in top]

    def rank(self, ids_or_text: IdsOrText, token: Union[int, str], pos: int = -1) -> dict:
        """Where `token` (a one-token text such as " coffee", or an id) stands
        after position pos: {id, token, rank, logit, prob, logprob}; rank 0 =
        the most likely, as `logitscope rank` (torch's argsort order on ties)."""
        ids = self._ids(ids_or_text)
        tid = self._token_id(token)
        p = self._pos(pos, len(ids))
        with self._using() as ctx:
            row = np.ascontiguousarray(self._rows_for(ctx, ids[:p + 1])[-1])
        r = ffi.new("size_t *")
        err = new_err()
        raise_for(lib.lsc_rank(ffi.from_buffer("float[]", row), self.n_vocab, tid, r, err), err)
        return {"id": tid, "token": self.tokenizer.token(tid), "rank": int(r[0]),
                "logit": float(row[tid]), "prob": float(_c_softmax(row)[tid]),
                "logprob": float(_c_log_softmax(row)[tid])}

    def sample(self, ids_or_text: IdsOrText, n: int = 5, replacement: bool = True,
               seed: int = 0, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
               min_p: float = 0.0, repetition_penalty: float = 1.0, pos: int = -1) -> List[int]:
        """n draws of the next token after position pos from softmax(logits)
        (after the warpers, as transformers applies them), as
        torch.multinomial; the same seed gives the CLI's draws
        (`logitscope sample --seed S [--replacement]`)."""
        ids = self._ids(ids_or_text)
        p = self._pos(pos, len(ids))
        if not isinstance(n, int) or n < 1:
            raise InvalidInputError(f"n must be a whole number >= 1, not {n!r}",
                                    "LSC_ERR_INVALID_ARG")
        sp = _sampler_params(True, seed, temperature, top_k, top_p, min_p, repetition_penalty)
        with self._using() as ctx:
            row = np.ascontiguousarray(self._rows_for(ctx, ids[:p + 1])[-1])
        V = self.n_vocab
        probs = np.empty(V, np.float32)
        pprobs = ffi.from_buffer("float[]", probs)
        with _Sampler(sp) as s:
            err = new_err()
            raise_for(lib.lsc_sampler_apply(s, ffi.from_buffer("float[]", row), V,
                                            ffi.from_buffer("int32_t[]", ids), p + 1, pprobs,
                                            err), err)
        if sp.temperature == 0.0:  # greedy: all the mass on the argmax
            best = lib.lsc_argmax(pprobs, V)
            probs[:] = 0
            probs[best] = 1
        else:
            lib.lsc_softmax(pprobs, V, pprobs)
        nonzero = int(np.count_nonzero(probs > 0))
        if not replacement and n > nonzero:
            raise InvalidInputError(
                f"n={n}: without replacement at most {nonzero} tokens can be drawn (the "
                f"vocabulary has {V}, {nonzero} with non-zero probability here); use "
                "replacement=True", "LSC_ERR_INVALID_ARG")
        rng = ffi.new("lsc_rng *")
        lib.lsc_rng_seed(rng, sp.seed)
        out = ffi.new("int32_t[]", n)
        err = new_err()
        raise_for(lib.lsc_multinomial(pprobs, V, n, 1 if replacement else 0, rng, out, err), err)
        return list(out)

    def generate(self, ids_or_text: IdsOrText, max_new_tokens: int = 20, do_sample: bool = False,
                 seed: Optional[int] = None, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, repetition_penalty: float = 1.0, min_p: float = 0.0,
                 stop_at_eos: bool = True, stream: bool = False
                 ) -> Union[Generation, Iterator[GeneratedToken]]:
        """Generates up to max_new_tokens tokens after the prompt, one at a
        time through the KV cache, as transformers' model.generate(): greedy
        (do_sample=False) or sampled with temperature / top_k / top_p / min_p
        (seed: None = a random one; the same seed gives the CLI's tokens);
        repetition_penalty applies in both modes. Stops after the eos token
        (generation_config.json's eos_token_id, else <|endoftext|>) unless
        stop_at_eos=False. Hooks registered on the model fire at every step.

        Returns a Generation (ids, new_ids, text, new_text, stop); with
        stream=True an iterator of GeneratedToken(id, token, step) as they come.
        """
        ids = self._ids(ids_or_text)
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise InvalidInputError(f"max_new_tokens must be a whole number >= 1, not "
                                    f"{max_new_tokens!r}", "LSC_ERR_INVALID_ARG")
        if len(ids) + max_new_tokens > self.n_ctx:
            raise ContextFullError(
                f"generate: {len(ids)} prompt tokens + {max_new_tokens} new tokens is more than "
                f"the context of {self.n_ctx} tokens", "LSC_ERR_CONTEXT_FULL")
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        sp = _sampler_params(do_sample, seed, temperature, top_k, top_p, min_p,
                             repetition_penalty)
        eos = self._eos_id() if stop_at_eos else -1
        if stream:
            return self._generate_stream(ids, sp, max_new_tokens, eos)
        gp = lib.lsc_generate_default_params()
        gp.max_new_tokens = max_new_tokens
        gp.eos_id = eos
        new = ffi.new("int32_t **")
        n_new = ffi.new("size_t *")
        with _Sampler(sp) as s, self._using() as ctx:
            self._epoch += 1
            self._seq = self._rows = None
            err = new_err()
            st = lib.lsc_generate(ctx, s, ffi.from_buffer("int32_t[]", ids), len(ids), gp,
                                  ffi.NULL, ffi.NULL, new, n_new, err)
            self._check(st, err)
        try:
            new_ids = list(ffi.unpack(new[0], n_new[0]))
        finally:
            lib.lsc_free(new[0])
        return self._generation(ids, new_ids, eos)

    def _generation(self, ids, new_ids, eos) -> Generation:
        all_ids = [int(i) for i in ids] + new_ids
        stop = "eos" if new_ids and eos >= 0 and new_ids[-1] == eos else "max_new_tokens"
        return Generation(ids=all_ids, new_ids=new_ids, text=self.tokenizer.decode(all_ids),
                          new_text=self.tokenizer.decode(new_ids), stop=stop)

    def _eos_id(self) -> int:
        gc = ffi.new("lsc_generation_config *")
        err = new_err()
        raise_for(lib.lsc_generation_config_load(self.path.encode(), gc, err), err)
        eos = gc.eos_id if gc.found else lib.lsc_tokenizer_eos_id(self.tokenizer._tok())
        return eos if 0 <= eos < self.n_vocab else -1

    def _generate_stream(self, ids, sp, max_new, eos) -> Iterator[GeneratedToken]:
        """lsc_generate's loop in Python, one token per next(): prompt once,
        then each new token alone through the KV cache."""
        V = self.n_vocab
        seq = np.empty(len(ids) + max_new, np.int32)
        seq[:len(ids)] = ids
        n = len(ids)
        with _Sampler(sp) as s:
            for step in range(max_new):
                with self._using() as ctx:
                    if step == 0:
                        self._epoch += 1
                        self._seq = self._rows = None
                        lib.lsc_ctx_reset(ctx)
                        self._forward(ctx, seq[:n], lib.LSC_LOGITS_LAST)
                        epoch = self._epoch
                    elif self._epoch != epoch:
                        raise RuntimeError("the model ran another call while this stream was "
                                           "open; use m.fork() for a second stream")
                    else:
                        self._forward(ctx, seq[n - 1:n], lib.LSC_LOGITS_LAST)
                    out = ffi.new("int32_t *")
                    err = new_err()
                    st = lib.lsc_sampler_sample(s, lib.lsc_ctx_logits(ctx, ffi.NULL), V,
                                                ffi.from_buffer("int32_t[]", seq), n, out, err)
                    raise_for(st, err)
                tid = int(out[0])
                seq[n] = tid
                n += 1
                yield GeneratedToken(tid, self.tokenizer.token(tid), step)
                if tid == eos:
                    return

    def score(self, ids_or_text: IdsOrText, max_length: int = 0, stride: int = 0) -> Score:
        """The log-probability of each actual next token, the mean negative
        log-likelihood (transformers' loss) and the perplexity. Texts longer
        than max_length (default the context) are scored in windows moving on
        by stride (default max_length / 2), as Hugging Face's perplexity guide;
        `logitscope score` gives the same numbers."""
        ids = self._ids_any_length(ids_or_text)
        return self._score_ids(ids, max_length, stride)

    def _ids_any_length(self, ids_or_text) -> np.ndarray:
        if isinstance(ids_or_text, str):
            self._check_open()
            return np.asarray(self.tokenizer.encode(ids_or_text), dtype=np.int32)
        return np.asarray(self.tokenizer.check_ids(ids_or_text, allow_empty=True,
                                                   limit=self.n_vocab), dtype=np.int32)

    def _score_ids(self, ids: np.ndarray, max_length: int, stride: int) -> Score:
        sp = lib.lsc_score_default_params()
        sp.max_length, sp.stride = max_length, stride
        lp = np.empty(max(len(ids) - 1, 0), np.float32)
        res = ffi.new("lsc_score_result *")
        with self._using() as ctx:
            self._epoch += 1
            self._seq = self._rows = None
            err = new_err()
            st = lib.lsc_score(ctx, ffi.from_buffer("int32_t[]", ids) if len(ids) else ffi.NULL,
                               len(ids), sp, ffi.from_buffer("float[]", lp) if len(lp) else
                               ffi.NULL, res, err)
            self._check(st, err)
        return Score(ids=[int(i) for i in ids], token_logprobs=lp, nll=res.mean_nll,
                     total_nll=res.nll, perplexity=res.perplexity, n_windows=res.n_windows)

    def score_many(self, texts: Iterable[IdsOrText], batch_size: int = 16) -> List[Score]:
        """score() of every text, batch_size sequences at a time through the
        batched engine (lsc_batch_forward: one step advances them all). The
        results equal score() of each text, bit for bit. Texts longer than
        the context are scored alone in windows; with hooks registered every
        text is scored alone (so the hooks fire)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a whole number >= 1, not "
                                    f"{batch_size!r}", "LSC_ERR_INVALID_ARG")
        all_ids = [self._ids_any_length(t) for t in texts]
        for i, ids in enumerate(all_ids):
            if len(ids) < 2:
                raise InvalidInputError(f"text {i}: {len(ids)} token{'' if len(ids) == 1 else 's'}"
                                        ": scoring needs at least 2 (one to predict from, one "
                                        "to predict)", "LSC_ERR_INVALID_ARG")
        results: List[Optional[Score]] = [None] * len(all_ids)
        batched = []
        for i, ids in enumerate(all_ids):
            if self._regs or len(ids) > self.n_ctx:
                results[i] = self._score_ids(ids, 0, 0)
            else:
                batched.append(i)
        for b in range(0, len(batched), batch_size):
            group = batched[b:b + batch_size]
            for i, s in zip(group, self._score_batch([all_ids[i] for i in group])):
                results[i] = s
        return results

    def _score_batch(self, seqs: List[np.ndarray]) -> List[Score]:
        """lsc_score's arithmetic over one batch, log p = logit - logsumexp(row)
        in double (lsc_batch_logsumexp), each step advancing every sequence by up to `chunk`
        positions (the rows are the same bits however they are split and
        stacked, with F32 weights). The steps run on the first context's
        threads; the others only hold their KV caches."""
        self._check_open()
        n_ctx = max(len(s) for s in seqs)
        V = self.n_vocab
        chunk = max(1, min(_SCORE_CHUNK, _BATCH_ROWS // len(seqs)))
        ctxs = []
        try:
            for i in range(len(seqs)):
                ctxs.append(self._new_ctx(n_ctx, None if i == 0 else 1))
            k = len(seqs)
            c_ctxs = ffi.new("lsc_ctx *[]", ctxs)
            c_ids = ffi.new("int32_t *[]", k)
            c_n = ffi.new("size_t[]", k)
            modes = ffi.new("lsc_logits_mode[]", [lib.LSC_LOGITS_ALL] * k)
            errs = ffi.new("lsc_error[]", k)
            bufs = [ffi.from_buffer("int32_t[]", s) for s in seqs]
            lps = [np.empty(len(s) - 1, np.float32) for s in seqs]
            nll = [0.0] * k
            for c in range(0, n_ctx, chunk):
                for i, s in enumerate(seqs):
                    m = min(chunk, len(s) - c) if c < len(s) else 0
                    c_ids[i] = bufs[i] + c if m else ffi.NULL
                    c_n[i] = m
                err = new_err()
                raise_for(lib.lsc_batch_forward(c_ctxs, c_ids, c_n, k, modes, errs, err), err)
                # the rows' log-sum-exps over the threads: lsc_logsumexp's bits
                live = [ctxs[i] for i in range(k) if c_n[i]]
                raise_for(lib.lsc_batch_logsumexp(ffi.new("lsc_ctx *[]", live), len(live), err),
                          err)
                for i, s in enumerate(seqs):
                    m = c_n[i]
                    if not m:
                        continue
                    rows = lib.lsc_ctx_logits(ctxs[i], ffi.NULL)
                    lse = lib.lsc_ctx_logsumexp(ctxs[i], ffi.NULL)
                    for r in range(m):
                        t = c + r + 1
                        if t >= len(s):
                            continue
                        lp = float(rows[r * V + int(s[t])]) - lse[r]
                        lps[i][t - 1] = lp
                        nll[i] -= lp
        finally:
            for c in ctxs:
                lib.lsc_ctx_free(c)
        out = []
        for i, s in enumerate(seqs):
            mean = nll[i] / (len(s) - 1)
            out.append(Score(ids=[int(t) for t in s], token_logprobs=lps[i], nll=mean,
                             total_nll=nll[i], perplexity=math.exp(mean), n_windows=1))
        return out

    # ---------------------------------------------------------------- hooks
    def add_hook(self, point_or_pattern: str, fn: _hooks.HookFn) -> _hooks.Hook:
        """Calls fn(act, name) at every forward on each hook point matching
        point_or_pattern (a name such as "blocks.3.hook_mlp_out" or "lm_head",
        or a glob such as "blocks.*.hook_resid_post"; see m.hook_points).
        `act` is a writable float32 array of the activation, [T, ...] for the
        positions this forward computes (attention scores and patterns
        [H, T, P]; shapes in include/logitscope.h): edit it in place, or
        return an array of the same shape and dtype to replace it. It is a
        copy written back after fn returns, so keeping it is safe. An exception in fn aborts the forward and is raised in the caller
        (the model stays usable). Returns a Hook; h.remove() takes it off."""
        if not callable(fn):
            raise TypeError("fn must be callable as fn(act, name)")
        with self._using() as ctx:
            reg = _hooks.register(self, ctx, str(point_or_pattern), fn)
            self._regs.append(reg)
            self._seq = self._rows = None
        return _hooks.Hook(self, reg)

    def _remove_registration(self, reg) -> None:
        if reg.c_handle is None:
            return
        with self._using() as ctx:
            lib.lsc_ctx_remove_hook(ctx, reg.c_handle)
            reg.c_handle = None
            if reg in self._regs:
                self._regs.remove(reg)
            self._seq = self._rows = None

    def hooks(self, mapping: Dict[str, _hooks.HookFn]) -> "_HookScope":
        """with m.hooks({point: fn, ...}): the hooks are registered inside the
        block and removed on exit, even on an exception."""
        return _HookScope(self, mapping)

    def clear_hooks(self) -> None:
        """Removes every hook registered on this model."""
        for reg in list(self._regs):
            self._remove_registration(reg)

    def run_with_cache(self, ids_or_text: IdsOrText,
                       names: Union[None, str, Sequence[str]] = None
                       ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """Runs the model once and returns (logits [T, V], cache): cache maps
        each hook point name (all of them, or those matching names: a list of
        names/globs or one glob) to its activation over the whole sequence,
        float32, named and shaped as the CLI's --cache arrays ([T, ...];
        attention maps [H, T, T]). Registered hooks fire first, so the cache
        holds the values they rewrote."""
        ids = self._ids(ids_or_text)
        pats = ["*"] if names is None else [names] if isinstance(names, str) else list(names)
        cache: Dict[str, np.ndarray] = {}

        def keep(view, name, act):
            cache[name] = view.copy()

        regs = []
        with self._using() as ctx:
            try:
                for p in pats:
                    regs.append(_hooks.register(self, ctx, str(p), keep, internal=True))
                self._regs.extend(regs)
                logits = self._rows_for(ctx, ids).copy()
            finally:
                for r in regs:
                    lib.lsc_ctx_remove_hook(ctx, r.c_handle)
                    r.c_handle = None
                    self._regs.remove(r)
        order = {n: i for i, n in enumerate(self.hook_points)}
        return logits, dict(sorted(cache.items(), key=lambda kv: order.get(kv[0], 0)))

    def logit_lens(self, ids_or_text: IdsOrText, pos: int = -1, k: int = 5,
                   return_logits: bool = False):
        """The logit lens at position pos: each residual stream (the
        embeddings, then after each block) through ln_f and the unembedding.
        Returns a list of n_layer + 1 dicts {layer, name, top: [{id, token,
        logit, prob}, ...k]} (the last is the model's own prediction), or with
        return_logits=True the array [n_layer + 1, n_vocab]."""
        ids = self._ids(ids_or_text)
        p = self._pos(pos, len(ids))
        k = self._check_k(k)
        L = lib.lsc_model_n_layer(self._w.ptr)
        V = self.n_vocab
        out = np.empty((L + 1, V), np.float32)
        with self._using() as ctx:
            self._epoch += 1
            self._seq = self._rows = None
            err = new_err()
            st = lib.lsc_ctx_logit_lens(ctx, ffi.from_buffer("int32_t[]", ids), len(ids), p, 1,
                                        ffi.from_buffer("float[]", out), err)
            self._check(st, err)
        if return_logits:
            return out
        res = []
        for layer in range(L + 1):
            row = out[layer]
            probs = _c_softmax(row)
            top = ffi.new("int32_t[]", k)
            err = new_err()
            raise_for(lib.lsc_top_k(ffi.from_buffer("float[]", row), V, k, top, err), err)
            res.append({"layer": layer,
                        "name": "blocks.0.hook_resid_pre" if layer == 0 else
                        f"blocks.{layer - 1}.hook_resid_post",
                        "top": [{"id": int(i), "token": self.tokenizer.token(int(i)),
                                 "logit": float(row[i]), "prob": float(probs[i])} for i in top]})
        return res


class _HookScope:
    def __init__(self, model: Model, mapping):
        self.model, self.mapping, self.handles = model, dict(mapping), []

    def __enter__(self):
        try:
            for point, fn in self.mapping.items():
                self.handles.append(self.model.add_hook(point, fn))
        except BaseException:
            self.__exit__()
            raise
        return self.handles

    def __exit__(self, *exc):
        for h in self.handles:
            if not self.model.closed:
                h.remove()
        self.handles = []


class _Sampler:
    """An lsc_sampler for one call (freed on exit)."""

    def __init__(self, params):
        out = ffi.new("lsc_sampler **")
        err = new_err()
        raise_for(lib.lsc_sampler_new(params, out, err), err)
        self.ptr = out[0]

    def __enter__(self):
        return self.ptr

    def __exit__(self, *exc):
        lib.lsc_sampler_free(self.ptr)


def _sampler_params(do_sample, seed, temperature, top_k, top_p, min_p, repetition_penalty):
    sp = lib.lsc_sampler_default_params()
    sp.do_sample = 1 if do_sample else 0
    try:
        sp.seed = int(seed)
        sp.temperature = float(temperature)
        sp.top_k = int(top_k)
        sp.top_p = float(top_p)
        sp.min_p = float(min_p)
        sp.repetition_penalty = float(repetition_penalty)
    except (OverflowError, TypeError, ValueError) as e:
        raise InvalidInputError(f"sampling parameters: {e}", "LSC_ERR_INVALID_ARG") from None
    return sp


def _read_only(view: np.ndarray) -> np.ndarray:
    view.flags.writeable = False
    return view


def _c_softmax(row: np.ndarray) -> np.ndarray:
    out = np.empty_like(row)
    lib.lsc_softmax(ffi.from_buffer("float[]", row), len(row), ffi.from_buffer("float[]", out))
    return out


def _c_log_softmax(row: np.ndarray) -> np.ndarray:
    out = np.empty_like(row)
    lib.lsc_log_softmax(ffi.from_buffer("float[]", row), len(row),
                        ffi.from_buffer("float[]", out))
    return out
