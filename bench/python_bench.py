#!/usr/bin/env python3
"""The Python package's costs on the random GPT-2 124M checkpoint, each
against its reference measured in the same run, alternating A/B (medians):

  1. m.logits for 1 token after a 64-token prefix (the KV cache reused)
     against the C call it makes (lsc_ctx_forward of that token, via cffi);
  2. a 128-token Python generation loop calling m.logits each step against
     `logitscope generate` (the CLI process, and lsc_generate in-process);
  3. `import logitscope` + load, the median of >= 10 fresh processes (wall
     and CPU time), and the tokenizer's first use after it;
  4. the lesson notebook's steps with logitscope and with transformers +
     PyTorch, each engine in a fresh process (bench/notebook_steps.py), and
     examples/lesson.ipynb executed by nbclient.

Writes its section into bench/RESULTS.md between the python-bench markers
(the rest of the file is bench/run's). The machine is shared: wall times
move with other processes' load, so CPU times are given beside them.

    bench/python_bench.py [--model build/fixtures/gpt2-124m] [--rounds 5] [--out bench/RESULTS.md]
"""
import argparse
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"),
                                                   os.environ.get("PYTHONPATH", "")]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import results_md  # noqa: E402

BEGIN, END = "<!-- python-bench: begin -->", "<!-- python-bench: end -->"


def med(xs):
    return statistics.median(xs)


def one_token_overhead(m, rounds):
    """For m.logits of one token after 64 cached ones on a single-thread
    context: medians of the whole call and of the lsc_ctx_forward inside it
    (timed around the C call), wall and CPU seconds. Timing both on the same
    call keeps the machine's load out of the difference: the rest is what
    the Python layer adds."""
    m = m.fork(threads=1)
    prefix = list(range(1000, 1064))
    inner = []
    forward = m._forward

    def timed(ctx, ids, mode):
        t, c = time.perf_counter(), time.process_time()
        forward(ctx, ids, mode)
        inner.append((time.perf_counter() - t, time.process_time() - c))

    m._forward = timed
    whole, c_call = [], []
    try:
        for r in range(rounds * 4):
            m.logits(prefix)  # the cache holds the prefix (recomputed: the last call diverged)
            inner.clear()
            t, c = time.perf_counter(), time.process_time()
            m.logits(prefix + [2000 + r])
            whole.append((time.perf_counter() - t, time.process_time() - c))
            c_call.append(inner[0])
    finally:
        m.close()
    return (med([w for w, _ in whole]), med([w for w, _ in c_call]),
            med([c for _, c in whole]), med([c for _, c in c_call]),
            med([w - i for (w, _), (i, _) in zip(whole, c_call)]))


def generation_loop(m, model_dir, rounds, n_new=128):
    prompt = m.tokenizer.encode("After a long night of work, I really need a hot cup of")
    loop, inproc, cli = [], [], []
    for _ in range(rounds):
        t = time.perf_counter()
        seq = list(prompt)
        for _ in range(n_new):
            seq.append(int(m.logits(seq)[-1].argmax()))
        loop.append(time.perf_counter() - t)
        t = time.perf_counter()
        g = m.generate(prompt, max_new_tokens=n_new, stop_at_eos=False)
        inproc.append(time.perf_counter() - t)
        assert g.ids == seq, "the Python loop and lsc_generate disagree"
        t = time.perf_counter()
        p = subprocess.run([str(ROOT / "build" / "logitscope"), "generate", "--model", model_dir,
                            "--ids", ",".join(map(str, prompt)), "--max-new-tokens", str(n_new),
                            "--greedy", "--no-stop", "--json"],
                           capture_output=True, text=True, check=True)
        cli.append(time.perf_counter() - t)
        assert json.loads(p.stdout)["new_ids"] == seq[len(prompt):]
    return med(loop), med(inproc), med(cli)


def batched_scoring(m, rounds, n_texts=32):
    """(score one by one, score_many) seconds for n_texts texts of ~40-90 tokens."""
    import numpy as np
    rng = np.random.default_rng(0)
    texts = [list(map(int, rng.integers(0, m.n_vocab, int(rng.integers(40, 90)))))
             for _ in range(n_texts)]
    alone, many = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        a = [m.score(x) for x in texts]
        alone.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = m.score_many(texts, batch_size=16)
        many.append(time.perf_counter() - t)
        assert a == b, "score_many differs from score"
    return med(alone), med(many)


