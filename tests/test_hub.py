"""Model names through the Hugging Face cache: downloads from a local fake Hub
(tests/hub_server.py), the cache layout shared with huggingface_hub and
transformers, and bad input. Each test gets its own empty cache folder."""
import hashlib
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from conftest import BIN, require_oracle, run_cli
from fixtures import fixture_dir
from hub_server import FakeHub, git_sha1

REPO = "org/tiny-gpt2"


def fixture_files(name="tiny"):
    """The files of a generated test checkpoint (tests/gen_fixtures.py)."""
    d = fixture_dir(name)
    return {f.name: f.read_bytes() for f in sorted(d.iterdir()) if f.name != "STAMP"}


@pytest.fixture(scope="module")
def hub():
    h = FakeHub()
    h.files = fixture_files("tiny")
    h.files["generation_config.json"] = b'{"bos_token_id": 50256, "eos_token_id": 50256}'
    old_config = dict(json.loads(h.files["config.json"]), note="an older commit")
    h.old_files = dict(h.files, **{"config.json": json.dumps(old_config).encode()})
    h.old_commit = h.add_commit(REPO, h.old_files, ref="v1")
    h.commit = h.add_commit(REPO, h.files)
    h.private_commit = h.add_commit("org/private", h.files, token="hf_secret")
    h.add_commit("org/bin-only", {"config.json": h.files["config.json"], "pytorch_model.bin": b"x" * 100})
    h.add_commit("org/no-weights", {"config.json": h.files["config.json"]})
    h.add_commit("gpt2", h.files)  # the default model
    yield h
    h.close()


