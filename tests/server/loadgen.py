"""A small load generator for `logitscope serve`: n clients, each on its own
keep-alive connection, send a list of completion requests (streamed or not)
and collect what came back, normalized so a streamed answer compares equal
to the same request answered whole. Loopback only; every request has a
timeout, so a run is bounded in time as well as in count."""
import http.client
import json
import threading
import time
import urllib.parse


def normalize(resp):
    """(text, tokens, token_logprobs, top_logprobs, finish_reason) per choice
    index, from a whole response or a list of stream events."""
    events = resp if isinstance(resp, list) else [resp]
    out = {}
    for e in events:
        for c in e.get("choices", []):
            d = out.setdefault(c["index"], {"text": "", "tokens": [], "lp": [], "top": [],
                                            "finish": None})
            d["text"] += c["text"]
            if c.get("logprobs"):
                d["tokens"] += c["logprobs"]["tokens"]
                d["lp"] += c["logprobs"]["token_logprobs"]
                d["top"] += c["logprobs"]["top_logprobs"]
            if c.get("finish_reason"):
                d["finish"] = c["finish_reason"]
    return [out[i] for i in sorted(out)]


class Client:
    def __init__(self, url, timeout):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.timeout = u.hostname, u.port, timeout
        self.conn = None

    def post(self, path, body):
        """(status, JSON or list of events, seconds to the first byte, total seconds)."""
        data = json.dumps(body).encode()
        for attempt in range(2):  # a keep-alive connection the server closed: reconnect once
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            t0 = time.perf_counter()
            try:
                self.conn.request("POST", path, data, {"Content-Type": "application/json"})
                r = self.conn.getresponse()
                if body.get("stream") and r.status == 200:
                    events, first = [], None
                    buf = b""
                    while True:
                        chunk = r.read1(65536)
                        if first is None:
                            first = time.perf_counter() - t0
                        if not chunk:
                            break
                        buf += chunk
                        while b"\n\n" in buf:
                            ev, buf = buf.split(b"\n\n", 1)
                            if ev.startswith(b":"):  # a keep-alive comment
                                continue
                            assert ev.startswith(b"data: "), ev
                            if ev != b"data: [DONE]":
                                events.append(json.loads(ev[6:]))
                    return r.status, events, first, time.perf_counter() - t0
                raw = r.read()
                dt = time.perf_counter() - t0
                return r.status, json.loads(raw), dt, dt
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn:
            self.conn.close()


def run(url, bodies, n_clients, timeout=120.0):
    """Sends every body once, spread over n_clients threads (client k takes
    bodies k, k + n, ...). Returns a list, in the order of `bodies`, of
    (status, response, ttfb, seconds)."""
    results = [None] * len(bodies)
    errors = []

    def worker(k):
        c = Client(url, timeout)
        try:
            for i in range(k, len(bodies), n_clients):
                results[i] = c.post("/v1/completions", bodies[i])
        except Exception as e:  # reported by the caller
            errors.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    return results
