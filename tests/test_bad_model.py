"""Bad model folders, checkpoints, configs and inputs: each gets a one-line
error naming the file or value at fault and a non-zero exit, never a crash, a
hang or a half-written output file."""
import json
import shutil
import struct

import pytest

from conftest import run_cli
from fixtures import fixture_dir


def model_copy(tmp_path):
    """A writable copy of the tiny fixture (config.json + model.safetensors)."""
    d = tmp_path / "m"
    d.mkdir()
    src = fixture_dir("tiny")
    for f in ("config.json", "model.safetensors"):
        shutil.copyfile(src / f, d / f)
    return d


def read_st(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path, header, data, pad=True):
    h = json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


def expect_error(d, *needles, ids="464,2068,7586"):
    p = run_cli("logits", "--model", d, "--ids", ids)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("logitscope: error: "), p.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    print(lines[0])
    return lines[0]


def test_missing_folder(tmp_path):
    expect_error(tmp_path / "nope", "nope")


def test_folder_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    expect_error(f, "file")


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_missing_file(tmp_path, missing):
    d = model_copy(tmp_path)
    (d / missing).unlink()
    expect_error(d, missing)


def test_pytorch_bin_only(tmp_path):
    d = model_copy(tmp_path)
    (d / "model.safetensors").rename(d / "pytorch_model.bin")
    expect_error(d, "pytorch_model.bin")


@pytest.mark.parametrize("keep", [0, 5, 8, 100, 4000])
def test_truncated_header(tmp_path, keep):
    d = model_copy(tmp_path)
    st = d / "model.safetensors"
    st.write_bytes(st.read_bytes()[:keep])
    expect_error(d, "model.safetensors")


def test_truncated_data(tmp_path):
    d = model_copy(tmp_path)
    st = d / "model.safetensors"
    raw = st.read_bytes()
    st.write_bytes(raw[:len(raw) // 2])
    expect_error(d, "model.safetensors", "data section", "truncated")


def test_header_length_beyond_file(tmp_path):
    d = model_copy(tmp_path)
    st = d / "model.safetensors"
    raw = st.read_bytes()
    st.write_bytes(struct.pack("<Q", len(raw)) + raw[8:])
    expect_error(d, "model.safetensors", "beyond the end")


def test_header_length_over_limit(tmp_path):
    d = model_copy(tmp_path)
    st = d / "model.safetensors"
    raw = st.read_bytes()
    st.write_bytes(struct.pack("<Q", 2**63 + 5) + raw[8:])
    expect_error(d, "model.safetensors", "limit")


@pytest.mark.parametrize("junk", [b"{not json", b"[1, 2, 3]", b'{"a": 1}xx', b"\x00" * 16])
def test_header_not_json_object(tmp_path, junk):
    d = model_copy(tmp_path)
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(junk)) + junk)
    expect_error(d, "model.safetensors", "header")


def mutate(tmp_path, fn, data_fn=None):
    d = model_copy(tmp_path)
    st = d / "model.safetensors"
    h, data = read_st(st)
    fn(h)
    write_st(st, h, data_fn(data) if data_fn else data)
    return d


def test_overlapping_offsets(tmp_path):
    def f(h):
        a, b = h["wte.weight"]["data_offsets"], h["ln_f.bias"]["data_offsets"]
        h["ln_f.bias"]["data_offsets"] = [a[0] + 4, a[0] + 4 + (b[1] - b[0])]
    expect_error(mutate(tmp_path, f), "model.safetensors", "overlap")


def test_unknown_dtype(tmp_path):
    def f(h):
        h["ln_f.bias"]["dtype"] = "F33"
    expect_error(mutate(tmp_path, f), "model.safetensors", "ln_f.bias", "unknown dtype", "F33")


def test_integer_dtype_refused(tmp_path):
    def f(h):
        h["ln_f.bias"]["dtype"] = "I32"
    expect_error(mutate(tmp_path, f), "ln_f.bias", "I32")


def test_shape_vs_bytes(tmp_path):
    def f(h):
        h["ln_f.bias"]["shape"] = [33]
    expect_error(mutate(tmp_path, f), "ln_f.bias", "bytes")