def two_threads(m, rounds):
    """(one thread doing 2 jobs, two threads doing 1 each) seconds; each job
    scores 128 tokens on its own single-threaded context."""
    import threading
    ids = list(range(2000, 2128))
    ms = [m.fork(threads=1), m.fork(threads=1)]
    seq, par = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        ms[0].score(ids)
        ms[0].score(ids)
        seq.append(time.perf_counter() - t)
        ts = [threading.Thread(target=x.score, args=(ids,)) for x in ms]
        t = time.perf_counter()
        [x.start() for x in ts]
        [x.join() for x in ts]
        par.append(time.perf_counter() - t)
    for x in ms:
        x.close()
    return med(seq), med(par)


def import_and_load(model_dir, runs):
    """Medians over `runs` fresh processes of (wall, CPU) seconds of `import
    logitscope` + load, counted from before the import (numpy's import
    included), the same with numpy imported beforehand (not counted), and the
    tokenizer's first use after them (m.tokenizer.encode reads its files)."""
    code = ("import time, resource\n"
            "def cpu():\n"
            "    ru = resource.getrusage(resource.RUSAGE_SELF)\n"
            "    return ru.ru_utime + ru.ru_stime\n"
            "%s"
            "t, c = time.perf_counter(), cpu()\n"
            "import logitscope\n"
            "m = logitscope.load(%r)\n"
            "t1, c1 = time.perf_counter(), cpu()\n"
            "m.tokenizer.encode('Hello')\n"
            "print(t1 - t, c1 - c, time.perf_counter() - t1, cpu() - c1)\n")
    keys = ("cold", "numpy first")
    res = {k: [] for k in keys}
    for _ in range(runs):
        for key, pre in zip(keys, ("", "import numpy\n")):
            out = subprocess.run([sys.executable, "-c", code % (pre, model_dir)], env=ENV,
                                 capture_output=True, text=True, check=True).stdout.split()
            res[key].append([float(x) for x in out])
    res = {k: [med([r[i] for r in rs]) for i in range(4)] for k, rs in res.items()}
    res["tokenizer"] = res["cold"][2:]
    return res


def notebook_steps(model_dir, rounds):
    res = {"lsc": [], "torch": []}
    for _ in range(rounds):
        for eng in ("lsc", "torch"):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run([sys.executable, str(ROOT / "bench" / "notebook_steps.py"),
                                  "--engine", eng, "--model", model_dir], env=ENV,
                                 capture_output=True, text=True, check=True).stdout
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            d = json.loads(out)
            d["CPU time of the process"] = (after.ru_utime - before.ru_utime +
                                            after.ru_stime - before.ru_stime)
            res[eng].append(d)
    return {eng: {k: med([r[k] for r in rs]) for k in rs[0]} for eng, rs in res.items()}


