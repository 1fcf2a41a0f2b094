"""The package under misuse: exceptions in hooks, bad hook results, closed
models, bad ids, texts longer than the context, calls from hooks and from
several threads; and the GIL released around the forward pass."""
import pathlib
import threading
import time

import numpy as np
import pytest

import pkg_path  # noqa: F401  (before logitscope)
import logitscope
from conftest import run_cli
from fixtures import fixture_dir

TEXT = "The quick brown fox jumps over the lazy dog"


@pytest.fixture()
def m():
    with logitscope.load(fixture_dir("tiny"), threads=1) as model:
        yield model


def test_hook_exception_propagates_and_model_stays_usable(m):
    clean = m.logits(TEXT).copy()

    class Boom(Exception):
        pass

    def bad(act, name):
        raise Boom(f"at {name}")

    h = m.add_hook("blocks.1.hook_mlp_out", bad)
    with pytest.raises(Boom, match="blocks.1.hook_mlp_out"):
        m.logits(TEXT)
    with pytest.raises(Boom):
        m.generate(TEXT, max_new_tokens=3)
    with pytest.raises(Boom):
        list(m.generate(TEXT, max_new_tokens=3, stream=True))
    with pytest.raises(Boom):
        m.score(TEXT)
    h.remove()
    h.remove()  # twice is fine
    assert np.array_equal(m.logits(TEXT), clean)


@pytest.mark.parametrize("ret", [np.zeros((3, 32), np.float32), np.zeros((9, 32), np.float64),
                                 [[0.0] * 32] * 9, 1.0])
def test_hook_returning_wrong_shape_or_dtype_is_value_error(m, ret):
    n = len(m.tokenizer.encode(TEXT))
    assert n == 9
    with m.hooks({"blocks.0.hook_resid_post": lambda act, name: ret}):
        with pytest.raises(ValueError, match="must return None or a float32 array of shape"):
            m.logits(TEXT)
    assert m.logits(TEXT).shape == (n, m.n_vocab)


def test_hook_edits_in_place_or_by_return_and_arrays_stay_valid(m):
    seen = []

    def zero_in_place(act, name):
        seen.append(act)  # kept past the forward: must stay valid
        act[:] = 0

    with m.hooks({"blocks.0.hook_mlp_out": zero_in_place}):
        a = m.logits(TEXT).copy()
    with m.hooks({"blocks.0.hook_mlp_out": lambda act, name: np.zeros_like(act)}):
        b = m.logits(TEXT)
    assert np.array_equal(a, b) and not np.array_equal(a, m.logits(TEXT))
    m.logits("something else entirely, to reuse the scratch")
    assert seen[0].shape == (9, 32) and np.all(seen[0] == 0)


def test_unknown_hook_point_and_calling_the_model_from_its_hook(m):
    with pytest.raises(logitscope.NotFoundError, match="blocks.9"):
        m.add_hook("blocks.9.hook_mlp_out", lambda a, n: None)
    with m.hooks({"hook_embed": lambda a, n: m.logits("again")}):
        with pytest.raises(RuntimeError, match="cannot call the model"):
            m.logits(TEXT)
    assert m.logits(TEXT).shape[0] == 9


def test_closed_model_raises_instead_of_crashing():
    m = logitscope.load(fixture_dir("tiny"))
    f = m.fork()
    h = m.add_hook("hook_embed", lambda a, n: None)
    m.close()
    m.close()
    for call in (lambda: m.logits(TEXT), lambda: m.config, lambda: m.next(TEXT),
                 lambda: m.generate(TEXT), lambda: m.score(TEXT), lambda: m.fork(),
                 lambda: m.add_hook("hook_embed", lambda a, n: None), lambda: h.remove()):
        with pytest.raises(logitscope.ClosedError, match="closed"):
            call()
    assert isinstance(logitscope.ClosedError(), ValueError)
    assert "closed" in repr(m)
    assert f.logits(TEXT).shape == (9, 50257)  # the fork keeps the weights alive
    f.close()
    with pytest.raises(logitscope.ClosedError):
        f.tokenizer.encode(TEXT)


