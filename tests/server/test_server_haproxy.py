"""Two `logitscope serve` replicas behind HAProxy (docs/haproxy.cfg, ports
replaced), on loopback: requests through the balancer reach both replicas
and give the answers a replica gives directly; with one replica stopped the
balancer sends everything to the other."""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import ROOT
from serverlib import Server, serve, wait_until  # noqa: F401

import loadgen


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_replicas_behind_haproxy(serve, tmp_path):
    exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(exe):
        if os.environ.get("LSC_REQUIRE_ORACLE") == "1":
            pytest.fail("haproxy not installed (scripts/install-deps --test)")
        pytest.skip("haproxy not installed")
    r1 = serve("--threads", "1")
    r2 = serve("--threads", "1")
    port = free_port()
    cfg = (ROOT / "docs" / "haproxy.cfg").read_text()
    cfg = cfg.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    cfg = cfg.replace("127.0.0.1:8081", f"127.0.0.1:{r1.port}")
    cfg = cfg.replace("127.0.0.1:8082", f"127.0.0.1:{r2.port}")
    (tmp_path / "haproxy.cfg").write_text(cfg)
    hp = subprocess.Popen([exe, "-db", "-f", str(tmp_path / "haproxy.cfg")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lb = Server.__new__(Server)  # only its request helpers: the balancer's URL
        lb.url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _ok(lb), 20), "haproxy does not answer /health"
        bodies = [{"prompt": f"Request number {i} says", "max_tokens": 5, "temperature": 0,
                   "logprobs": 1, "ignore_eos": True, "stream": i % 2 == 0} for i in range(20)]
        direct = loadgen.run(r1.url, [dict(b, stream=False) for b in bodies], 1)
        through = loadgen.run(lb.url, bodies, 4)
        for (st, resp, _, _), (st2, resp2, _, _) in zip(direct, through):
            assert st == st2 == 200
            assert loadgen.normalize(resp) == loadgen.normalize(resp2)
        served = [s.metric("logitscope_generation_tokens_total") for s in (r1, r2)]
        assert served[0] > 20 * 5 and served[1] > 0, served  # r1 also answered `direct`
        # one replica goes away: the balancer's check takes it out, the other answers
        assert r2.stop() == 0
        after = loadgen.run(lb.url, bodies[:6], 2)
        assert [r[0] for r in after] == [200] * 6
    finally:
        hp.send_signal(signal.SIGTERM)
        try:
            hp.wait(10)
        except subprocess.TimeoutExpired:
            hp.kill()
            hp.wait()


def _ok(lb):
    try:
        return lb.get("/health")[0] == 200
    except OSError:
        return False