@pytest.mark.parametrize("shape", [[-1], [1.5], ["32"], [2**62, 2**62], [2**40, 2**40], [1] * 9])
def test_bad_shape_values(tmp_path, shape):
    def f(h):
        h["ln_f.bias"]["shape"] = shape
    expect_error(mutate(tmp_path, f), "ln_f.bias")


def test_offsets_outside_data(tmp_path):
    def f(h):
        b, e = h["ln_f.bias"]["data_offsets"]
        h["ln_f.bias"]["data_offsets"] = [b + 10**9, e + 10**9]
    expect_error(mutate(tmp_path, f), "ln_f.bias", "outside")


def test_metadata_not_strings(tmp_path):
    def f(h):
        h["__metadata__"] = {"format": 3}
    expect_error(mutate(tmp_path, f), "__metadata__")


def test_tensor_missing(tmp_path):
    def f(h):
        del h["h.1.mlp.c_fc.bias"]
    expect_error(mutate(tmp_path, f), "h.1.mlp.c_fc.bias", "missing")


def test_untied_without_lm_head(tmp_path):
    d = model_copy(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["tie_word_embeddings"] = False
    (d / "config.json").write_text(json.dumps(cfg))
    expect_error(d, "lm_head.weight", "missing")


def edit_config(tmp_path, **kv):
    d = model_copy(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    for k, v in kv.items():
        if v is ...:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_config_contradicts_tensors(tmp_path):
    d = edit_config(tmp_path, n_embd=48, n_head=4)
    expect_error(d, "wte.weight", "[50257, 32]", "[50257, 48]")


def test_config_more_layers_than_tensors(tmp_path):
    expect_error(edit_config(tmp_path, n_layer=3), "h.2.", "missing")


def test_config_n_inner_contradicts(tmp_path):
    expect_error(edit_config(tmp_path, n_inner=64), "h.0.mlp.c_fc.weight", "[32, 64]")


@pytest.mark.parametrize("key,value,needle", [
    ("n_layer", "2", "must be an integer"),
    ("n_layer", 2.5, "must be an integer"),
    ("n_layer", 10**9, "outside"),
    ("n_layer", 0, "outside"),
    ("n_embd", -32, "outside"),
    ("n_head", 5, "not a multiple"),
    ("vocab_size", None, "must be an integer"),
    ("n_positions", 10**12, "outside"),
    ("n_ctx", 65, "contradicts"),
    ("layer_norm_epsilon", "tiny", "layer_norm_epsilon"),
    ("scale_attn_weights", 1, "true or false"),
    ("tie_word_embeddings", "yes", "true or false"),
    ("activation_function", "swiglu", "not supported"),
    ("activation_function", 7, "must be a string"),
    ("model_type", "llama", "only \"gpt2\""),
    ("add_cross_attention", True, "add_cross_attention"),
])
def test_config_bad_values(tmp_path, key, value, needle):
    d = edit_config(tmp_path, **{key: value})
    line = expect_error(d, "config.json", needle)
    if key not in ("n_head",):
        assert key in line


@pytest.mark.parametrize("text", ["", "{", "[]", "{\"n_layer\": 2,}"])
def test_config_not_json(tmp_path, text):
    d = model_copy(tmp_path)
    (d / "config.json").write_text(text)
    expect_error(d, "config.json")


@pytest.mark.parametrize("ids,needle", [
    ("464,50257", "50257"),
    ("-1", "-1"),
    (",".join(["1"] * 65), "64"),
    ("1,,2", "--ids"),
    ("abc", "--ids"),
])
def test_bad_ids(ids, needle):
    expect_error(fixture_dir("tiny"), needle, ids=ids)


def test_npy_unwritable_leaves_nothing(tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "x.npy"
    p = run_cli("logits", "--model", fixture_dir("tiny"), "--ids", "1,2", "--npy", out)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "x.npy" in p.stderr
    assert not out.parent.exists()


def test_npy_failed_run_leaves_old_file(tmp_path):
    out = tmp_path / "x.npy"
    out.write_bytes(b"old")
    p = run_cli("logits", "--model", fixture_dir("tiny"), "--ids", "1,50257", "--npy", out)
    assert p.returncode == 1
    assert out.read_bytes() == b"old"
    assert [f.name for f in tmp_path.iterdir()] == ["x.npy"]