def test_tokenizer_files_are_read_at_first_use(tmp_path):
    src = pathlib.Path(fixture_dir("tiny"))
    for f in ("config.json", "model.safetensors", "merges.txt"):
        (tmp_path / f).symlink_to(src / f)
    (tmp_path / "vocab.json").write_text('{"a": 0,')  # truncated
    with logitscope.load(tmp_path, threads=1) as m:  # ids need no tokenizer
        assert m.logits([1, 2, 3]).shape == (3, 50257)
        for call in (lambda: m.tokenizer.encode("a"), lambda: m.logits("a"),
                     lambda: m.tokenizer.decode([1])):
            with pytest.raises(logitscope.FormatError, match="vocab.json: invalid JSON"):
                call()
        assert m.logits([1, 2, 3]).shape == (3, 50257)  # still usable


def test_bad_ids_and_too_long_text_are_value_errors(m):
    with pytest.raises(ValueError) as e:
        m.logits([1, 50257])
    cli = run_cli("logits", "--model", fixture_dir("tiny"), "--ids", "1,50257")
    assert cli.returncode != 0 and cli.stderr == f"logitscope: error: {e.value}\n"
    with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 50257\)"):
        m.logits(np.array([-1]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        m.logits([2 ** 40])
    with pytest.raises(ValueError, match="no tokens"):
        m.logits([])
    with pytest.raises(ValueError, match="1-D"):
        m.logits(np.zeros((2, 2), np.int64))
    long_text = "word " * 100
    with pytest.raises(ValueError, match=r"exceed the context of 64 positions") as e:
        m.logits(long_text)
    assert isinstance(e.value, logitscope.ContextFullError)
    cli = run_cli("logits", "--model", fixture_dir("tiny"), "--text", long_text)
    assert cli.stderr == f"logitscope: error: {e.value}\n"
    with pytest.raises(ValueError, match="more than the context"):
        m.generate("x " * 60, max_new_tokens=20)
    with pytest.raises(ValueError, match="not valid Unicode"):
        m.logits("bad \ud800 surrogate")
    with pytest.raises(ValueError):
        m.sample(TEXT, n=5, temperature=-1)
    assert m.score(long_text).n_windows > 1  # score slides a window instead


def test_one_model_from_two_threads_takes_turns(m):
    want = m.logits(TEXT).copy()
    out, errors = [], []

    def work():
        try:
            for _ in range(20):
                out.append(np.array_equal(m.logits(TEXT), want))
                m.logits("another text that runs")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errors and all(out) and len(out) == 40


def test_forward_releases_the_gil():
    """Two threads, each with its own context of one model, time their C
    calls: with the GIL held during a call the other thread could not even
    start one, so the calls' intervals could never overlap."""
    m1 = logitscope.load(fixture_dir("tiny"), threads=1)
    m2 = m1.fork()
    ids = list(range(1000, 1064))  # 64 tokens: the whole context
    spans = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def work(k, model):
        barrier.wait()
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            model.score(ids)
            spans[k].append((t0, time.perf_counter()))

    ts = [threading.Thread(target=work, args=(k, mm)) for k, mm in ((0, m1), (1, m2))]
    [t.start() for t in ts]
    [t.join() for t in ts]
    busy = sum(b - a for a, b in spans[0])
    overlap = 0.0
    j = 0
    for a0, a1 in spans[0]:
        for b0, b1 in spans[1]:
            overlap += max(0.0, min(a1, b1) - max(a0, b0))
    print(f"calls {len(spans[0])}+{len(spans[1])}, thread 0 busy {busy:.3f}s, "
          f"overlapping {overlap:.3f}s ({overlap / busy:.0%})")
    assert overlap > 0.25 * busy
    m1.close()
    m2.close()


def test_bad_k_pos_and_n(m):
    for bad in (0, -1, 50258, 2.5, True):
        with pytest.raises(ValueError, match="k must be"):
            m.next(TEXT, k=bad)
        with pytest.raises(ValueError, match="k must be"):
            m.logit_lens(TEXT, k=bad)
    assert len(m.next(TEXT, k=np.int64(3))) == 3
    with pytest.raises(ValueError, match="outside the sequence of 9 tokens"):
        m.next(TEXT, pos=9)
    with pytest.raises(ValueError, match="n must be"):
        m.sample(TEXT, n=0)
    with pytest.raises(ValueError, match="without replacement at most"):
        m.sample(TEXT, n=5, replacement=False, temperature=0)
