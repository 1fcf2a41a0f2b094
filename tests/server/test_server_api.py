"""`logitscope serve`: the endpoints, their numbers against `logitscope
score`/`generate` and transformers, and the errors (tiny fixture, 64
positions)."""
import json
import socket
import threading
import time

import pytest

from conftest import require_oracle, run_cli
from fixtures import fixture_dir
from serverlib import serve, wait_until  # noqa: F401  (serve is a fixture)

TEXT = "The quick brown fox jumps over the lazy dog, and then"


def ids_of(text):
    out = run_cli("tokenize", "--model", fixture_dir("tiny"), "--json", "--text", text, check=True)
    return json.loads(out.stdout)["ids"]


def test_start_health_models(serve):
    s = serve("--threads", "1")
    assert s.host == "127.0.0.1"
    assert s.get("/health") == (200, b"ok\n")
    status, data = s.get("/v1/models")
    assert status == 200
    m = json.loads(data)["data"][0]
    assert m["id"] == s.model and m["object"] == "model" and m["max_model_len"] == 64


def test_echo_logprobs_equal_score(serve):
    """Echoed prompt log-probabilities are `logitscope score`'s, bit for bit,
    and a token's token_logprobs value is the same number in top_logprobs."""
    s = serve("--threads", "1")
    out = s.complete(prompt=TEXT, max_tokens=1, echo=True, logprobs=5, temperature=0)
    lp = out["choices"][0]["logprobs"]
    ids = ids_of(TEXT)
    assert len(lp["tokens"]) == len(ids) + 1 and "".join(lp["tokens"][:len(ids)]) == TEXT
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    score = json.loads(run_cli("score", "--model", fixture_dir("tiny"), "--json", "--ids",
                               ",".join(map(str, ids)), check=True).stdout)
    got = lp["token_logprobs"][1:len(ids)]
    diff = max(abs(a - b) for a, b in zip(got, score["token_logprobs"]))
    print(f"max |server - score| = {diff:.3g}")
    assert diff == 0
    n_greedy = 0
    for tok_lp, top in zip(lp["token_logprobs"][1:], lp["top_logprobs"][1:]):
        assert len(top) in (5, 6)
        assert tok_lp in top.values()  # the identical float, not a near one
        n_greedy += tok_lp == max(top.values())
    # the generated token is the argmax at temperature 0
    assert lp["token_logprobs"][-1] == max(lp["top_logprobs"][-1].values())
    assert out["usage"] == {"prompt_tokens": len(ids), "completion_tokens": 1,
                            "total_tokens": len(ids) + 1}
    assert lp["text_offset"][0] == 0
    assert out["choices"][0]["text"].startswith(TEXT)


