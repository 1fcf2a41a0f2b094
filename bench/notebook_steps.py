#!/usr/bin/env python3
"""The lesson notebook's steps timed on one engine, in a fresh process:
`--engine lsc` (import logitscope) or `--engine torch` (transformers +
PyTorch, as the original notebook). Prints one JSON object {step: seconds}.
Used by bench/python_bench.py; run alone:
    PYTHONPATH=python bench/notebook_steps.py --engine lsc --model build/fixtures/gpt2-124m
"""
import argparse
import json
import sys
import time

TEXT = "After a long night of work, I really need a hot cup of"

ap = argparse.ArgumentParser()
ap.add_argument("--engine", choices=["lsc", "torch"], required=True)
ap.add_argument("--model", required=True)
a = ap.parse_args()
times = {}
t = time.perf_counter()


def lap(name):
    global t
    now = time.perf_counter()
    times[name] = now - t
    t = now


import numpy as np  # noqa: E402  (both engines use it; not counted)

t = time.perf_counter()
if a.engine == "lsc":
    import logitscope
    lap("import")
    m = logitscope.load(a.model)
    lap("load")
    ids = m.tokenizer.encode(TEXT)
    lap("tokenize")
    logits = m.logits(ids)
    lap("logits (14 tokens)")
    row = logits[-1]
    p, lp = logitscope.softmax(row), logitscope.log_softmax(row)
    lap("softmax + log-softmax")
    top = m.next(ids, k=10)
    lap("top-10 table")
    r = m.rank(ids, " coffee")
    lap("rank of ' coffee'")
    d = m.sample(ids, n=5, replacement=False, seed=0)
    lap("5 draws")
    seq = list(ids)
    for _ in range(10):
        seq.append(int(m.logits(seq)[-1].argmax()))
    lap("10-step greedy loop")
    g = m.generate(ids, max_new_tokens=20)
    lap("generate 20")
    cid = m.tokenizer.encode(" coffee")[0]

    def push(act, name):
        act[:, cid] = act.max(axis=1) + 10

    with m.hooks({"lm_head": push}):
        hooked = m.next(ids, k=3)
    lap("hooked forward")
    assert hooked[0]["id"] == cid
else:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    lap("import")
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
    lap("load")
    torch.set_grad_enabled(False)
    ids = tok(TEXT, return_tensors="pt")["input_ids"]
    lap("tokenize")
    logits = model(ids).logits
    lap("logits (14 tokens)")
    row = logits[0, -1]
    p, lp = torch.softmax(row, -1), torch.log_softmax(row, -1)
    lap("softmax + log-softmax")
    top = torch.topk(row, 10)
    table = [(int(i), tok.decode([int(i)]), float(row[i]), float(p[i])) for i in top.indices]
    lap("top-10 table")
    cid = tok(" coffee")["input_ids"][0]
    r = int(torch.where(row.argsort(descending=True) == cid)[0])
    lap("rank of ' coffee'")
    torch.manual_seed(0)
    d = torch.multinomial(p, 5)
    lap("5 draws")
    seq = ids
    for _ in range(10):  # the notebook's loop: the whole sequence each step
        nxt = model(seq).logits[0, -1].argmax()
        seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
    lap("10-step greedy loop")
    g = model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=50256)
    lap("generate 20")

    def push(module, args, out):
        out = out.clone()
        out[..., cid] = out.max(dim=-1).values + 10
        return out

    h = model.lm_head.register_forward_hook(push)
    hooked = torch.topk(model(ids).logits[0, -1], 3).indices
    h.remove()
    lap("hooked forward")
    assert int(hooked[0]) == cid
times["total"] = sum(times.values())
json.dump(times, sys.stdout)
print()
