#!/usr/bin/env python3
"""bench/serve_bench.py - `logitscope serve` against the CLI on the 124M-shaped
checkpoint, in the same run: single-stream decode through the server vs
`logitscope generate`, 8 concurrent streams vs one, time to first token at 1
and 8 clients (p50, p99), and an echo scoring request of 512 tokens vs
`logitscope score`. Writes its section into bench/RESULTS.md, one per CPU model
(`<!-- bench/serve_bench: CPU: begin -->`).

    bench/serve_bench.py [--model build/fixtures/gpt2-124m] [--threads 2] [--rounds 3]
"""
import argparse
import http.client
import json
import os
import pathlib
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "server"))
import loadgen  # noqa: E402

BIN = ROOT / "build" / "logitscope"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import results_md  # noqa: E402

BEGIN, END = results_md.cpu_markers("bench/serve_bench")  # one section per CPU model
PROMPT = "After a long night of work, I really need a hot cup of"
N_NEW = 128


def med(xs):
    return statistics.median(xs)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def cli(*args):
    return cli_cpu(*args)[::2]


def children_cpu():
    t = os.times()
    return t.children_user + t.children_system


def cli_cpu(*args):
    """(wall seconds, CPU seconds (user + system), stdout) of one CLI run."""
    t0, c0 = time.perf_counter(), children_cpu()
    p = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(p.stderr)
    return dt, children_cpu() - c0, p.stdout


