"""The table of bad inputs (issue 8) that the other test files do not already
cover: NaN/Inf weights, configs with keys missing or absurd sizes, a tokenizer
whose ids the model lacks, prompts that are too long, empty or not UTF-8,
outputs that cannot be written or that fill the disk, and the library's
promise never to print or exit. Each case must give a one-line error naming
the problem, a non-zero exit, nothing half-written and no crash.

Cases covered elsewhere: tests/test_bad_model.py (safetensors truncated, header
lengths, offsets, dtypes, shapes, missing tensors, config types and limits,
ids out of range, --npy atomicity), tests/test_tokenize_cli.py (vocab/merges
malformed, invalid UTF-8 in tokenize), tests/test_hub.py (full disk and
read-only cache during a download)."""
import json
import os
import shutil
import stat
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import BIN, BUILD, ROOT, run_cli, unprivileged_cli, unwritable_folder
from fixtures import fixture_dir

sys.path.insert(0, str(ROOT / "tests"))
import gen_fixtures  # noqa: E402

IDS = "464,2068,7586"
FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")


def one_line_error(p, *needles, status=1):
    """Asserts a failed run: exit `status` (1 a runtime error, 2 a usage
    error), nothing on stdout, one error line holding every needle. Returns
    the line."""
    err = p.stderr if isinstance(p.stderr, str) else p.stderr.decode("utf-8", "replace")
    out = p.stdout if isinstance(p.stdout, (str, type(None))) else p.stdout.decode("utf-8", "replace")
    assert p.returncode == status and not out, (p.returncode, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("logitscope: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    print(lines[0])
    return lines[0]


def model_copy(tmp_path, name="tiny", files=("config.json", "model.safetensors")):
    d = tmp_path / name
    d.mkdir()
    for f in files:
        shutil.copyfile(fixture_dir(name) / f, d / f)
    return d


def poke_tensor(path, tensor, index, value):
    """Overwrites element `index` of `tensor` in a safetensors file with
    `value` (encoded in the tensor's dtype)."""
    raw = bytearray(path.read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    t = h[tensor]
    dt = {"F32": "<f4", "F16": "<f2", "BF16": None}[t["dtype"]]
    if dt is None:  # bfloat16: the high half of the float32
        enc = np.array([value], dtype="<f4").view("<u4")[0] >> 16
        b = struct.pack("<H", int(enc))
    else:
        b = np.array([value], dtype=dt).tobytes()
    at = 8 + n + t["data_offsets"][0] + index * len(b)
    raw[at:at + len(b)] = b
    path.write_bytes(bytes(raw))


# ---------------------------------------------------------------------------
# NaN / Inf weights. Behaviour: the model loads (loading is a mapping of the
# file, not a scan, as torch loads such weights too); the forward pass
# propagates them as torch's default (sdpa) attention does; every CLI command
# refuses to print or save non-finite logits, naming the tensor and element at
# fault (lsc_model_check_finite), with nothing written. A NaN that never
# reaches the logits (a row of a token not in the input, or a query/key bias:
# the attention softmax then drops it, as sdpa does, while transformers' eager
# attention would give NaN) leaves a normal run.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fixture,tensor,index,value,word", [
    ("tiny", "wte.weight", 464 * 32 + 5, np.nan, "NaN"),
    ("tiny", "h.1.mlp.c_fc.weight", 17, np.inf, "Inf"),
    ("tiny", "ln_f.bias", 3, -np.inf, "Inf"),
    ("tiny-f16", "h.0.attn.c_attn.bias", 2 * 32 + 1, np.nan, "NaN"),  # in v
    ("tiny-bf16", "transformer.wpe.weight", 1, np.inf, "Inf"),
])
@pytest.mark.parametrize("load", [[], ["--no-mmap"]])  # --no-mmap: the copy lets matrices go
def test_nan_inf_weights(tmp_path, fixture, tensor, index, value, word, load):
    d = model_copy(tmp_path, fixture)
    poke_tensor(d / "model.safetensors", tensor, index, value)
    out = tmp_path / "x.npy"
    p = run_cli("logits", "--model", d, "--ids", IDS, "--npy", out, *load)
    one_line_error(p, "model.safetensors", tensor, word, f"element {index}")
    assert not out.exists() and sorted(f.name for f in tmp_path.iterdir()) == [fixture]


@pytest.mark.parametrize("cmd", [["next"], ["rank", "--token-id", "5"], ["sample", "-n", "2"],
                                 ["score"], ["generate", "--max-new-tokens", "3", "--do-sample"],
                                 ["generate", "--max-new-tokens", "3", "--greedy"]])
def test_nan_weights_in_every_command(tmp_path, cmd):
    d = model_copy(tmp_path, files=FILES)
    poke_tensor(d / "model.safetensors", "ln_f.bias", 3, np.nan)
    one_line_error(run_cli(cmd[0], "--model", d, "--ids", IDS, *cmd[1:]), "ln_f.bias", "NaN")


def test_nan_weight_not_reached_is_harmless(tmp_path):
    """A NaN in the embedding row of a token that is not in the input never
    reaches the logits: the run succeeds, as in torch."""
    d = model_copy(tmp_path)
    poke_tensor(d / "model.safetensors", "wte.weight", 100 * 32, np.nan)
    # row 100 of wte is also the unembedding row of token 100 (tied): its logit is NaN
    one_line_error(run_cli("logits", "--model", d, "--ids", IDS), "wte.weight", "NaN")
    # untied models keep wte out of the unembedding
    d2 = model_copy(tmp_path, "tiny-untied")
    poke_tensor(d2 / "model.safetensors", "transformer.wte.weight", 100 * 32, np.nan)
    assert run_cli("logits", "--model", d2, "--ids", IDS).returncode == 0
    # a NaN in a query bias: dropped by the attention softmax (as torch's sdpa)
    d3 = model_copy(tmp_path, "tiny-scale-inv")
    poke_tensor(d3 / "model.safetensors", "h.0.attn.c_attn.bias", 0, np.nan)
    assert run_cli("logits", "--model", d3, "--ids", IDS).returncode == 0


# ---------------------------------------------------------------------------
# config.json: keys missing, absurd sizes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("config,needles", [
    ({}, ["wte.weight", "[50257, 32]", "[50257, 768]"]),  # GPT2Config defaults apply
    ({"model_type": "gpt2", "n_layer": 2}, ["[50257, 768]"]),
    ({"n_embd": 32, "n_head": 4, "n_layer": 2}, ["wpe.weight", "[64, 32]", "[1024, 32]"]),
])
def test_config_keys_missing(tmp_path, config, needles):
    d = model_copy(tmp_path)
    (d / "config.json").write_text(json.dumps(config))
    one_line_error(run_cli("logits", "--model", d, "--ids", IDS), "model.safetensors", *needles)


