"""Runs lm-evaluation-harness on the repo's local tasks (lm_eval_tasks/) with
lm-eval's `hf` backend and, given a server, `local-completions` with the
remote tokenizer, in one process (lm_eval is slow to import), and prints as
JSON on the last line {backend: {"metrics": {task: {metric: value}},
"samples": {task: {doc_id: [[loglikelihood, is_greedy], ...]}}}}.

    python3 tests/server/lm_eval_run.py MODEL_DIR [BASE_URL NAME]

Run from the repository root (the task files name their data from there)."""
import json
import logging
import os
import pathlib
import sys

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lm_eval  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

TASKS = ["lsc_lambada", "lsc_choice"]
HERE = pathlib.Path(__file__).resolve().parent


def run(backend, args, **extra):
    tm = TaskManager(include_path=str(HERE / "lm_eval_tasks"))
    out = lm_eval.simple_evaluate(model=backend, model_args=args, tasks=TASKS, task_manager=tm,
                                  log_samples=True, **extra)
    metrics = {t: {k.split(",")[0]: v for k, v in out["results"][t].items()
                   if not k.endswith("_stderr,none") and k != "alias"} for t in TASKS}
    samples = {t: {str(d["doc_id"]): [[float(r[0]), bool(r[1])] for r in d["filtered_resps"]]
                   for d in out["samples"][t]} for t in TASKS}
    return {"metrics": metrics, "samples": samples}


def main():
    logging.disable(logging.WARNING)
    model_dir = sys.argv[1]
    res = {"hf": run("hf", {"pretrained": model_dir, "dtype": "float32", "max_length": 64},
                     device="cpu", batch_size=1)}
    if len(sys.argv) > 3:
        base_url, name = sys.argv[2], sys.argv[3]
        res["local-completions"] = run(
            "local-completions",
            {"model": name, "base_url": base_url + "/v1/completions", "tokenizer_backend": "remote",
             "max_length": 64, "num_concurrent": 1, "max_retries": 1, "batch_size": 4,
             "tokenized_requests": True})
    print(json.dumps(res))


if __name__ == "__main__":
    main()
