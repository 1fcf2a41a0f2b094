#!/usr/bin/env python3
"""Render times of `logitscope plot` for the full GPT-2 vocabulary (50,257
points per panel), each figure in each format, against the notebook's 10-20 s
in matplotlib. Prints the median of --runs renders as timed by the command
itself (drawing + encoding + atomic write) and the whole process's wall time
(which adds start-up and reading the logits).

    bench/plot.py [--build build] [--runs 5] [--model DIR --text T]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("LOGITSCOPE_BUILD", "build"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", help="plot from this model instead of synthetic logits")
    ap.add_argument("--text", default="I like to drink a cup of")
    args = ap.parse_args()
    exe = ROOT / args.build / "logitscope"
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        if args.model:
            src = ["--model", args.model, "--text", args.text]
        else:
            rng = np.random.default_rng(0)
            np.save(d / "logits.npy", (rng.standard_normal(50257) * 3 - 100).astype(np.float32))
            src = ["--npy", str(d / "logits.npy")]
        print(f"{'figure':<11} {'format':<6} {'points':>7} {'render s':>9} {'process s':>10}")
        for kind in ("logits", "softmax", "logsoftmax"):
            for fmt in ("png", "svg", "pdf"):
                render, wall, points = [], [], 0
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    p = subprocess.run([exe, "plot", kind, *src, "--json", "-o", d / f"f.{fmt}"],
                                       capture_output=True, text=True, check=True)
                    wall.append(time.perf_counter() - t0)
                    r = json.loads(p.stdout)
                    render.append(r["seconds"])
                    points = sum(q["points"] for q in r["panels"])
                print(f"{kind:<11} {fmt:<6} {points:>7} {statistics.median(render):>9.3f} "
                      f"{statistics.median(wall):>10.3f}")


if __name__ == "__main__":
    main()
