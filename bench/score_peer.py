#!/usr/bin/env python3
"""The PyTorch peer of `logitscope score --jsonl`: transformers'
GPT2LMHeadModel (float32, eager) scores the same {"ids": [...]} lines the way
its users do, in order, in padded batches (right padding, attention_mask),
log_softmax of the logits gathered at the next tokens; prints one JSON line.

  score_peer.py MODEL_DIR TEXTS.jsonl --threads N [--batch 16] [--ours OURS.jsonl]

With --ours (score --jsonl's output for the same lines) it also reports the
largest difference of a token's log-probability and of a text's total
negative log-likelihood between the two, and fails (exit 1, after printing)
when a token's differs by more than --tol (default 1e-3) or a text's total
by more than --tol per token: timings of numbers that disagree mean nothing.
"""
import argparse
import json
import resource
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("texts")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ours")
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()

    import torch
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(a.threads)
    model = GPT2LMHeadModel.from_pretrained(a.model, dtype=torch.float32)
    model.eval()
    texts = [json.loads(l)["ids"] for l in open(a.texts) if l.strip()]
    lps, real, padded = [], 0, 0
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for b in range(0, len(texts), a.batch):
            group = texts[b:b + a.batch]
            L = max(len(t) for t in group)
            ids = torch.zeros((len(group), L), dtype=torch.long)
            mask = torch.zeros((len(group), L), dtype=torch.long)
            for i, t in enumerate(group):
                ids[i, :len(t)] = torch.tensor(t)
                mask[i, :len(t)] = 1
            logits = model(input_ids=ids, attention_mask=mask).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            tok = logp.gather(-1, ids[:, 1:, None])[..., 0]
            for i, t in enumerate(group):
                lps.append(tok[i, :len(t) - 1].tolist())
            real += sum(len(t) for t in group)
            padded += L * len(group)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"engine": "pytorch", "threads": a.threads, "batch": a.batch, "texts": len(texts),
           "tokens": real, "padded_tokens": padded, "seconds": dt, "tok_s": real / dt,
           "cpu_seconds": cpu, "tok_per_cpu_s": real / cpu,
           "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
           "torch": torch.__version__}
    if a.ours:
        ours = [json.loads(l) for l in open(a.ours) if l.strip()]
        assert len(ours) == len(texts), (len(ours), len(texts))
        d_tok, d_nll, bad = 0.0, 0.0, []
        for i, (theirs, mine) in enumerate(zip(lps, ours)):
            mlp = mine["token_logprobs"]
            assert len(mlp) == len(theirs)
            dt_i = max(abs(x - y) for x, y in zip(theirs, mlp))
            dn_i = abs(-sum(theirs) - mine["total_nll"])
            d_tok, d_nll = max(d_tok, dt_i), max(d_nll, dn_i)
            if not (dt_i <= a.tol and dn_i <= a.tol * len(theirs)):
                bad.append(i)
        out["max_token_logprob_diff"] = d_tok
        out["max_total_nll_diff"] = d_nll
        out["tol"] = a.tol
    print(json.dumps(out))
    if a.ours and bad:
        print(f"score_peer: {len(bad)} of {len(texts)} texts disagree with logitscope beyond "
              f"{a.tol} (first: line {bad[0] + 1}; max token log-prob difference {d_tok:.3g})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