def test_echo_logprobs_equal_transformers(serve):
    require_oracle()
    import torch
    from transformers import AutoModelForCausalLM
    s = serve("--threads", "1")
    ids = ids_of(TEXT)
    out = s.complete(prompt=ids, max_tokens=0, echo=True, logprobs=0)
    got = out["choices"][0]["logprobs"]["token_logprobs"]
    assert got[0] is None and len(got) == len(ids)
    assert out["choices"][0]["finish_reason"] == "length"
    model = AutoModelForCausalLM.from_pretrained(fixture_dir("tiny"), dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    ref = torch.log_softmax(logits.double(), -1)[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    diff = max(abs(a - b) for a, b in zip(got[1:], ref.tolist()))
    print(f"max |server - transformers| = {diff:.3g} over {len(ids) - 1} tokens")
    assert diff < 1e-4


def test_greedy_equals_generate(serve):
    s = serve("--threads", "1")
    ids = ids_of(TEXT)
    gen = json.loads(run_cli("generate", "--model", fixture_dir("tiny"), "--ids",
                             ",".join(map(str, ids)), "--greedy", "--max-new-tokens", "12",
                             "--no-stop", "--json", check=True).stdout)
    out = s.complete(prompt=ids, max_tokens=12, temperature=0, logprobs=0, ignore_eos=True)
    c = out["choices"][0]
    assert c["text"] == gen["new_text"]
    assert c["finish_reason"] == "length"
    assert len(c["logprobs"]["tokens"]) == 12
    # streamed: the same text in pieces, the finish reason on the last choice event
    ev = s.stream(prompt=ids, max_tokens=12, temperature=0, ignore_eos=True)
    assert "".join(e["choices"][0]["text"] for e in ev) == gen["new_text"]
    assert ev[-1]["choices"][0]["finish_reason"] == "length"
    assert all(e["choices"][0]["finish_reason"] is None for e in ev[:-1])


def test_stream_usage_and_echo(serve):
    s = serve("--threads", "1")
    whole = s.complete(prompt=TEXT, max_tokens=6, temperature=0, echo=True, logprobs=2)
    ev = s.stream(prompt=TEXT, max_tokens=6, temperature=0, echo=True, logprobs=2,
                  stream_options={"include_usage": True})
    assert ev[-1]["choices"] == [] and ev[-1]["usage"] == whole["usage"]
    chunks = [e["choices"][0] for e in ev[:-1]]
    assert "".join(c["text"] for c in chunks) == whole["choices"][0]["text"]
    for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
        joined = [x for c in chunks for x in c["logprobs"][key]]
        assert joined == whole["choices"][0]["logprobs"][key], key


def test_batch_prompts_n_and_seed(serve):
    s = serve("--threads", "1")
    ids = ids_of(TEXT)
    out = s.complete(prompt=[TEXT, "Hello"], max_tokens=4, temperature=0)
    assert [c["index"] for c in out["choices"]] == [0, 1]
    alone = s.complete(prompt="Hello", max_tokens=4, temperature=0)
    assert out["choices"][1]["text"] == alone["choices"][0]["text"]
    out2 = s.complete(prompt=[ids, ids[:3]], max_tokens=4, temperature=0)
    assert out2["choices"][0]["text"] == out["choices"][0]["text"]
    # n sampled choices: seed, seed + 1, ...; the same seed gives the same choices
    a = s.complete(prompt=TEXT, max_tokens=8, n=3, seed=7, temperature=5.0, logprobs=1)
    b = s.complete(prompt=TEXT, max_tokens=8, n=3, seed=7, temperature=5.0, logprobs=1)
    assert [c["text"] for c in a["choices"]] == [c["text"] for c in b["choices"]]
    assert len({c["text"] for c in a["choices"]}) > 1
    assert a["usage"]["completion_tokens"] == sum(
        len(c["logprobs"]["tokens"]) for c in a["choices"])


def test_stop_and_bias(serve):
    s = serve("--threads", "1")
    base = s.complete(prompt=TEXT, max_tokens=10, temperature=0, ignore_eos=True)["choices"][0]
    text = base["text"]
    # stop at the third generated token's text: the text ends before it
    word = s.complete(prompt=TEXT, max_tokens=3, temperature=0, ignore_eos=True)["choices"][0]["text"]
    cut = s.complete(prompt=TEXT, max_tokens=10, temperature=0, ignore_eos=True,
                     stop=[word[-3:]])["choices"][0]
    assert cut["finish_reason"] == "stop"
    assert text.startswith(cut["text"]) and word[-3:] not in cut["text"]
    ev = s.stream(prompt=TEXT, max_tokens=10, temperature=0, ignore_eos=True, stop=word[-3:])
    assert "".join(e["choices"][0]["text"] for e in ev) == cut["text"]
    # logit_bias +100 on one token makes greedy pick it every time
    out = s.complete(prompt=TEXT, max_tokens=3, temperature=0, logit_bias={"464": 100},
                     logprobs=0)["choices"][0]
    assert out["text"] == "The" * 3
    # penalties change a repetitive greedy continuation
    rep = s.complete(prompt=TEXT, max_tokens=10, temperature=0, ignore_eos=True,
                     frequency_penalty=2.0, presence_penalty=2.0)["choices"][0]["text"]
    assert rep != text


def test_tokenizer_endpoints(serve):
    s = serve("--threads", "1")
    status, out = s.post("/tokenize", {"prompt": "Hello world<|endoftext|>", "add_special_tokens": True,
                                       "return_token_strs": True})
    assert status == 200
    assert out["tokens"] == [15496, 995, 50256] and out["count"] == 3
    assert out["token_strs"] == ["Hello", "\u0120world", "<|endoftext|>"]
    assert out["max_model_len"] == 64
    status, out = s.post("/detokenize", {"tokens": [15496, 995, 50256]})
    assert (status, out) == (200, {"prompt": "Hello world<|endoftext|>"})
    status, data = s.get("/tokenizer_info")
    info = json.loads(data)
    assert status == 200 and info["eos_token"] == "<|endoftext|>" and info["eos_token_id"] == 50256
    assert s.post("/detokenize", {"tokens": [50257]})[0] == 400
    assert s.post("/tokenize", {"prompt": 5})[0] == 400


def error_of(status, out, want_status, *words):
    assert status == want_status, out
    e = out["error"]
    assert set(e) == {"message", "type", "param", "code"} and e["code"] == want_status
    for w in words:
        assert w in e["message"], e["message"]
    return e


def test_errors(serve):
    s = serve("--threads", "1", "--max-body", "4096")
    post = lambda body: s.post("/v1/completions", body)
    st, h, data = s.request("POST", "/v1/completions", raw=b'{"prompt": "x", ')
    error_of(st, json.loads(data), 400, "not valid JSON")
    error_of(*post([1, 2]), 400, "JSON object")
    error_of(*post({}), 400, "'prompt' is required")
    e = error_of(*post({"prompt": "x", "max_tokens": "5"}), 400, "max_tokens")
    assert e["param"] == "max_tokens"
    error_of(*post({"prompt": "x", "temperature": -1}), 400, "temperature")
    error_of(*post({"prompt": "x", "logprobs": 21}), 400, "logprobs")
    error_of(*post({"prompt": "x", "echo": "yes"}), 400, "echo")
    error_of(*post({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}), 400, "stop")
    error_of(*post({"prompt": "x", "max_tokens": 0}), 400, "max_tokens")
    error_of(*post({"prompt": [1, 50257]}), 400, "50257", "outside the vocabulary")
    error_of(*post({"prompt": [[1], "x"]}), 400, "prompt 1")
    error_of(*post({"prompt": ""}), 400, "empty")
    error_of(*post({"prompt": [1] * 60, "max_tokens": 10}), 400, "64", "60", "70")
    error_of(*post({"prompt": [1] * 65, "max_tokens": 1}), 400, "64", "65")
    error_of(*post({"prompt": "x", "logit_bias": {"abc": 1}}), 400, "logit_bias")
    error_of(*post({"prompt": "x", "n": 2, "best_of": 3}), 400, "best_of")
    error_of(*post({"prompt": "x", "n": 1000}), 400, "'n'")
    st, h, data = s.request("POST", "/v1/completions", raw=json.dumps(
        {"prompt": "x" * 5000}).encode())
    error_of(st, json.loads(data), 413, "4096")
    error_of(*s.post("/v1/nothing", {}), 404, "/v1/nothing")
    st, h, data = s.request("DELETE", "/v1/completions")
    error_of(st, json.loads(data), 405, "POST")
    assert h["Allow"] == "POST"
    # unknown fields are ignored, the server still answers
    assert s.complete(prompt="x", max_tokens=1, frobnicate=3, user="u")["choices"]


def test_api_key(serve):
    s = serve("--threads", "1", "--api-key", "sekrit")
    body = {"prompt": "x", "max_tokens": 1}
    error_of(*s.post("/v1/completions", body), 401, "API key")
    error_of(*s.post("/v1/completions", body, headers={"Authorization": "Bearer wrong"}), 401)
    st, out = s.post("/v1/completions", body, headers={"Authorization": "Bearer sekrit"})
    assert st == 200, out
    assert s.get("/health")[0] == 200  # the load balancer's check needs no key
    assert s.get("/v1/models")[0] == 401


# The tests below need requests that last: they run the 124M-shaped fixture
# (made on demand; tiny finishes a request in milliseconds).

def test_queue_full_503(serve):
    s = serve("--threads", "1", "--parallel", "1", "--queue", "1", model="gpt2-124m")
    results = []

    def go():
        st, h, data = s.request("POST", "/v1/completions", {"prompt": TEXT, "max_tokens": 8,
                                                            "temperature": 0, "ignore_eos": True})
        results.append((st, json.loads(data), h))
    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r[0] for r in results)
    assert 200 in codes and 503 in codes, codes
    assert set(codes) <= {200, 503}
    busy = [r for r in results if r[0] == 503][0]
    assert busy[1]["error"]["code"] == 503 and busy[2]["Retry-After"] == "1"
    # more sequences in one request than the queue holds: 400, retrying cannot help
    error_of(*s.post("/v1/completions", {"prompt": "x", "n": 2}), 400, "at most 1")


def test_disconnect_cancels(serve):
    s = serve("--threads", "1", "--parallel", "2", model="gpt2-124m")
    body = json.dumps({"prompt": TEXT, "max_tokens": 500, "temperature": 0, "ignore_eos": True,
                       "stream": True}).encode()
    for stream in (True, False):
        b = body if stream else body.replace(b'"stream": true', b'"stream": false')
        c = socket.create_connection((s.host, s.port))
        c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(b) + b)
        assert wait_until(lambda: s.metric("logitscope_num_requests_running") == 1, 10)
        c.close()
        assert wait_until(lambda: s.metric("logitscope_num_requests_running") == 0, 10)
    gen = s.metric("logitscope_generation_tokens_total")
    assert gen < 2 * 500, gen  # both stopped early


