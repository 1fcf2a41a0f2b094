"""logitscope.load by Hub name through the library's cache and download code
(lsc_hub_resolve), against the local stand-in of the Hub (tests/hub_server.py):
downloaded once, then found in the cache offline; not cached + offline gives the
reason the CLI gives."""
import numpy as np
import pytest

import pkg_path  # noqa: F401  (before logitscope)
import logitscope
from conftest import run_cli
from fixtures import fixture_dir
from hub_server import FakeHub

REPO = "org/tiny-gpt2"


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    h = FakeHub()
    d = fixture_dir("tiny")
    h.add_commit(REPO, {f.name: f.read_bytes() for f in sorted(d.iterdir()) if f.name != "STAMP"})
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", h.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    yield h
    h.close()


def test_load_by_hub_name_downloads_then_uses_the_cache(hub, tmp_path, monkeypatch):
    m = logitscope.load(REPO)
    assert "models--org--tiny-gpt2/snapshots/" in m.path
    want = logitscope.load(fixture_dir("tiny")).logits("Hello world")
    assert np.array_equal(m.logits("Hello world"), want)
    n = len(hub.log)
    assert n > 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = logitscope.load(REPO)
    assert again.path == m.path and len(hub.log) == n  # no request: from the cache


def test_offline_and_not_cached_is_the_clis_reason(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(logitscope.NotFoundError) as e:
        logitscope.load(REPO)
    p = run_cli("arch", "--model", REPO)
    assert p.returncode != 0 and str(e.value) in p.stderr  # the CLI quotes the same message
    assert "HF_HUB_OFFLINE" in str(e.value) and "logitscope download" in str(e.value)
    with pytest.raises(ValueError, match="repo id"):
        logitscope.load("not a/valid/name")
