"""The server tests' helper: starting `logitscope serve` for a test: each server takes a free port
(--port 0), is ready once it prints `listening on http://HOST:PORT`, and is
stopped with SIGTERM when the test ends (it must then exit 0, with no
sanitizer report on stderr)."""
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import BIN
from fixtures import fixture_dir

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class Server:
    def __init__(self, *args, model="tiny", env=None):
        model_dir = fixture_dir(model) if "/" not in model else model
        self.model = str(model_dir)
        cmd = [str(BIN), "serve", "--model", self.model, "--port", "0", *map(str, args)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.stderr_lines = []
        # stderr is drained by a thread so the server never blocks on a full pipe
        self._err = threading.Thread(target=lambda: self.stderr_lines.extend(self.proc.stderr),
                                     daemon=True)
        self._err.start()
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"listening on (http://(\S+):(\d+))\n", line)
        if not m:
            self.proc.kill()
            self.proc.wait()
            self._err.join(5)
            raise AssertionError(f"server did not start: {line!r} {''.join(self.stderr_lines)}")
        self.url, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
        self.exit_code = None

    @property
    def stderr(self):
        return "".join(self.stderr_lines)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Stops the server; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the server did not stop within %ds of the signal" % timeout)
        self._err.join(10)
        for mark in SANITIZER_MARKS:
            assert mark not in self.stderr, f"sanitizer report from the server:\n{self.stderr}"
        return self.exit_code

    def request(self, method, path, body=None, headers=None, raw=None, timeout=120):
        """(status, headers, body bytes) of one request; body is JSON-encoded."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def post(self, path, body, **kw):
        status, headers, data = self.request("POST", path, body, **kw)
        return status, json.loads(data) if data and not data.startswith(b"data:") else data

    def get(self, path, **kw):
        status, headers, data = self.request("GET", path, **kw)
        return status, data

    def complete(self, **body):
        """A successful non-streamed completion's JSON."""
        status, out = self.post("/v1/completions", body)
        assert status == 200, out
        return out

    def stream(self, **body):
        """The JSON events of a streamed completion (the [DONE] checked and left out)."""
        status, headers, data = self.request("POST", "/v1/completions", {**body, "stream": True})
        assert status == 200, data
        assert headers["Content-Type"].startswith("text/event-stream")
        events = [e for e in data.decode().split("\n\n") if e and not e.startswith(":")]
        assert events[-1] == "data: [DONE]", events[-3:]
        out = []
        for e in events[:-1]:
            assert e.startswith("data: "), e
            out.append(json.loads(e[6:]))
        return out

    def metric(self, name):
        """One unlabelled sample of /metrics."""
        status, data = self.get("/metrics")
        assert status == 200
        for line in data.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics")


@pytest.fixture
def serve(request):
    """serve(*args, model="tiny") starts a server stopped (and checked) at the end."""
    started = []

    def start(*args, **kw):
        s = Server(*args, **kw)
        started.append(s)
        return s

    def finish():
        for s in started:
            if s.exit_code is None:
                assert s.stop() == 0, s.stderr

    request.addfinalizer(finish)
    return start


def wait_until(cond, timeout=10.0, step=0.05):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return True
        time.sleep(step)
    return cond()