def test_slow_client_does_not_block(serve):
    s = serve("--threads", "1")
    slow = socket.create_connection((s.host, s.port))
    slow.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    stop = threading.Event()

    def dribble():  # a byte a second
        while not stop.wait(1.0):
            try:
                slow.sendall(b" ")
            except OSError:
                return
    t = threading.Thread(target=dribble)
    t.start()
    try:
        t0 = time.time()
        for _ in range(5):
            s.complete(prompt="Hello", max_tokens=2, temperature=0)
        assert time.time() - t0 < 10
    finally:
        stop.set()
        t.join()
        slow.close()


def test_sigterm_lets_requests_finish(serve):
    s = serve("--threads", "1", model="gpt2-124m")
    result = []
    t = threading.Thread(target=lambda: result.append(s.post(
        "/v1/completions", {"prompt": TEXT, "max_tokens": 20, "temperature": 0,
                            "ignore_eos": True})))
    t.start()
    assert wait_until(lambda: s.metric("logitscope_num_requests_running") == 1, 10)
    assert s.stop() == 0
    t.join()
    status, out = result[0]
    assert status == 200 and out["usage"]["completion_tokens"] == 20


def test_metrics(serve):
    s = serve("--threads", "1")
    s.complete(prompt="Hello there", max_tokens=3, temperature=0, ignore_eos=True)
    st, data = s.get("/metrics")
    text = data.decode()
    assert 'logitscope_requests_total{path="/v1/completions",status="200"} 1' in text
    assert s.metric("logitscope_prompt_tokens_total") == 2
    assert s.metric("logitscope_generation_tokens_total") == 3
    assert s.metric("logitscope_time_to_first_token_seconds_count") == 1
    assert s.metric("logitscope_time_per_output_token_seconds_count") == 2
    assert s.metric("logitscope_num_requests_waiting") == 0


