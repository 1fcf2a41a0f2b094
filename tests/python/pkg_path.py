"""Imported first by the Python package's tests: logitscope comes from
python/ (the extension built in place by `make python`), not from an
installed copy."""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
