"""`pip install .`: builds the C library through the Makefile
(build/liblogitscope.a) and the cffi extension logitscope._lsc from
include/logitscope.h (python/build_ffi.py). The version is the header's
LSC_VERSION; the rest of the metadata is in pyproject.toml."""
import pathlib
import re

from setuptools import setup

header = (pathlib.Path(__file__).parent / "include" / "logitscope.h").read_text()
setup(version=re.search(r'#define LSC_VERSION "([^"]+)"', header).group(1),
      cffi_modules=["python/build_ffi.py:ffibuilder"])
