"""`pip install .`: builds the C library with -fPIC through the Makefile
(build/pic/liblogitscope.a) and the cffi extension logitscope._lsc from
include/logitscope.h (python/build_ffi.py). The metadata is in pyproject.toml."""
from setuptools import setup

setup(cffi_modules=["python/build_ffi.py:ffibuilder"])