@pytest.fixture
def cache(hub):
    """An empty cache folder (world-readable, for the read-only test) and a
    clean server log."""
    hub.reset()
    d = pathlib.Path(tempfile.mkdtemp(prefix="lsc-hub-"))
    d.chmod(0o755)
    yield d
    for p in [d, *d.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(d)


def env_for(hub, cache, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HUB_CACHE=str(cache),
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def download(hub, cache, *args, **extra):
    return run_cli("download", *args, env=env_for(hub, cache, **extra))


def storage(cache, repo=REPO):
    return cache / ("models--" + repo.replace("/", "--"))


def listing(cache):
    """Every path under the cache, relative, with link targets: for messages."""
    return sorted(f"{p.relative_to(cache)}" + (f" -> {os.readlink(p)}" if p.is_symlink() else "")
                  for p in cache.rglob("*"))


def one_line_error(p, *words):
    assert p.returncode != 0, p.stdout
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("logitscope: error: "), p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


def check_snapshot(hub, cache, commit, files, repo=REPO):
    """The layout huggingface_hub writes: relative links into blobs/ named by
    the ETag (sha256 for LFS files, git sha1 for the others)."""
    snap = storage(cache, repo) / "snapshots" / commit
    for name, data in files.items():
        link = snap / name
        assert link.is_symlink(), listing(cache)
        etag = hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else git_sha1(data)
        assert os.readlink(link) == f"../../blobs/{etag}"
        assert link.read_bytes() == data
    assert not list(storage(cache, repo).rglob("*.incomplete")), listing(cache)


# -- downloads ---------------------------------------------------------------

def test_clean_download(hub, cache):
    p = download(hub, cache, REPO)
    assert p.returncode == 0, p.stderr
    st = storage(cache)
    assert p.stdout.strip() == str(st / "snapshots" / hub.commit)
    assert p.stderr == ""  # not a terminal: no progress bar
    check_snapshot(hub, cache, hub.commit, hub.files)
    assert (st / "refs" / "main").read_text() == hub.commit
    assert (st / ".no_exist" / hub.commit / "tokenizer.json").is_file()
    assert (cache / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    # the weights came from the CDN without the token and without a Range
    cdn = hub.requests("cdn", "GET")
    assert len(cdn) == 1 and "Range" not in cdn[0][3] and "Authorization" not in cdn[0][3]
    # a second run fetches nothing: one HEAD to learn the commit, no GET
    hub.reset()
    p = download(hub, cache, REPO)
    assert p.returncode == 0, p.stderr
    assert [r[1] for r in hub.requests()] == ["HEAD", "HEAD"], hub.requests()  # + same-host redirect
    print("clean download left:", *listing(cache), sep="\n  ")


def test_revision_tag_and_commit(hub, cache):
    p = download(hub, cache, REPO, "--revision", "v1")
    assert p.returncode == 0, p.stderr
    assert (storage(cache) / "refs" / "v1").read_text() == hub.old_commit
    check_snapshot(hub, cache, hub.old_commit, hub.old_files)
    # the weights are the same blob: not fetched again for main
    hub.reset()
    p = download(hub, cache, REPO)
    assert p.returncode == 0, p.stderr
    assert not hub.requests("cdn"), hub.requests()
    # a full commit id needs no ref
    p = download(hub, cache, REPO, "--revision", hub.old_commit)
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in (storage(cache) / "refs").iterdir()) == ["main", "v1"]


def test_interrupted_download_resumes_in_the_same_run(hub, cache):
    hub.cut["model.safetensors"] = 1
    p = download(hub, cache, REPO)
    assert p.returncode == 0, p.stderr
    gets = hub.requests("cdn", "GET")
    half = len(hub.files["model.safetensors"]) // 2
    assert [g[3].get("Range") for g in gets] == [None, f"bytes={half}-"], gets
    check_snapshot(hub, cache, hub.commit, hub.files)


def test_interrupted_download_resumes_in_the_next_run(hub, cache):
    hub.cut["model.safetensors"] = 100  # every GET cut: the run gives up
    p = download(hub, cache, REPO)
    one_line_error(p, "model.safetensors", "download failed")
    st = storage(cache)
    sha = hashlib.sha256(hub.files["model.safetensors"]).hexdigest()
    part = st / "blobs" / f"{sha}.incomplete"
    have = part.stat().st_size
    assert 0 < have < len(hub.files["model.safetensors"])
    assert not (st / "snapshots").exists() and not (st / "refs").exists(), listing(cache)
    assert not (st / "blobs" / sha).exists()
    print("interrupted run left:", *listing(cache), sep="\n  ")
    hub.reset()
    p = download(hub, cache, REPO)
    assert p.returncode == 0, p.stderr
    gets = hub.requests("cdn", "GET")
    assert [g[3].get("Range") for g in gets] == [f"bytes={have}-"], gets
    check_snapshot(hub, cache, hub.commit, hub.files)


def test_hash_mismatch_is_rejected_and_nothing_kept(hub, cache):
    hub.corrupt.add("model.safetensors")
    p = download(hub, cache, REPO)
    one_line_error(p, "model.safetensors", "sha256", "discarded")
    assert listing(cache) == [], listing(cache)  # not even empty folders


def test_missing_weights(hub, cache):
    p = download(hub, cache, "org/no-weights")
    one_line_error(p, "has no model.safetensors")
    p = download(hub, cache, "org/bin-only")
    one_line_error(p, "only pytorch_model.bin", "save_pretrained")
    assert listing(cache) == []


def test_missing_repo_and_revision(hub, cache):
    p = download(hub, cache, "org/nope")
    one_line_error(p, "org/nope", "HTTP 401")
    p = download(hub, cache, REPO, "--revision", "nope")
    one_line_error(p, "revision 'nope' does not exist")
    assert listing(cache) == []


def test_private_repo_needs_the_token(hub, cache):
    p = download(hub, cache, "org/private")
    one_line_error(p, "HTTP 401", "HF_TOKEN is not set")
    p = download(hub, cache, "org/private", HF_TOKEN="hf_wrong")
    one_line_error(p, "HTTP 401", "cannot read it")
    assert listing(cache) == []
    hub.reset()
    p = download(hub, cache, "org/private", HF_TOKEN="hf_secret")
    assert p.returncode == 0, p.stderr
    check_snapshot(hub, cache, hub.private_commit, hub.files, repo="org/private")
    assert all(r[3].get("Authorization") == "Bearer hf_secret" for r in hub.requests("hub"))
    assert all("Authorization" not in r[3] for r in hub.requests("cdn"))  # never off the Hub


def test_offline(hub, cache):
    p = download(hub, cache, REPO, HF_HUB_OFFLINE="1")
    one_line_error(p, "offline", f"logitscope download {REPO}")
    p = download(hub, cache, REPO, "--revision", "v1", HF_HUB_OFFLINE="1")
    one_line_error(p, f"logitscope download {REPO} --revision v1")
    assert not hub.requests() and listing(cache) == []
    assert download(hub, cache, REPO).returncode == 0
    hub.reset()
    p = download(hub, cache, REPO, HF_HUB_OFFLINE="1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith(hub.commit)
    assert not hub.requests()


def test_unreachable_endpoint(hub, cache):
    p = download(hub, cache, REPO, HF_ENDPOINT="http://127.0.0.1:9")
    one_line_error(p, "cannot reach")
    assert listing(cache) == []


# -- sharing the cache with huggingface_hub and transformers -------------------

def python(code, env):
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_cache_written_by_huggingface_hub_is_read(hub, cache):
    env = env_for(hub, cache)
    python(f"""
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
for f in {sorted(hub.files)!r} + ["tokenizer.json"]:
    try: hf_hub_download({REPO!r}, f)
    except EntryNotFoundError: pass
""", env)
    written = listing(cache)
    hub.reset()
    p = download(hub, cache, REPO, HF_HUB_OFFLINE="1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(storage(cache) / "snapshots" / hub.commit)
    p = download(hub, cache, REPO)  # online: learns the commit, fetches nothing
    assert p.returncode == 0, p.stderr
    assert not hub.requests("cdn") and not hub.requests(method="GET")
    check_snapshot(hub, cache, hub.commit, hub.files)
    assert [x for x in listing(cache) if ".locks" not in x] == [x for x in written if ".locks" not in x]


def test_cache_written_by_logitscope_is_read_by_huggingface_hub(hub, cache):
    assert download(hub, cache, REPO).returncode == 0
    snap = storage(cache) / "snapshots" / hub.commit
    out = python(f"""
import json
from huggingface_hub import hf_hub_download, try_to_load_from_cache, scan_cache_dir
from huggingface_hub.file_download import _CACHED_NO_EXIST
paths = {{f: hf_hub_download({REPO!r}, f) for f in {sorted(hub.files)!r}}}
assert try_to_load_from_cache({REPO!r}, "tokenizer.json") is _CACHED_NO_EXIST
info = scan_cache_dir()
assert not info.warnings, info.warnings
(repo,) = info.repos
print(json.dumps({{"paths": paths, "refs": sorted(repo.refs),
                   "size": repo.size_on_disk, "n_files": repo.nb_files}}))
""", env_for(hub, cache, HF_HUB_OFFLINE="1"))
    got = json.loads(out)
    assert got["paths"] == {f: str(snap / f) for f in hub.files}
    assert got["refs"] == ["main"] and got["n_files"] == len(hub.files)
    assert got["size"] == sum(len(d) for d in hub.files.values())


def our_logits(hub, cache, ids, *model, **extra):
    out = cache.parent / f"{cache.name}.npy"
    p = run_cli("logits", *model, "--ids", ",".join(map(str, ids)), "--npy", out,
                env=env_for(hub, cache, **extra))
    assert p.returncode == 0, p.stderr
    a = np.load(out)
    out.unlink()
    return a


def test_models_by_name_run(hub, cache):
    """--model REPO downloads on first use, then runs from the cache offline;
    without --model the model is gpt2; the logits equal the folder's."""
    ids = [464, 2068, 7586, 21831]
    want = folder_logits(ids)
    got = our_logits(hub, cache, ids, "--model", REPO)
    assert (storage(cache) / "refs" / "main").read_text() == hub.commit
    assert np.array_equal(got, want)
    hub.reset()
    assert np.array_equal(our_logits(hub, cache, ids, "--model", REPO, HF_HUB_OFFLINE="1"), want)
    assert np.array_equal(our_logits(hub, cache, ids, "--model", REPO), want)
    assert not hub.requests()  # complete in the cache: no network
    assert np.array_equal(our_logits(hub, cache, ids), want)  # default: gpt2
    assert (storage(cache, "gpt2") / "refs" / "main").is_file()
    p = run_cli("logits", "--model", REPO, "--revision", "v1", "--text", "Hello world",
                env=env_for(hub, cache))
    assert p.returncode == 0, p.stderr
    assert (storage(cache) / "refs" / "v1").read_text() == hub.old_commit


def folder_logits(ids):
    """The logits of the tiny fixture's folder for `ids`."""
    with tempfile.TemporaryDirectory() as d:
        out = pathlib.Path(d) / "want.npy"
        run_cli("logits", "--model", fixture_dir("tiny"), "--ids", ",".join(map(str, ids)),
                "--npy", out, check=True)
        return np.load(out)


def test_cache_written_by_logitscope_is_read_by_transformers(hub, cache):
    require_oracle()
    assert download(hub, cache, REPO).returncode == 0
    ids = [464, 2068, 7586, 21831, 18045, 625, 262]
    ours = our_logits(hub, cache, ids, "--model", REPO, HF_HUB_OFFLINE="1")
    np.save(cache.parent / f"{cache.name}-ours.npy", ours)
    out = python(f"""
import numpy as np, torch
from transformers import GPT2LMHeadModel, GPT2TokenizerFast
m, info = GPT2LMHeadModel.from_pretrained({REPO!r}, local_files_only=True, output_loading_info=True,
                                          dtype=torch.float32)
t = GPT2TokenizerFast.from_pretrained({REPO!r}, local_files_only=True)
with torch.no_grad():
    ref = m(torch.tensor([{ids!r}])).logits[0].numpy()
ours = np.load({str(cache.parent / f"{cache.name}-ours.npy")!r})
print(len(info["missing_keys"]), t.encode("Hello world"), float(np.abs(ours - ref).max()))
""", env_for(hub, cache, HF_HUB_OFFLINE="1"))
    (cache.parent / f"{cache.name}-ours.npy").unlink()
    missing, diff = out.split()[0], float(out.split()[-1])
    print(f"transformers from the logitscope-written cache: max |ours - transformers| = {diff:.3g} (tol 1e-4)")
    assert missing == "0" and "[15496, 995]" in out, out
    assert diff <= 1e-4


# -- bad input -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["bad name", "org/na$me", "-lead", "trail.", "x--y", "x..y",
                                  "foo.git", "a" * 97, "café", "a/b/c", "org/"])
def test_bad_repo_ids(hub, cache, name):
    p = download(hub, cache, name)
    assert p.returncode != 0 and p.stderr.count("\n") == 1, p.stderr
    assert not hub.requests() and listing(cache) == []


@pytest.mark.parametrize("rev", ["../../etc", "a..b", "bad:rev", "with space", "/main", "x@{1}"])
def test_bad_revisions(hub, cache, rev):
    p = download(hub, cache, REPO, "--revision", rev)
    one_line_error(p, "revision")
    assert not hub.requests() and listing(cache) == []


def test_download_usage_errors(hub, cache, tmp_path):
    one_line_error(download(hub, cache), "exactly one repo id")
    one_line_error(download(hub, cache, REPO, "--bogus"), "unknown option")
    one_line_error(download(hub, cache, str(tmp_path)), "local folder")


def as_other_user(where):
    """Command that makes the cache read-only for the CLI: as root, run it as
    nobody (root writes anywhere), from a copy in `where` that nobody can
    reach whatever the checkout's permissions; otherwise the CLI itself."""
    if os.geteuid() != 0:
        return [str(BIN)]
    exe = where / "logitscope"
    shutil.copy(BIN, exe)
    exe.chmod(0o755)
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(exe)]


def make_read_only(cache):
    for p in [cache, *cache.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o555)


def test_read_only_cache(hub, cache):
    bindir = pathlib.Path(tempfile.mkdtemp(prefix="lsc-bin-"))
    bindir.chmod(0o755)
    cli = as_other_user(bindir)
    make_read_only(cache)
    env = env_for(hub, cache)
    p = subprocess.run([*cli, "download", REPO], env=env,
                       capture_output=True, text=True, timeout=120)
    one_line_error(p, "cannot create the cache folder", "ermission denied")
    assert listing(cache) == []
    # a complete cache is still usable read-only, online and offline
    cache.chmod(0o755)
    assert download(hub, cache, REPO).returncode == 0
    make_read_only(cache)
    before = listing(cache)
    for extra in ({}, {"HF_HUB_OFFLINE": "1"}):
        p = subprocess.run([*cli, "download", REPO], env=dict(env, **extra),
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
    assert listing(cache) == before
    shutil.rmtree(bindir)


def test_full_disk(hub, cache):
    """A write that fails (file size limit standing in for a full disk):
    clear error, no partial file left."""
    env = env_for(hub, cache)
    p = subprocess.run(["bash", "-c", f'trap "" XFSZ; ulimit -f 200; exec "{BIN}" download {REPO}'],
                       env=env, capture_output=True, text=True, timeout=120)
    one_line_error(p, "cannot write", "File too large")
    st = storage(cache)
    assert not list(st.rglob("*.incomplete")) and not (st / "snapshots").exists(), listing(cache)
    print("full-disk run left:", *listing(cache), sep="\n  ")


def test_dangling_snapshot_link(hub, cache):
    assert download(hub, cache, REPO).returncode == 0
    sha = hashlib.sha256(hub.files["model.safetensors"]).hexdigest()
    (storage(cache) / "blobs" / sha).unlink()
    p = download(hub, cache, REPO, HF_HUB_OFFLINE="1")
    one_line_error(p, "dangling link", f"logitscope download {REPO}")
    hub.reset()
    p = download(hub, cache, REPO)  # online: repaired
    assert p.returncode == 0, p.stderr
    assert len(hub.requests("cdn", "GET")) == 1
    check_snapshot(hub, cache, hub.commit, hub.files)


def test_concurrent_downloads(hub, cache):
    """Two processes fetching the same repo at once: both succeed, one copy
    of each blob, no leftovers (the .incomplete file is locked)."""
    env = env_for(hub, cache)
    procs = [subprocess.Popen([str(BIN), "download", REPO], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[0][0] == outs[1][0]
    check_snapshot(hub, cache, hub.commit, hub.files)
    blobs = sorted(x.name for x in (storage(cache) / "blobs").iterdir())
    assert len(blobs) == len(hub.files), blobs


def test_progress_bar_on_a_terminal(hub, cache):
    """With stderr on a terminal, download draws one finished line per file
    (name, bar, 100%, sizes, rate); the snapshot path still goes to stdout."""
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen([str(BIN), "download", REPO], env=env_for(hub, cache),
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    out = p.communicate(timeout=60)[0].decode()
    assert p.returncode == 0 and out.strip().endswith(hub.commit)
    finished = [line.rstrip("\r").split("\r")[-1] for line in err.decode().split("\n") if "100%" in line]
    assert len(finished) == len(hub.files), err
    mb = f"{len(hub.files['model.safetensors']) / 1e6:.1f} MB"
    assert any(line.startswith("model.safetensors") and f"{mb} / {mb}" in line and "/s" in line
               for line in finished), finished


def test_unreachable_hub_falls_back_to_a_usable_cache(hub, cache):
    """A cache with the required files but not every optional one known (as
    transformers may leave it): online with the Hub unreachable, the cached
    snapshot is used, as huggingface_hub does."""
    assert download(hub, cache, REPO).returncode == 0
    shutil.rmtree(storage(cache) / ".no_exist")
    ids = [464, 2068]
    want = folder_logits(ids)
    got = our_logits(hub, cache, ids, "--model", REPO, HF_ENDPOINT="http://127.0.0.1:9")
    assert np.array_equal(got, want)
    p = download(hub, cache, REPO, HF_ENDPOINT="http://127.0.0.1:9")  # download itself fails
    one_line_error(p, "cannot reach")


@pytest.mark.parametrize("args", [
    ["logits", "--ids", "464,2068"], ["next", "--ids", "464,2068"],
    ["rank", "--ids", "464,2068", "--token-id", "5"], ["sample", "--ids", "464,2068", "-n", "2", "--seed", "1"],
    ["generate", "--ids", "464,2068", "--max-new-tokens", "3"], ["score", "--ids", "464,2068,7586"],
    ["tokenize", "--text", "Hello world"], ["detokenize", "--ids", "15496,995"], ["arch"]],
    ids=lambda a: a[0])
def test_every_command_takes_a_repo_id(hub, cache, args):
    """--model REPO works in every command and gives the folder's output."""
    want = run_cli(*args, "--model", fixture_dir("tiny"), check=True).stdout
    got = run_cli(*args, "--model", REPO, env=env_for(hub, cache))
    assert got.returncode == 0, got.stderr
    snap = str(storage(cache) / "snapshots" / hub.commit)
    assert got.stdout.replace(snap, str(fixture_dir("tiny"))) == want