def notebook_run(model_dir):
    import nbclient
    import nbformat
    nb = nbformat.read(ROOT / "examples" / "lesson.ipynb", as_version=4)
    os.environ.update(LOGITSCOPE_MODEL=model_dir, PYTHONPATH=ENV["PYTHONPATH"])
    t = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "build" / "fixtures" / "gpt2-124m"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    a = ap.parse_args()
    # pip compiles the package's .pyc at install; do the same for python/
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "python" / "logitscope")],
                   check=True)
    import logitscope
    m = logitscope.load(a.model)
    m.logits(list(range(64)))  # fault the weights in
    py1, c1, py1c, c1c, added = one_token_overhead(m, a.rounds)
    print(f"1 token after 64: python {py1 * 1e3:.2f} ms, C {c1 * 1e3:.2f} ms; CPU "
          f"{py1c * 1e3:.2f} / {c1c * 1e3:.2f} ms; added {added * 1e3:.3f} ms", flush=True)
    loop, inproc, cli = generation_loop(m, a.model, max(3, a.rounds // 2))
    print(f"128 tokens: loop {loop:.2f} s, lsc_generate {inproc:.2f} s, CLI {cli:.2f} s",
          flush=True)
    alone, many = batched_scoring(m, max(3, a.rounds // 2))
    print(f"32 texts: score one by one {alone:.2f} s, score_many {many:.2f} s", flush=True)
    seq2, par2 = two_threads(m, a.rounds)
    print(f"two jobs: one thread {seq2:.2f} s, two threads {par2:.2f} s", flush=True)
    il = import_and_load(a.model, max(10, 2 * a.rounds))
    print(f"import + load: {il}", flush=True)
    steps = notebook_steps(a.model, max(3, a.rounds // 2))
    print(json.dumps(steps), flush=True)
    nb = notebook_run(a.model)
    print(f"lesson.ipynb: {nb:.1f} s", flush=True)
    load = os.getloadavg()
    lines = [
        BEGIN,
        "## The Python package (bench/python_bench.py)",
        "",
        f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at commit "
        f"{subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()}"
        f" on {platform.processor() or platform.machine()} ({results_md.cpu_model()}, {os.cpu_count()} CPUs, "
        f"SIMD {logitscope.simd_level()}), the random 124M checkpoint, all cores; load average "
        f"when done {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (anything else running on the "
        f"machine stretches the wall times); each line's "
        "numbers come from the same run, alternating, medians.",
        "",
        "| measure | logitscope (Python) | reference | ratio | goal |",
        "|---|---|---|---|---|",
        f"| `m.logits` of 1 token after 64 cached (1 thread), wall | {py1 * 1e3:.2f} ms | "
        f"its lsc_ctx_forward {c1 * 1e3:.2f} ms | {added / c1 * 100:+.2f}% (the median "
        f"per-call difference, {added * 1e3:.2f} ms; the medians' ratio "
        f"{(py1 / c1 - 1) * 100:+.1f}%) | <= +5% |",
        f"| the same, CPU time | {py1c * 1e3:.2f} ms | {c1c * 1e3:.2f} ms | "
        f"{(py1c / c1c - 1) * 100:+.1f}% | <= +5% |",
        f"| 128-token greedy loop calling `m.logits` | {loop:.2f} s | `logitscope generate` "
        f"(CLI process) {cli:.2f} s | {loop / cli:.3f}x | <= 1.10x |",
        f"| same loop | {loop:.2f} s | `m.generate` (lsc_generate) {inproc:.2f} s | "
        f"{loop / inproc:.3f}x | |",
        f"| `score_many` of 32 texts (40-90 tokens), batch 16 | {many:.2f} s | `score` one by "
        f"one {alone:.2f} s (same results, bit for bit) | {alone / many:.2f}x faster | |",
        f"| 2 threads, each scoring 128 tokens on its own single-thread context | {par2:.2f} s "
        f"| one thread doing both {seq2:.2f} s | {par2 / seq2:.2f}x | (GIL released) |",
        f"| `import logitscope` + `load` (fresh process, numpy's import included) | "
        f"{il['cold'][0] * 1e3:.0f} ms wall, {il['cold'][1] * 1e3:.0f} ms CPU | | | < 200 ms |",
        f"| the same with numpy already imported | {il['numpy first'][0] * 1e3:.0f} ms wall, "
        f"{il['numpy first'][1] * 1e3:.0f} ms CPU | | | |",
        f"| then the tokenizer's first use (reads vocab.json + merges.txt) | "
        f"{il['tokenizer'][0] * 1e3:.0f} ms wall, {il['tokenizer'][1] * 1e3:.0f} ms CPU | | | |",
        "",
        "The notebook's steps (bench/notebook_steps.py), each engine in a fresh process, "
        "seconds (medians):",
        "",
        "| step | logitscope | transformers + PyTorch | PyTorch / logitscope |",
        "|---|---|---|---|",
    ]
    for k in steps["lsc"]:
        a_, b_ = steps["lsc"][k], steps["torch"][k]
        lines.append(f"| {k} | {a_:.4f} | {b_:.4f} | {b_ / a_:.2g}x |")
    lines += [
        "",
        "The PyTorch 10-step loop runs the whole sequence each step, as the lesson's "
        "notebook does; the logitscope loop reuses the KV cache through `m.logits`.",
        f"examples/lesson.ipynb executed by nbclient (kernel start included): {nb:.1f} s.",
        END,
    ]
    # the block between the markers; every other section of the file is kept
    results_md.write_block(a.out, BEGIN, END, "\n".join(lines[1:-1]))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
