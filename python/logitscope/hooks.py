"""Python hooks on the C forward pass (lsc_ctx_add_hook with a cffi callback).

The C library calls one extern "Python" function, _lsc_py_hook, for every
registration; user_data is a cffi handle to the _Registration, which calls the
user's function with a float32 array of the activation. The array is a copy
in Python-owned memory (the activation lives in the context's scratch, which
the next forward reuses), written back after the function returns, so in-place
edits reach the forward pass and an array kept by the user stays valid.

An exception inside a hook cannot cross the C frames: it is stored on the
model, the callback returns non-zero (the forward aborts with LSC_ERR_HOOK and
leaves the KV cache as it was) and the model re-raises it in the caller.
"""
from typing import Callable, Optional

import numpy as np

from ._lsc import ffi, lib
from .errors import new_err, raise_for

HookFn = Callable[[np.ndarray, str], Optional[np.ndarray]]


def activation_view(act) -> np.ndarray:
    """A numpy view of act.data with the activation's shape (valid during the callback)."""
    shape = tuple(act.shape[d] for d in range(act.n_dims))
    count = 1
    for s in shape:
        count *= s
    return np.frombuffer(ffi.buffer(act.data, 4 * count), dtype=np.float32).reshape(shape)


class _Registration:
    """One lsc_ctx_add_hook registration of a Python function."""

    def __init__(self, model, pattern: str, fn, internal: bool = False):
        self.model = model
        self.pattern = pattern
        self.fn = fn
        self.internal = internal  # run_with_cache: fn(view, name, act), reads only
        self.c_handle = None  # lsc's int handle once registered
        self.cdata = ffi.new_handle(self)
        self.msg = ffi.NULL  # the abort reason handed to C, kept alive here

    def fire(self, act) -> int:
        try:
            view = activation_view(act)
            name = ffi.string(act.name).decode()
            if self.internal:
                self.fn(view, name, act)
                return 0
            arr = view.copy()
            ret = self.fn(arr, name)
            if ret is None:
                view[...] = arr
            else:
                if not isinstance(ret, np.ndarray) or ret.dtype != np.float32 or \
                        ret.shape != view.shape:
                    got = (f"{type(ret).__name__} of shape {ret.shape} and dtype {ret.dtype}"
                           if isinstance(ret, np.ndarray) else type(ret).__name__)
                    raise ValueError(f"hook {self.pattern!r} on {name} returned {got}; it must "
                                     f"return None or a float32 array of shape {view.shape}")
                view[...] = ret
            return 0
        except BaseException as e:  # noqa: B902 - re-raised in the caller
            self.model._hook_failed(e)
            text = f"the Python hook {self.pattern!r} raised {type(e).__name__}"
            self.msg = ffi.new("char[]", text.encode())
            act.message = self.msg
            return 1


@ffi.def_extern()
def _lsc_py_hook(act, user_data):
    return ffi.from_handle(user_data).fire(act)


class Hook:
    """A registered hook; remove() takes it off the model (again is a no-op)."""

    def __init__(self, model, reg: _Registration):
        self._model = model
        self._reg = reg

    @property
    def pattern(self) -> str:
        return self._reg.pattern

    @property
    def active(self) -> bool:
        return self._reg.c_handle is not None

    def remove(self) -> None:
        self._model._remove_registration(self._reg)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def __repr__(self):
        return f"<logitscope.Hook {self.pattern!r}{'' if self.active else ' (removed)'}>"


def register(model, ctx, pattern: str, fn, internal=False) -> _Registration:
    """Registers fn on ctx's points matching pattern; raises like the C call."""
    reg = _Registration(model, pattern, fn, internal)
    h = ffi.new("int *")
    err = new_err()
    st = lib.lsc_ctx_add_hook(ctx, pattern.encode(), lib._lsc_py_hook, reg.cdata, h, err)
    raise_for(st, err)
    reg.c_handle = h[0]
    return reg
