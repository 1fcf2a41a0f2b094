"""The cffi builder of logitscope._lsc (API mode), from the real header.

The declarations given to cffi are include/logitscope.h run through the C
preprocessor (its #include lines dropped, since cffi knows the standard
types), so they cannot drift from the library; the generated C source
#includes the header itself, so the compiler checks every declaration.

The C library is linked in as the static archive the project's Makefile
builds (build/liblogitscope.a: its objects are position-independent, with
only the header's LSC_API functions visible), with the system libraries it
needs from pkg-config. Used by setup.py (`pip install .`) and run directly
by `make python` to build the extension in place (python/logitscope/).
"""
import os
import pathlib
import re
import shlex
import subprocess
import sys

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = ROOT / "include" / "logitscope.h"
BUILD = "build"
ARCHIVE = ROOT / BUILD / "liblogitscope.a"
PKGS = ["libcjson", "libpcre2-8", "libcurl", "libcrypto"]

# The Python callbacks the C library calls (hooks, generation tokens), and
# the header's LSC_VERSION (a string macro, which the preprocessed
# declarations lose) through a one-line function of the generated C.
CALLBACKS = """
extern "Python" int _lsc_py_hook(lsc_activation *act, void *user_data);
extern "Python" int _lsc_py_token(int32_t id, size_t step, void *user_data);
const char *_lsc_py_version(void);
"""
SOURCE = """#include "logitscope.h"
const char *_lsc_py_version(void) { return LSC_VERSION; }
"""


def header_version() -> str:
    """LSC_VERSION from the header (the package's version, for setup.py)."""
    return re.search(r'#define LSC_VERSION "([^"]+)"', HEADER.read_text()).group(1)


def declarations():
    """The header's declarations, preprocessed for cffi's cdef."""
    text = HEADER.read_text()
    text = re.sub(r"^\s*#\s*include\s*<[^>]*>\s*$", "", text, flags=re.M)
    cc = os.environ.get("CC", "cc")
    out = subprocess.run(shlex.split(cc) + ["-E", "-P", "-x", "c", "-D__attribute__(x)=",
                                            "-DLSC_API=", "-"],
                         input=text, capture_output=True, text=True, check=True).stdout
    return out + CALLBACKS


def build_archive():
    """Builds build/liblogitscope.a through the Makefile (no sanitizers)."""
    jobs = os.environ.get("LSC_MAKE_JOBS", "2")
    subprocess.run(["make", "-C", str(ROOT), f"-j{jobs}", f"BUILD={BUILD}", "SANITIZE=",
                    f"{BUILD}/liblogitscope.a"], check=True)


def pkg_libs():
    out = subprocess.run(["pkg-config", "--libs"] + PKGS, capture_output=True, text=True,
                         check=True).stdout.split()
    return [f[2:] for f in out if f.startswith("-l")], [f[2:] for f in out if f.startswith("-L")]


def make_ffibuilder():
    if os.environ.get("LSC_SKIP_MAKE") != "1":
        build_archive()
    libs, libdirs = pkg_libs()
    ffibuilder = FFI()
    ffibuilder.cdef(declarations())
    ffibuilder.set_source(
        "logitscope._lsc",
        SOURCE,
        include_dirs=[str(ROOT / "include")],
        extra_objects=[str(ARCHIVE)],
        libraries=libs + ["m"],
        library_dirs=libdirs,
        extra_compile_args=["-O2"],
        extra_link_args=["-pthread"],
    )
    return ffibuilder


# setup.py's cffi_modules names this object
ffibuilder = make_ffibuilder() if __name__ != "__main__" else None

if __name__ == "__main__":
    # in place: python/logitscope/_lsc.*.so, for the tests and the notebook
    b = make_ffibuilder()
    tmp = ROOT / BUILD / "cffi"
    tmp.mkdir(parents=True, exist_ok=True)
    so = b.compile(tmpdir=str(tmp), verbose=False)
    dest = ROOT / "python" / "logitscope" / pathlib.Path(so).name
    os.replace(so, dest)
    print(dest.relative_to(ROOT))
    sys.exit(0)