def test_idle_timeout_spares_long_requests(serve):
    """--timeout closes idle clients, not requests the server is still computing."""
    s = serve("--threads", "1", "--timeout", "1", "--parallel", "1", model="gpt2-124m")
    t0 = time.time()
    # one slot: the second and third requests wait in the queue for seconds
    # before their first byte
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", s.complete(
        prompt=TEXT, max_tokens=40, temperature=0, ignore_eos=True)))
    first.start()
    assert wait_until(lambda: s.metric("logitscope_num_requests_running") == 1, 10)
    second = threading.Thread(target=lambda: results.setdefault("second", s.complete(
        prompt=TEXT, max_tokens=5, temperature=0, ignore_eos=True)))
    second.start()
    ev = s.stream(prompt=TEXT, max_tokens=5, temperature=0, ignore_eos=True)
    first.join()
    second.join()
    assert ev[-1]["choices"][0]["finish_reason"] == "length"
    assert results["first"]["usage"]["completion_tokens"] == 40
    assert results["second"]["usage"]["completion_tokens"] == 5
    print(f"three requests in {time.time() - t0:.1f}s with --timeout 1")
    idle = socket.create_connection((s.host, s.port))
    idle.settimeout(10)
    assert idle.recv(1) == b""  # closed by the server after about a second
    idle.close()
