#!/usr/bin/env python3
"""Times `logitscope plot` for the full GPT-2 vocabulary (50,257 points per
panel): every figure in every format, the whole command (start-up, reading the
logits, drawing, encoding, the atomic write) against the goal of 1 s and the
notebook's 10-20 s in matplotlib. Prints per figure and format the median over
--runs of the process's wall time and of the render time the command reports,
and the points and markers drawn.

    bench/plot.py [--runs 5] [--exe build/logitscope ...] [--model DIR --text T]

With several --exe (e.g. a copy of the binary before a change and after) the
executables alternate run by run, so that the machine's drift hits them alike,
and each row gets a column per executable and the ratio of the first to each
other. Without --model the row is synthetic (GPT-2-like logits) and the lens
figure, which needs a model, is left out. Take timings on a quiet machine,
holding the benchmark lock (flock /tmp/bench.lock bench/plot.py ...).
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOAL_S = 1.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", action="append",
                    help="a logitscope binary (repeat to compare; default "
                         "$LOGITSCOPE_BUILD/logitscope)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", help="plot from this model instead of synthetic logits")
    ap.add_argument("--text", default="I like to drink a cup of")
    ap.add_argument("--formats", default="png,svg,pdf")
    args = ap.parse_args()
    exes = args.exe or [str(ROOT / os.environ.get("LOGITSCOPE_BUILD", "build") / "logitscope")]
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        if args.model:
            src = ["--model", args.model, "--text", args.text]
            kinds = ["logits", "softmax", "logsoftmax", "lens"]
        else:
            rng = np.random.default_rng(0)
            np.save(d / "logits.npy", (rng.standard_normal(50257) * 3 - 100).astype(np.float32))
            src = ["--npy", str(d / "logits.npy")]
            kinds = ["logits", "softmax", "logsoftmax"]
        load = " ".join(open("/proc/loadavg").read().split()[:3])
        print(f"load average at start: {load}; {args.runs} runs, medians of the whole command "
              f"(render time as reported in brackets); goal < {GOAL_S:.0f} s")
        head = f"{'figure':<11} {'format':<6} {'points':>7} {'markers':>7}"
        for k, e in enumerate(exes):
            head += f" {'exe ' + str(k) + ' s':>18}"
        if len(exes) > 1:
            head += "  ratio exe 0 / others"
        print(head)
        for k, e in enumerate(exes):
            print(f"  exe {k}: {e}")
        worst = 0.0
        for kind in kinds:
            for fmt in args.formats.split(","):
                wall = [[] for _ in exes]
                render = [[] for _ in exes]
                points = markers = 0
                for _ in range(args.runs):
                    for k, exe in enumerate(exes):  # alternate: drift hits all alike
                        out = d / f"f{k}.{fmt}"
                        t0 = time.perf_counter()
                        p = subprocess.run([exe, "plot", kind, *src, "--json", "-o", out],
                                           capture_output=True, text=True)
                        wall[k].append(time.perf_counter() - t0)
                        if p.returncode != 0:
                            raise SystemExit(f"{exe} plot {kind} -o {out}: {p.stderr.strip()}")
                        r = json.loads(p.stdout)
                        r = r.get("plot", r)  # plot lens prints the table with a plot object
                        render[k].append(r["seconds"])
                        if k == len(exes) - 1:
                            points = sum(q["points"] for q in r["panels"])
                            markers = sum(q.get("markers", q["points"]) for q in r["panels"])
                med = [statistics.median(w) for w in wall]
                worst = max(worst, med[-1])
                row = f"{kind:<11} {fmt:<6} {points:>7} {markers:>7}"
                for k in range(len(exes)):
                    row += f" {med[k]:>8.3f} [{statistics.median(render[k]):.3f}]"
                if len(exes) > 1:
                    row += "  " + ", ".join(f"{med[0] / m:.2f}x" for m in med[1:])
                print(row, flush=True)
        load = " ".join(open("/proc/loadavg").read().split()[:3])
        print(f"load average at end: {load}; slowest figure (last exe): {worst:.3f} s -> "
              f"goal < {GOAL_S:.0f} s {'met' if worst < GOAL_S else 'NOT met'}")


if __name__ == "__main__":
    main()
