"""examples/lesson.ipynb executed end to end (nbclient, a python3 kernel) on
the random checkpoint of GPT-2's shape; any cell error (the notebook asserts
its own results too) fails the test."""
import os
import time

import nbclient
import nbformat

import pkg_path  # noqa: F401
from fixtures import fixture_dir


def test_lesson_notebook_runs(monkeypatch):
    monkeypatch.setenv("LOGITSCOPE_MODEL", str(fixture_dir("gpt2-124m")))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(pkg_path.ROOT / "python"), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(pkg_path.ROOT / "examples" / "lesson.ipynb", as_version=4)
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(pkg_path.ROOT)}}).execute()
    print(f"lesson.ipynb ran in {time.perf_counter() - t0:.1f} s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum(o.output_type == "display_data" for o in outputs) == 2  # the two figures
