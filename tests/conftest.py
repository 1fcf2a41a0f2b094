"""Shared pytest fixtures: the built CLI and the oracle switch.

Oracle tests (transformers + torch) are skipped when those are not installed,
unless LSC_REQUIRE_ORACLE=1 (set by CI), which makes their absence a failure.
"""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = ROOT / os.environ.get("LOGITSCOPE_BUILD", "build")
BIN = BUILD / "logitscope"


def require_oracle():
    """Imports torch and transformers, or skips (fails under CI)."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        if os.environ.get("LSC_REQUIRE_ORACLE") == "1":
            pytest.fail(f"oracle required but not importable: {e}")
        pytest.skip(f"oracle not installed: {e}")


def run_cli(*args, input=None, check=False, env=None, cwd=None):
    """Runs build/logitscope with the given arguments; returns CompletedProcess."""
    p = subprocess.run([str(BIN), *map(str, args)], input=input, capture_output=True,
                       text=True, env=env, cwd=cwd, timeout=600)
    # under `make test-sanitize`: any AddressSanitizer / LeakSanitizer / UBSan
    # report fails the test, whatever the exit status it expected
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        if mark in p.stderr:
            raise AssertionError(f"sanitizer report from logitscope {' '.join(map(str, args))}:\n{p.stderr}")
    if check and p.returncode != 0:
        raise AssertionError(f"logitscope {' '.join(map(str, args))} failed: {p.stderr}")
    return p


@pytest.fixture(scope="session")
def cli():
    return run_cli


# Tests of what an unwritable folder does: root writes anywhere, so under root
# (CI's case) the command runs as nobody, for whom the folder's mode counts.
NOBODY = 65534


def unwritable_folder():
    """(base, folder): a new world-readable folder `base` (not under pytest's
    tmp_path, which is in a 0700 folder of root's that nobody cannot enter:
    a 'Permission denied' for the wrong reason) holding `folder`, which the
    command of unprivileged_cli(base) cannot write to (under root, nobody
    owns it and lacks the write bit). Whatever else the command reads must be
    copied into base. The caller removes base."""
    import tempfile
    base = pathlib.Path(tempfile.mkdtemp(prefix="lsc-unwritable-"))
    base.chmod(0o755)
    d = base / "ro"
    d.mkdir()
    if os.geteuid() == 0:
        os.chown(d, NOBODY, NOBODY)
    d.chmod(0o500)
    return base, d


def unprivileged_cli(base):
    """The logitscope command line for tests of permissions: as root, a copy
    of the binary in `base` run as nobody (setpriv), so the checkout's own
    permissions do not matter; otherwise the binary itself."""
    if os.geteuid() != 0:
        return [str(BIN)]
    import shutil
    exe = base / "logitscope"
    shutil.copy(BIN, exe)
    exe.chmod(0o755)
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(exe)]
