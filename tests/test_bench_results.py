"""bench/results_md.py: a benchmark rewrites its own marked section of
bench/RESULTS.md and keeps every other one byte for byte."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "bench"))
import results_md  # noqa: E402

FILE = """# logitscope benchmark results

Heading text.

<!-- bench/run: Intel(R) Xeon(R) Processor: begin -->
## Intel

intel numbers
<!-- bench/run: Intel(R) Xeon(R) Processor: end -->

<!-- batched engine: bench/batch_run -->

## Many sequences
batch numbers

<!-- end batched engine -->

<!-- python-bench: begin -->
python numbers
<!-- python-bench: end -->
"""


def test_replaces_its_own_block_and_keeps_the_others(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text(FILE)
    b, e = "<!-- python-bench: begin -->", "<!-- python-bench: end -->"
    results_md.write_block(str(out), b, e, "python numbers")
    assert out.read_text() == FILE  # the same content: the same bytes
    results_md.write_block(str(out), b, e, "new python numbers")
    text = out.read_text()
    assert text == FILE.replace("\npython numbers", "\nnew python numbers")


def test_a_new_cpu_gets_its_own_section(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text(FILE)
    results_md.write_block(str(out), "<!-- bench/run: AMD EPYC: begin -->",
                           "<!-- bench/run: AMD EPYC: end -->", "## AMD\n\namd numbers")
    text = out.read_text()
    assert text.startswith(FILE.rstrip("\n"))  # everything before is kept as it was
    assert text.endswith("<!-- bench/run: AMD EPYC: begin -->\n## AMD\n\namd numbers\n"
                         "<!-- bench/run: AMD EPYC: end -->\n")
    head, blocks = results_md.split_blocks(text)
    assert head.strip() == "# logitscope benchmark results\n\nHeading text."
    assert len(blocks) == 4


def test_missing_file_gets_the_heading(tmp_path):
    out = tmp_path / "RESULTS.md"
    results_md.write_block(str(out), "<!-- x: begin -->", "<!-- x: end -->", "body")
    assert out.read_text() == ("# logitscope benchmark results\n\n<!-- x: begin -->\nbody\n"
                               "<!-- x: end -->\n")
