#!/usr/bin/env python3
"""Writes tests/expected/logits.json from the oracle (transformers + torch):
for a few small cases, the top-5 token ids and logits at every position, the
logits of a few fixed ids and each row's logsumexp. test_expected_logits.py
checks the C logits against it without needing torch.

    python3 tests/make_expected.py
"""
import json
import pathlib
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fixtures import fixture_dir  # noqa: E402

CASES = [
    ("tiny", [464, 2068, 7586]),
    ("tiny", [50256]),
    ("tiny-bf16", [15496, 11, 616, 3290, 318]),
    ("tiny-untied", [40, 1842, 257, 6508]),
    ("tiny-scale-inv", [1, 2, 3, 4, 5, 6]),
    ("tiny-gelu", [9246, 7586, 318]),
]
PROBE_IDS = [0, 464, 50256]


def main():
    out = []
    for name, ids in CASES:
        m = AutoModelForCausalLM.from_pretrained(str(fixture_dir(name)), dtype=torch.float32).eval()
        with torch.no_grad():
            logits = m(torch.tensor([ids])).logits[0].double()
        rows = []
        for t in range(len(ids)):
            v, i = torch.topk(logits[t], 5)
            rows.append({
                "top5_ids": i.tolist(),
                "top5_logits": [round(x, 6) for x in v.tolist()],
                "probe_logits": [round(logits[t, k].item(), 6) for k in PROBE_IDS],
                "logsumexp": round(torch.logsumexp(logits[t], 0).item(), 6),
            })
        out.append({"fixture": name, "ids": ids, "probe_ids": PROBE_IDS, "rows": rows})
    path = pathlib.Path(__file__).resolve().parent / "expected" / "logits.json"
    path.write_text(json.dumps({
        "source": "transformers %s, torch %s, float32" % (
            __import__("transformers").__version__, torch.__version__),
        "cases": out}, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    np.set_printoptions(precision=6)
    main()