@pytest.mark.parametrize("key,value,needle", [
    ("vocab_size", 1 << 24, "config.json implies"), ("n_positions", 1 << 20, "config.json implies"),
    ("n_embd", 65536, "config.json implies"), ("n_inner", 1 << 20, "config.json implies"),
    ("n_layer", 1024, "'h.2.ln_1.weight' is missing"),
])
def test_config_absurd_but_allowed_sizes_fail_before_allocating(tmp_path, key, value, needle):
    """Sizes inside the config limits but far beyond the file: the tensors'
    shapes are checked against the file before anything is allocated (a
    1 GiB address-space limit would make any large allocation fail)."""
    d = model_copy(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg[key] = value
    if key == "n_embd":
        cfg["n_head"] = 1
    if key == "n_positions":
        cfg["n_ctx"] = value
    (d / "config.json").write_text(json.dumps(cfg))
    if "san" in BUILD.name:  # AddressSanitizer reserves terabytes of address space
        p = run_cli("logits", "--model", d, "--ids", IDS)
    else:
        p = subprocess.run(["bash", "-c", f'ulimit -v 1048576; exec "{BIN}" logits --model "{d}" --ids {IDS}'],
                           capture_output=True, text=True, timeout=60)
    line = one_line_error(p, "model.safetensors", needle)
    assert "out of memory" not in line and "cannot allocate" not in line


# ---------------------------------------------------------------------------
# tokenizer and model that disagree; prompts too long, empty, not UTF-8
# ---------------------------------------------------------------------------

def test_tokenizer_ids_beyond_model_vocab(tmp_path):
    """A model of 300 tokens with GPT-2's 50257-token tokenizer: a text whose
    ids exceed the model's vocabulary is refused, naming the id."""
    d = tmp_path / "small"
    d.mkdir()
    shape = dict(vocab_size=300, n_embd=8, n_layer=1, n_head=2, n_positions=16)
    tensors = [(n, "F32", a.shape, gen_fixtures.encode(a, "F32"))
               for n, a in gen_fixtures.make_weights(shape, dict(seed=9))]
    gen_fixtures.write_safetensors(d / "model.safetensors", tensors)
    (d / "config.json").write_text(json.dumps(gen_fixtures.make_config(shape, {})))
    for f in ("vocab.json", "merges.txt"):
        shutil.copyfile(ROOT / "tests" / "data" / f, d / f)
    assert run_cli("logits", "--model", d, "--text", "!").returncode == 0  # id 0
    one_line_error(run_cli("logits", "--model", d, "--text", "Hello world"), "15496", "[0, 300)")


def test_prompt_longer_than_n_positions():
    text = " ".join(["word"] * 100)  # 100 tokens; the tiny model has 64 positions
    one_line_error(run_cli("logits", "--model", fixture_dir("tiny"), "--text", text),
                   "100 tokens", "64 positions", "n_positions")


@pytest.mark.parametrize("n", [62, 1000, 2**31])
def test_max_new_tokens_beyond_the_context(n):
    """3 prompt tokens + N new ones must fit in the 64 positions: refused
    before anything runs (no partial output)."""
    p = run_cli("generate", "--model", fixture_dir("tiny"), "--ids", IDS, "--max-new-tokens", n)
    line = one_line_error(p, "--max-new-tokens" if n >= 2**31 else "64", status=2 if n >= 2**31 else 1)
    print(line)


@pytest.mark.parametrize("args,needle", [
    (["--text", ""], "--text is empty"),
    (["--ids", ""], "--ids"),
    (["--ids", ","], "--ids"),
    ([], "exactly one of TEXT/--text or --ids"),
])
def test_empty_prompt(args, needle):
    one_line_error(run_cli("logits", "--model", fixture_dir("tiny"), *args), needle)


@pytest.mark.parametrize("text", [b"ab\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"caf\xc3"])
def test_invalid_utf8_prompt(text):
    p = subprocess.run([BIN, b"logits", b"--model", bytes(fixture_dir("tiny")), b"--text", text],
                       capture_output=True, timeout=60)
    one_line_error(p, "UTF-8")


# ---------------------------------------------------------------------------
# outputs that cannot be written, or fill the disk: an error line, exit 1, and
# no file half-written (a temporary file is renamed into place only when it is
# complete; an old file at the path stays as it was)
# ---------------------------------------------------------------------------

def test_npy_path_is_a_directory(tmp_path):
    one_line_error(run_cli("logits", "--model", fixture_dir("tiny"), "--ids", IDS, "--npy", tmp_path),
                   str(tmp_path), "Is a directory")
    assert list(tmp_path.iterdir()) == []


def test_npy_path_under_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    one_line_error(run_cli("logits", "--model", fixture_dir("tiny"), "--ids", IDS, "--npy", f / "x.npy"),
                   "x.npy", "Not a directory")
    assert f.read_text() == "x"


def test_npy_read_only_folder():
    base, d = unwritable_folder()
    try:
        model = base / "model"  # readable by nobody whatever the checkout's permissions
        shutil.copytree(fixture_dir("tiny"), model)
        for f in [model, *model.iterdir()]:
            f.chmod(0o755 if f.is_dir() else 0o644)
        p = subprocess.run([*unprivileged_cli(base), "logits", "--model", str(model), "--ids", IDS,
                            "--npy", str(d / "x.npy")], capture_output=True, text=True, timeout=60)
        one_line_error(p, "x.npy", "Permission denied")
        assert list(d.iterdir()) == []
    finally:
        d.chmod(0o700)
        shutil.rmtree(base)


# (these use links and device nodes of their own in tmp_path, never /dev's
# entries directly: a regression would rename over them, not over /dev/full)

def test_npy_to_a_full_device(tmp_path):
    """A device (here /dev/full through a link) is written in place, never
    renamed over, and the write fails with ENOSPC."""
    (tmp_path / "full").symlink_to("/dev/full")
    one_line_error(run_cli("logits", "--model", fixture_dir("tiny"), "--ids", IDS, "--npy", tmp_path / "full"),
                   "full", "No space left on device")
    assert (tmp_path / "full").is_symlink() and os.listdir(tmp_path) == ["full"]


def test_npy_to_a_device_node(tmp_path):
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    except PermissionError:
        pytest.skip("cannot make a device node here")
    assert run_cli("logits", "--model", fixture_dir("tiny"), "--ids", IDS, "--npy", node).returncode == 0
    assert stat.S_ISCHR(os.lstat(node).st_mode) and os.listdir(tmp_path) == ["null"]


def test_npy_to_stdout_device(tmp_path):
    """--npy /dev/stdout (here a link of our own to /proc/self/fd/1) streams
    the array down the pipe; the link is written through, never replaced."""
    (tmp_path / "stdout").symlink_to("/proc/self/fd/1")
    p = subprocess.run([str(BIN), "logits", "--model", str(fixture_dir("tiny")), "--ids", IDS,
                        "--npy", str(tmp_path / "stdout")], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "stdout").is_symlink() and os.listdir(tmp_path) == ["stdout"]
    raw = p.stdout
    hlen = struct.unpack("<H", raw[8:10])[0]
    n = 10 + hlen + 3 * 50257 * 4
    assert raw.startswith(b"\x93NUMPY") and raw[n:].startswith(b"logits shape [3, 50257]")


def test_npy_through_a_symlink(tmp_path):
    """A symlinked output path: the file it names is replaced atomically and
    the link stays a link."""
    (tmp_path / "real.npy").write_bytes(b"old")
    (tmp_path / "link.npy").symlink_to("real.npy")
    p = run_cli("logits", "--model", fixture_dir("tiny"), "--ids", IDS, "--npy", tmp_path / "link.npy")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "link.npy").is_symlink()
    assert np.load(tmp_path / "real.npy").shape == (3, 50257)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["link.npy", "real.npy"]


@pytest.mark.parametrize("cmd", [["logits", "--ids", IDS], ["logits", "--ids", IDS, "--json"],
                                 ["tokenize", "hello world"], ["detokenize", "--ids", "15496,995"],
                                 ["next", "--ids", IDS], ["rank", "--ids", IDS, "--token-id", "5"],
                                 ["sample", "--ids", IDS], ["score", "--ids", IDS],
                                 ["generate", "--ids", IDS, "--max-new-tokens", "3"], ["arch"]])
def test_stdout_on_a_full_disk(cmd):
    with open("/dev/full", "w") as full:
        p = subprocess.run([str(BIN), cmd[0], "--model", str(fixture_dir("tiny")), *cmd[1:]],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    one_line_error(p, "cannot write")


def test_npy_file_size_limit(tmp_path):
    """A write that fails half way (RLIMIT_FSIZE: EFBIG standing in for a full
    disk): the old file is kept and no temporary file is left."""
    out = tmp_path / "x.npy"
    out.write_bytes(b"old")
    p = subprocess.run(["bash", "-c", f'trap "" XFSZ; ulimit -f 100; exec "{BIN}" logits --model '
                        f'"{fixture_dir("tiny")}" --ids {IDS} --npy "{out}"'],
                       capture_output=True, text=True, timeout=60)
    one_line_error(p, "x.npy", "File too large")
    assert out.read_bytes() == b"old" and [f.name for f in tmp_path.iterdir()] == ["x.npy"]


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 256 KiB tmpfs (a real ENOSPC), when this machine lets us mount one."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_npy_disk_full_tmpfs(tiny_tmpfs):
    out = tiny_tmpfs / "x.npy"  # 3 x 50257 floats = 603 KB > 256 KiB
    out.write_bytes(b"old")
    one_line_error(run_cli("logits", "--model", fixture_dir("tiny"), "--ids", IDS, "--npy", out),
                   "x.npy", "No space left on device")
    assert out.read_bytes() == b"old" and [f.name for f in tiny_tmpfs.iterdir()] == ["x.npy"]
    # and a run that fits still works there afterwards
    assert run_cli("logits", "--model", fixture_dir("tiny"), "--ids", "464",
                   "--npy", tiny_tmpfs / "y.npy").returncode == 0


# ---------------------------------------------------------------------------
# the library's contract: it never prints and never exits
# ---------------------------------------------------------------------------

FORBIDDEN = {"printf", "vprintf", "puts", "putchar", "perror", "exit", "_exit", "_Exit", "abort",
             "stdout", "stderr", "__assert_fail", "quick_exit", "__printf_chk", "__fprintf_chk",
             "__vfprintf_chk"}


def test_library_never_prints_or_exits():
    """No object of liblogitscope.a refers to stdout/stderr or to a function
    that prints to them or ends the process (C unit tests in
    tests/unit/test_contract.c check the failure paths themselves)."""
    lib = BUILD / "liblogitscope.a"
    p = subprocess.run(["nm", "-u", "-A", str(lib)], capture_output=True, text=True, check=True)
    bad = [line for line in p.stdout.splitlines() if line.split()[-1].split("@")[0] in FORBIDDEN]
    assert bad == [], "\n".join(bad)
    # fprintf/fputs/fwrite are allowed only on files the library opened itself
    assert "lsc_" in subprocess.run(["nm", str(lib)], capture_output=True, text=True).stdout


# ---------------------------------------------------------------------------
# no leaks in normal runs, checked with valgrind (LeakSanitizer does the same
# for the whole suite under `make test-sanitize`)
# ---------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.skipif("san" in BUILD.name, reason="sanitized binaries do not run under valgrind")
@pytest.mark.parametrize("cmd", [
    ["logits", "--ids", IDS, "--json"],
    ["logits", "--ids", "464,50257"],  # an error path
    ["tokenize", "Hello, my dog is cute"],
])
def test_valgrind_no_leaks(cmd, tmp_path):
    p = subprocess.run(["valgrind", "-q", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                        "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                        str(BIN), cmd[0], "--model", str(fixture_dir("tiny")), *cmd[1:]],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode in (0, 1), p.stderr[-3000:]
    assert "definitely lost" not in p.stderr and "Invalid read" not in p.stderr, p.stderr[-3000:]
