"""The exceptions logitscope raises, one per lsc_status of the C library.

Bad input (an id outside the vocabulary, a text longer than the context, a
hook returning the wrong shape) is a ValueError subclass, so `except
ValueError` catches it; every library error is also a logitscope.Error with
the C status name in `.status`.
"""
from ._lsc import ffi, lib


class Error(Exception):
    """An error reported by the C library; `status` is its lsc_status name."""

    def __init__(self, message: str, status: str = "LSC_ERR_INTERNAL"):
        super().__init__(message)
        self.status = status


class InvalidInputError(Error, ValueError):
    """A value given to logitscope is out of range or malformed."""


class ContextFullError(InvalidInputError):
    """More tokens than the model's context (n_positions) holds."""


class NotFoundError(Error, LookupError):
    """A file, tensor, hook point or Hub repo that does not exist."""


class FormatError(Error):
    """A model or tokenizer file whose content is corrupt or unsupported."""


class NetworkError(Error):
    """A download from the Hub failed (or was refused)."""


class HookError(Error):
    """A hook aborted the forward pass without a Python exception to re-raise."""


class ClosedError(Error, ValueError):
    """The model was closed; its methods can no longer run."""

    def __init__(self, message: str = "the model is closed"):
        super().__init__(message, "closed")


class IOFailureError(Error, OSError):
    """A file could not be opened, read, mapped or written."""

    def __init__(self, message, status):
        Error.__init__(self, message, status)

    def __str__(self):
        return self.args[0]


class OutOfMemoryError(Error, MemoryError):
    """An allocation failed or a size limit was exceeded."""


_BY_STATUS = {
    lib.LSC_ERR_INVALID_ARG: InvalidInputError,
    lib.LSC_ERR_CONTEXT_FULL: ContextFullError,
    lib.LSC_ERR_NOT_FOUND: NotFoundError,
    lib.LSC_ERR_FORMAT: FormatError,
    lib.LSC_ERR_UNSUPPORTED: FormatError,
    lib.LSC_ERR_NETWORK: NetworkError,
    lib.LSC_ERR_AUTH: NetworkError,
    lib.LSC_ERR_HOOK: HookError,
    lib.LSC_ERR_IO: IOFailureError,
    lib.LSC_ERR_NOMEM: OutOfMemoryError,
}
_NAMES = {getattr(lib, n): n for n in dir(lib) if n.startswith("LSC_ERR_")}


def new_err():
    """A fresh lsc_error for one C call."""
    return ffi.new("lsc_error *")


def raise_for(status: int, err) -> None:
    """Raises the exception for a failed C call (status != LSC_OK)."""
    if status == lib.LSC_OK:
        return
    msg = ffi.string(err.message).decode("utf-8", "replace") if err is not None else ""
    if not msg:
        msg = ffi.string(lib.lsc_status_str(status)).decode()
    raise _BY_STATUS.get(status, Error)(msg, _NAMES.get(status, str(status)))

