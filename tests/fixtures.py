"""fixture_dir(name): the folder of a generated test checkpoint, made on first
use under build/fixtures/NAME (or $LOGITSCOPE_BUILD/fixtures) by
tests/gen_fixtures.py and remade when the generator changes."""
import os
import pathlib

import gen_fixtures

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / os.environ.get("LOGITSCOPE_BUILD", "build") / "fixtures"

# the small fixtures every test may use (gpt2-124m is made only on demand)
NAMES = list(gen_fixtures.DEFAULT)


def fixture_dir(name):
    """Path of fixture `name`, generating it when absent or stale."""
    return gen_fixtures.ensure(name, OUT)