def cli_token_times(args, skip):
    """(seconds to the first new token, to the last) of a streaming `generate`,
    read from its stdout as it flushes each token; the first `skip` bytes are
    the prompt's text. Measured like the server's stream (arrival times), so
    the two rates exclude the model load and the prompt alike."""
    t0 = time.perf_counter()
    p = subprocess.Popen([str(BIN), *map(str, args)], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    got, first, last = 0, None, None
    while True:
        b = os.read(p.stdout.fileno(), 65536)
        if not b:
            break
        got += len(b)
        if b.strip():
            last = time.perf_counter() - t0
        if first is None and got > skip:
            first = time.perf_counter() - t0
    if p.wait():
        raise SystemExit("generate failed")
    return first, last


def proc_cpu(pid):
    """User + system CPU seconds of a running process (all its threads)."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def stream_times(url, body):
    """Arrival time of each streamed event carrying text, from the request."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(dict(body, stream=True)).encode(),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    times, buf = [], b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if ev.startswith(b"data: {"):
                e = json.loads(ev[6:])
                if e["choices"] and e["choices"][0]["logprobs"]:
                    times.extend([time.perf_counter() - t0] * len(e["choices"][0]["logprobs"]["tokens"]))
    conn.close()
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "build" / "fixtures" / "gpt2-124m"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    ap.add_argument("--mmap", action="store_true",
                    help="serve (and generate, its baseline) with the weights mapped in place "
                    "(default: --no-mmap, read into memory as a long-running server would)")
    a = ap.parse_args()
    model, th = a.model, a.threads
    mm = [] if a.mmap else ["--no-mmap"]
    ids = json.loads(cli("tokenize", "--model", model, "--json", "--text", PROMPT)[1])["ids"]
    ids_s = ",".join(map(str, ids))
    prompt_text = json.loads(cli("detokenize", "--model", model, "--json", "--ids", ids_s)[1])["text"]
    rng = random.Random(0)
    score_ids = [rng.randrange(50000) for _ in range(512)]
    score_s = ",".join(map(str, score_ids))

    srv = subprocess.Popen([str(BIN), "serve", "--model", model, "--port", "0", "--threads",
                            str(th), "--parallel", "8"] + mm, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    url = re.match(r"listening on (\S+)", srv.stdout.readline()).group(1)
    gen_body = {"prompt": ids, "max_tokens": N_NEW, "temperature": 0, "ignore_eos": True,
                "logprobs": 0}
    rows = {k: [] for k in ("cli_decode", "srv_decode", "decode_ratio", "cli_cpu_ms", "srv_cpu_ms", "agg1",
                            "agg8", "cli_score", "srv_score")}
    ttft1, ttft8 = [], []
    try:
        stream_times(url, dict(gen_body, max_tokens=4))  # warm the page cache and the server
        for _ in range(a.rounds):
            # decode rate: (N_NEW - 1) tokens after the first, from the arrival times
            # of the streamed tokens on both sides; the CPU time per token (the CLI's
            # from a 1-token run subtracted), steadier than wall time when shared
            t_full, c_full, _ = cli_cpu("generate", "--model", model, "--ids", ids_s, "--greedy",
                                        "--max-new-tokens", N_NEW, "--no-stop", "--threads", th, *mm)
            t_one, c_one, _ = cli_cpu("generate", "--model", model, "--ids", ids_s, "--greedy",
                                      "--max-new-tokens", 1, "--no-stop", "--threads", th, *mm)
            rows["cli_cpu_ms"].append((c_full - c_one) / (N_NEW - 1) * 1000)
            # the two decode rates in adjacent pairs, generate first then the server
            # first: a host whose speed drifts moves both sides of a pair alike, and
            # the order alternates, so the ratio is each pair's, not the medians'
            for order in ("cli", "srv"), ("srv", "cli"):
                pair = {}
                for side in order:
                    if side == "cli":
                        t_first, t_last = cli_token_times(
                            ["generate", "--model", model, "--ids", ids_s, "--greedy",
                             "--max-new-tokens", N_NEW, "--no-stop", "--threads", th, *mm],
                            len(prompt_text.encode()))
                        pair["cli"] = (N_NEW - 1) / (t_last - t_first)
                    else:
                        c0 = proc_cpu(srv.pid)
                        t = stream_times(url, gen_body)
                        c1 = proc_cpu(srv.pid)
                        assert len(t) == N_NEW, len(t)
                        pair["srv"] = (N_NEW - 1) / (t[-1] - t[0])
                        if order[0] == "cli":
                            rows["srv_cpu_ms"].append((c1 - c0) / N_NEW * 1000)
                rows["cli_decode"].append(pair["cli"])
                rows["srv_decode"].append(pair["srv"])
                rows["decode_ratio"].append(pair["srv"] / pair["cli"])
            # aggregate: generated tokens / wall time, 1 stream and 8 at once
            t0 = time.perf_counter()
            r = loadgen.run(url, [dict(gen_body, stream=True)], 1, timeout=600)
            rows["agg1"].append(N_NEW / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            r = loadgen.run(url, [dict(gen_body, stream=True, seed=i) for i in range(8)], 8,
                            timeout=600)
            assert all(x[0] == 200 for x in r)
            rows["agg8"].append(8 * N_NEW / (time.perf_counter() - t0))
            # time to first token: 1 client, then 8 clients each sending 3 requests
            for _ in range(8):
                ttft1.append(loadgen.run(url, [dict(gen_body, max_tokens=8, stream=True)], 1)[0][2])
            res = loadgen.run(url, [dict(gen_body, max_tokens=16, stream=True) for _ in range(24)], 8)
            ttft8.extend(x[2] for x in res)
            # scoring 512 tokens: the CLI (process, load included) vs one echo request
            rows["cli_score"].append(cli("score", "--model", model, "--ids", score_s, "--json",
                                         "--threads", th)[0])
            t0 = time.perf_counter()
            st, resp, _, _ = loadgen.run(url, [{"prompt": score_ids, "max_tokens": 0, "echo": True,
                                                "logprobs": 0}], 1)[0]
            rows["srv_score"].append(time.perf_counter() - t0)
            assert st == 200 and len(resp["choices"][0]["logprobs"]["token_logprobs"]) == 512
    finally:
        srv.terminate()
        srv.wait()
    m = {k: med(v) for k, v in rows.items()}
    cpu = results_md.cpu_model()
    load = os.getloadavg()
    lines = [
        BEGIN,
        f"## `logitscope serve` (bench/serve_bench.py), {cpu}",
        "",
        f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} when done (a shared machine: "
        f"compare the ratios, measured in the same run), the 124M-shaped checkpoint, "
        f"--threads {th}, --parallel 8, "
        f"{'weights mapped in place' if a.mmap else 'weights read into memory (--no-mmap) for serve and generate, mapped for the CLI score (its load is part of its time)'}, "
        f"medians of {a.rounds} rounds; {N_NEW} greedy tokens "
        f"after a {len(ids)}-token prompt.",
        "",
        "| measure | server | CLI / baseline | ratio | goal |",
        "|---|---|---|---|---|",
        f"| single-stream decode, tokens/s after the first (arrival times of the streamed "
        f"tokens: SSE events, `generate`'s stdout; the ratio: the median over adjacent pairs, "
        f"two a round in alternating order) | {m['srv_decode']:.1f} | "
        f"{m['cli_decode']:.1f} (`generate`) | {m['decode_ratio']:.2f} | >= 0.95 |",
        f"| CPU ms per decoded token (server: its process over the streamed request, prompt "
        f"included; CLI: the {N_NEW}-token run less the 1-token run) | {m['srv_cpu_ms']:.1f} | "
        f"{m['cli_cpu_ms']:.1f} | {m['srv_cpu_ms'] / m['cli_cpu_ms']:.2f} | <= 1.05 |",
        f"| aggregate tokens/s, 8 concurrent streams vs 1 | {m['agg8']:.1f} | {m['agg1']:.1f} | "
        f"{m['agg8'] / m['agg1']:.2f}x | >= 5x |",
        f"| echo scoring of 512 tokens, s (server request vs `score` process) | "
        f"{m['srv_score']:.3f} | {m['cli_score']:.3f} | {m['srv_score'] / m['cli_score']:.2f} | "
        f"<= 1.10 |",
        "",
        "| time to first token (streamed, prompt of "
        f"{len(ids)} tokens) | p50 | p99 | requests |",
        "|---|---|---|---|",
        f"| 1 client | {pct(ttft1, 50) * 1000:.0f} ms | {pct(ttft1, 99) * 1000:.0f} ms | {len(ttft1)} |",
        f"| 8 clients | {pct(ttft8, 50) * 1000:.0f} ms | {pct(ttft8, 99) * 1000:.0f} ms | {len(ttft8)} |",
        "",
        "Per round: " + "; ".join(f"{k} " + ", ".join(f"{x:.3g}" for x in v) for k, v in rows.items()),
        END,
    ]
    # the block between the markers; every other section of the file is kept
    results_md.write_block(a.out, BEGIN, END, "\n".join(lines[1:-1]))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
