"""The `openai` Python package against the server, unchanged: completions
non-streamed and streamed, echo + logprobs, batch prompts, n > 1, models,
and its error classes for our error replies."""
import os

import pytest

from serverlib import serve  # noqa: F401

openai = pytest.importorskip("openai") if os.environ.get("LSC_REQUIRE_ORACLE") != "1" else \
    __import__("openai")

TEXT = "The quick brown fox jumps over the lazy dog, and then"


def client(s, key="none"):
    return openai.OpenAI(base_url=s.url + "/v1", api_key=key, max_retries=0, timeout=60)


def test_openai_client(serve):
    s = serve("--threads", "1", "--served-model-name", "gpt2-tiny")
    c = client(s)
    assert [m.id for m in c.models.list().data] == ["gpt2-tiny"]
    r = c.completions.create(model="gpt2-tiny", prompt=TEXT, max_tokens=8, temperature=0,
                             logprobs=5, echo=True)
    ch = r.choices[0]
    assert r.object == "text_completion" and ch.finish_reason in ("length", "stop")
    assert ch.text.startswith(TEXT)
    lp = ch.logprobs
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset) == r.usage.total_tokens
    for v, top in zip(lp.token_logprobs[1:], lp.top_logprobs[1:]):
        assert v in top.values()
    # streamed: the same text, usage in the last chunk
    chunks = list(c.completions.create(model="gpt2-tiny", prompt=TEXT, max_tokens=8,
                                       temperature=0, logprobs=5, echo=True, stream=True,
                                       stream_options={"include_usage": True}))
    assert "".join(k.choices[0].text for k in chunks if k.choices) == ch.text
    assert chunks[-1].usage.total_tokens == r.usage.total_tokens
    assert [x for k in chunks if k.choices for x in k.choices[0].logprobs.token_logprobs] == \
        lp.token_logprobs
    # batch prompts and n > 1: choices indexed prompt * n + k
    r = c.completions.create(model="gpt2-tiny", prompt=[TEXT, "Hello", "Hello"],
                             max_tokens=4, n=2, seed=3, temperature=5.0)
    assert sorted(x.index for x in r.choices) == list(range(6))
    alone = c.completions.create(model="gpt2-tiny", prompt="Hello", max_tokens=4, n=2, seed=3,
                                 temperature=5.0)
    assert [x.text for x in r.choices[2:4]] == [x.text for x in alone.choices]
    assert [x.text for x in r.choices[4:6]] == [x.text for x in alone.choices]
    r = c.completions.create(model="gpt2-tiny", prompt=[[15496, 995], [15496]], max_tokens=3,
                             temperature=0)
    assert r.choices[1].text == c.completions.create(model="gpt2-tiny", prompt="Hello",
                                                     max_tokens=3, temperature=0).choices[0].text
    # errors arrive as the client's exception classes with our message
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model="gpt2-tiny", prompt=[1] * 70, max_tokens=1)
    assert "maximum context length is 64" in str(e.value)


def test_openai_api_key(serve):
    s = serve("--threads", "1", "--api-key", "k1")
    with pytest.raises(openai.AuthenticationError):
        client(s, "wrong").completions.create(model="x", prompt="Hi", max_tokens=1)
    r = client(s, "k1").completions.create(model="x", prompt="Hi", max_tokens=1)
    assert len(r.choices) == 1
