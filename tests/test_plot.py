"""`logitscope plot`: valid files of every format, and the drawing's content.

Content is checked independently of the program's own report:
- SVG: the vocabulary entries are zero-length round-capped strokes (dots)
  where the documented mapping of the data puts them (index -> x,
  logit/probability -> y), panel by panel, so the right row and the right
  softmax are drawn; entries on the same spot (within a quarter point) share
  one dot whose opacity is that of the stack, so the number of dots (the
  drawing's work) is bounded by the area, not by the vocabulary.
- PNG: the axes frame is found in the pixels, the data limits follow the
  documented rule (data range + 5% margins, as matplotlib), and the red
  square's centroid must land where that mapping puts the marked token.
"""
import json
import os
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest
from conftest import run_cli, unprivileged_cli, unwritable_folder

V = 50257
MAX_ID = 31337  # the synthetic row's argmax


def make_logits(path, rows=3, seed=0):
    """Saves GPT-2-like logits [rows, V] (around -100, one clear maximum per row)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, V)) * 2.5 - 100).astype(np.float32)
    x[:, MAX_ID] = x.max(axis=1) + 6
    np.save(path, x)
    return x


@pytest.fixture(scope="module")
def logits_npy(tmp_path_factory):
    p = tmp_path_factory.mktemp("plotdata") / "logits.npy"
    return p, make_logits(p)


def softmax(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


def expected_limits(v):
    """matplotlib's default: the data range plus 5% on each side."""
    lo, hi = float(np.min(v)), float(np.max(v))
    span = hi - lo
    return lo - 0.05 * span, hi + 0.05 * span


def panels_data(kind, row):
    """(x, y) of each panel, as the figure is documented to draw them."""
    idx = np.arange(len(row), dtype=np.float64)
    if kind == "logits":
        return [(idx, row)]
    p, lp = softmax(row), log_softmax(row)
    if kind == "softmax":
        return [(idx, row), (idx, p), (row, p)]
    return [(idx, p), (idx, lp), (p, lp)]


def plot(*args, check=True, env=None):
    p = run_cli("plot", *args, env=env)
    if check:
        assert p.returncode == 0, p.stderr
    return p


# --------------------------------------------------------------------------
# Valid files of each format
# --------------------------------------------------------------------------

SIZES = {"logits": (10, 3), "softmax": (12, 3.3), "logsoftmax": (12, 3.3)}


@pytest.mark.parametrize("kind", ["logits", "softmax", "logsoftmax"])
@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_each_format_is_a_valid_file(tmp_path, logits_npy, kind, fmt):
    out = tmp_path / f"fig.{fmt}"
    p = plot(kind, "--npy", logits_npy[0], "-o", out)
    assert p.stdout.startswith(f"wrote {out}")
    data = out.read_bytes()
    w_in, h_in = SIZES[kind]
    assert len(data) > 20000, len(data)
    if fmt == "png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        w, h = struct.unpack(">II", data[16:24])
        assert (w, h) == (round(w_in * 100), round(h_in * 100))
        assert data[-8:-4] == b"IEND"
    elif fmt == "svg":
        assert data.startswith(b"<?xml")
        head = data[:400].decode()
        # PLplot sizes pages in whole device units (points for SVG and PDF)
        assert f'width="{round(w_in * 72)}pt"' in head and f'height="{round(h_in * 72)}pt"' in head
        assert data.rstrip().endswith(b"</svg>")
    else:
        assert data.startswith(b"%PDF-") and b"%%EOF" in data[-32:]
        box = re.search(rb"/MediaBox \[ ?0 0 ([\d.]+) ([\d.]+) ?\]", data)
        assert box and (float(box[1]), float(box[2])) == (round(w_in * 72), round(h_in * 72))
    assert os.listdir(tmp_path) == [out.name]  # no temporary file left behind


# --------------------------------------------------------------------------
# SVG: the number of dots and where they are
# --------------------------------------------------------------------------

DOT_RE = re.compile(rb'<path style="([^"]*)" d="M ([-\d.]+) ([-\d.]+) L ([-\d.]+) ([-\d.]+) "')


def svg_dots(path):
    """The dots (zero-length round-capped strokes) in document order: [n, 2]."""
    pts = []
    for m in DOT_RE.finditer(path.read_bytes()):
        if m[2] == m[4] and m[3] == m[5] and b"stroke-linecap:round" in m[1]:
            pts.append((float(m[2]), float(m[3])))
    return np.array(pts)


def assert_linear(data, drawn, what, tol=0.05):
    """drawn = a + b * data to within tol points (the drawing's resolution)."""
    A = np.stack([np.ones_like(data), data], axis=1)
    coef, *_ = np.linalg.lstsq(A, drawn, rcond=None)
    resid = np.abs(A @ coef - drawn).max()
    print(f"{what}: max deviation from a linear map {resid:.4f} pt (tolerance {tol})")
    assert abs(coef[1]) > 0 and resid < tol, (what, resid)


DOT_ALPHA = 0.45  # the light theme's dot opacity (matplotlib's alpha)
DOT_GRID = 0.25   # points: entries closer than this share a dot
DOT_MAX_STACK = 8


def svg_dots_with_opacity(path):
    """The dots in document order with their stroke opacity: [n, 3]."""
    out = []
    for m in DOT_RE.finditer(path.read_bytes()):
        if m[2] == m[4] and m[3] == m[5] and b"stroke-linecap:round" in m[1]:
            op = re.search(rb"stroke-opacity:([\d.]+)", m[1])
            out.append((float(m[2]), float(m[3]), float(op[1]) if op else 1.0))
    return np.array(out)


def assert_dots_at(d, x, y, what):
    """The dots d ([n, 3]: x, y, opacity) draw the entries (x, y) under one
    linear map per axis: every dot exactly at an entry, every entry within
    its grid cell of a dot, each dot as opaque as its stack."""
    from scipy.spatial import cKDTree
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)

    def fit(v, dv):  # from the extremes first: exact to within a cell
        b = (dv.max() - dv.min()) / (v.max() - v.min())
        return dv.min() - b * v.min(), b
    (ax, bx), (ay, by) = fit(x, d[:, 0]), fit(y, d[:, 1])
    # y may be drawn downwards: choose the sign that puts the dots on entries
    best = None
    for sy in (1, -1):
        cy = (ay, by) if sy == 1 else (d[:, 1].max() + by * y.min(), -by)
        want = np.stack([ax + bx * x, cy[0] + cy[1] * y], 1)
        dist, idx = cKDTree(want).query(d[:, :2])
        if best is None or dist.max() < best[0].max():
            best = dist, idx
    _, idx = best
    # refit on the pairs: each dot is at one entry (the first of its cell)
    for k, v in ((0, x), (1, y)):
        A = np.stack([np.ones(len(idx)), v[idx]], 1)
        coef, *_ = np.linalg.lstsq(A, d[:, k], rcond=None)
        if k == 0:
            mx = coef[0] + coef[1] * x
        else:
            my = coef[0] + coef[1] * y
    want = np.stack([mx, my], 1)
    near, _ = cKDTree(want).query(d[:, :2])
    far, _ = cKDTree(d[:, :2]).query(want)
    print(f"{what}: {len(d)} dots for {len(x)} entries; dot to nearest entry max "
          f"{near.max():.3f} pt, entry to nearest dot max {far.max():.3f} pt")
    # on an entry to within the drawing's resolution; in a dense stack the
    # fitted map is known only to a fraction of a cell
    assert near.max() < DOT_GRID / 2
    assert far.max() < DOT_GRID * 2 ** 0.5 + 0.05  # a grid cell's diagonal
    # each dot is as opaque as the stack of entries it stands for
    stack = np.log1p(-np.minimum(d[:, 2], 0.9999)) / np.log1p(-DOT_ALPHA)
    assert np.allclose(stack, np.round(stack), atol=0.05)
    stack = np.round(stack).astype(int)
    assert stack.min() >= 1 and stack.max() <= DOT_MAX_STACK
    n = len(want)
    assert stack.sum() <= n and (stack.sum() == n or stack.max() == DOT_MAX_STACK)


@pytest.mark.parametrize("kind", ["logits", "softmax", "logsoftmax"])
def test_svg_draws_every_entry_where_the_data_puts_it(tmp_path, logits_npy, kind):
    path, x = logits_npy
    out = tmp_path / "fig.svg"
    p = plot(kind, "--npy", path, "--pos", "1", "--json", "-o", out)
    report = json.loads(p.stdout)["panels"]
    dots = svg_dots_with_opacity(out)
    panels = panels_data(kind, x[1])
    assert [q["points"] for q in report] == [V] * len(panels)
    assert len(dots) == sum(q["markers"] for q in report)
    start = 0
    for k, (px, py) in enumerate(panels):
        d = dots[start:start + report[k]["markers"]]
        start += report[k]["markers"]
        # the limits are the data range + 5% (as matplotlib), so the mapping is checked too
        assert report[k]["xlim"] == pytest.approx(expected_limits(px), rel=1e-6, abs=1e-12)
        assert report[k]["ylim"] == pytest.approx(expected_limits(py), rel=1e-6, abs=1e-12)
        assert_dots_at(d, px, py, f"{kind} panel {k}")


@pytest.mark.parametrize("kind", ["logits", "softmax", "logsoftmax"])
def test_the_number_of_dots_is_bounded_by_the_width(tmp_path, kind):
    """A flat row puts 50,257 entries on one line: the file holds at most one
    dot per quarter point of the axes' width, not one per entry (this bounds
    the drawing's time without timing anything; bench/plot.py times it)."""
    path = tmp_path / "flat.npy"
    np.save(path, np.full(V, -100, dtype=np.float32))
    out = tmp_path / "fig.svg"
    report = json.loads(plot(kind, "--npy", path, "--no-mark", "--json", "-o", out).stdout)
    for q in report["panels"]:
        left, _, right, _ = q["box"]
        print(f"{kind}: {q['markers']} dots for {q['points']} entries, width {right - left} pt")
        assert q["points"] == V
        assert q["markers"] <= (right - left) / DOT_GRID + 1
    assert len(svg_dots(out)) == sum(q["markers"] for q in report["panels"])


def test_svg_skips_non_finite_values(tmp_path):
    x = make_logits(tmp_path / "l.npy", rows=1)[0]
    x[10:20] = np.nan
    x[20] = -np.inf
    np.save(tmp_path / "l.npy", x)  # shape [V] is accepted too
    out = tmp_path / "fig.svg"
    p = plot("logits", "--npy", tmp_path / "l.npy", "--mark-id", "5", "--json", "-o", out)
    (q,) = json.loads(p.stdout)["panels"]
    assert q["points"] == V - 11
    keep = np.isfinite(x)
    assert_dots_at(svg_dots_with_opacity(out), np.arange(V)[keep], x[keep], "finite entries")


# --------------------------------------------------------------------------
# PNG: the red square lands where the axis mapping puts the marked token
# --------------------------------------------------------------------------

def load_png(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).astype(np.int32)


def line_centers(mask, axis, min_len):
    """Centres (pixel coordinates, pixel i spans [i, i+1)) of the long
    straight lines of `mask` running along `axis` (0: vertical lines)."""
    counts = mask.sum(axis=axis)
    cols = np.nonzero(counts >= min_len)[0]
    groups = np.split(cols, np.nonzero(np.diff(cols) > 1)[0] + 1)
    return [float(np.average(g + 0.5, weights=counts[g])) for g in groups if len(g)]


def axes_boxes(img, fg, n_panels):
    """The axes frames, found as the long foreground-coloured lines: vertical
    ones over a third of the height, then per panel the horizontal ones
    spanning 90% of the width between them."""
    mask = np.abs(img - np.array(fg)).sum(axis=2) < 200
    xs = line_centers(mask, 0, img.shape[0] // 3)
    assert len(xs) == 2 * n_panels, xs
    boxes = []
    for k in range(n_panels):
        left, right = xs[2 * k], xs[2 * k + 1]
        sub = mask[:, int(left) + 2:int(right) - 1]
        ys = line_centers(sub, 1, int(0.9 * sub.shape[1]))
        assert len(ys) == 2, ys
        boxes.append((left, right, ys[0], ys[1]))
    return boxes


def red_blobs(img):
    from scipy import ndimage

    red = (img[:, :, 0] > 200) & (img[:, :, 1] < 90) & (img[:, :, 2] < 90)
    lab, n = ndimage.label(red)
    cents = ndimage.center_of_mass(red, lab, range(1, n + 1))
    return [(c[1] + 0.5, c[0] + 0.5) for c in cents]  # (x, y) pixel coordinates


def expected_pixel(box, px, py, i):
    left, right, top, bottom = box
    x0, x1 = expected_limits(px)
    y0, y1 = expected_limits(py)
    return (left + (px[i] - x0) / (x1 - x0) * (right - left),
            bottom - (py[i] - y0) / (y1 - y0) * (bottom - top))


@pytest.mark.parametrize("kind,theme,mark", [
    ("logits", "light", ["--mark-max"]),
    ("logits", "dark", ["--mark-id", "777"]),
    ("softmax", "light", ["--mark-id", "12345"]),
    ("logsoftmax", "dark", ["--mark-max"]),
])
def test_png_red_square_at_the_marked_token(tmp_path, logits_npy, kind, theme, mark):
    path, x = logits_npy
    row = x[2]
    mark_id = MAX_ID if mark == ["--mark-max"] else int(mark[1])
    out = tmp_path / "fig.png"
    plot(kind, "--npy", path, "--theme", theme, *mark, "-o", out)
    img = load_png(out)
    fg, bg = ((0, 0, 0), (255, 255, 255)) if theme == "light" else ((255, 255, 255), (0, 0, 0))
    assert tuple(img[1, 1]) == bg
    panels = panels_data(kind, row)
    boxes = axes_boxes(img, fg, len(panels))
    blobs = red_blobs(img)
    assert len(blobs) == len(panels) + 1  # a square per panel, one in the legend
    for k, (box, (px, py)) in enumerate(zip(boxes, panels)):
        ex, ey = expected_pixel(box, px, py, mark_id)
        dist = min(np.hypot(bx - ex, by - ey) for bx, by in blobs)
        print(f"{kind}/{theme}: red square {dist:.2f} px from the expected ({ex:.1f}, {ey:.1f})")
        assert dist < 1.0
        if k == 0:  # another token, 500 indices on (9 px), is not marked: the check can fail
            ox, oy = expected_pixel(box, px, py, (mark_id + 500) % V)
            assert min(np.hypot(bx - ox, by - oy) for bx, by in blobs) > 3


def test_no_mark_draws_no_red(tmp_path, logits_npy):
    out = tmp_path / "fig.png"
    plot("logits", "--npy", logits_npy[0], "--no-mark", "-o", out)
    assert red_blobs(load_png(out)) == []


# --------------------------------------------------------------------------
# Bad input: a clear one-line error, non-zero exit, no file left behind
# --------------------------------------------------------------------------

def assert_clean_failure(p, tmp_path, expect, keep=()):
    assert p.returncode != 0
    assert p.stderr.count("\n") == 1 and "error" in p.stderr, p.stderr
    assert expect in p.stderr, p.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(keep), os.listdir(tmp_path)


def test_unknown_extension(tmp_path, logits_npy):
    p = plot("logits", "--npy", logits_npy[0], "-o", tmp_path / "fig.jpg", check=False)
    assert_clean_failure(p, tmp_path, "unknown image format")


def test_missing_folder(tmp_path, logits_npy):
    p = plot("logits", "--npy", logits_npy[0], "-o", tmp_path / "nope" / "fig.png", check=False)
    assert_clean_failure(p, tmp_path, "No such file or directory")


def test_output_is_a_folder(tmp_path, logits_npy):
    (tmp_path / "fig.png").mkdir()
    p = plot("logits", "--npy", logits_npy[0], "-o", tmp_path / "fig.png", check=False)
    assert_clean_failure(p, tmp_path, "is a folder", keep=["fig.png"])


def test_unwritable_folder(tmp_path, logits_npy):
    """A folder without the write bit (as nobody when the tests run as root)."""
    base, d = unwritable_folder()
    try:
        npy = base / "logits.npy"
        shutil.copyfile(logits_npy[0], npy)
        npy.chmod(0o644)
        p = subprocess.run([*unprivileged_cli(base), "plot", "logits", "--npy", str(npy),
                            "-o", str(d / "fig.png")], capture_output=True, text=True, timeout=120)
        assert_clean_failure(p, d, "Permission denied")
    finally:
        d.chmod(0o700)
        shutil.rmtree(base)


@pytest.mark.parametrize("pos", ["3", "-4", "x"])
def test_position_out_of_range_keeps_the_old_file(tmp_path, logits_npy, pos):
    out = tmp_path / "fig.png"
    out.write_bytes(b"old")
    p = plot("logits", "--npy", logits_npy[0], "--pos", pos, "-o", out, check=False)
    assert_clean_failure(p, tmp_path, "--pos", keep=["fig.png"])
    assert out.read_bytes() == b"old"


def test_plotting_library_failure_leaves_nothing(tmp_path, logits_npy):
    """PLplot without drivers would print and exit(); we report it instead."""
    out = tmp_path / "fig.png"
    out.write_bytes(b"old")
    env = dict(os.environ, PLPLOT_DRV_DIR=str(tmp_path / "no-drivers"))
    p = plot("logits", "--npy", logits_npy[0], "-o", out, check=False, env=env)
    assert_clean_failure(p, tmp_path, "PLplot", keep=["fig.png"])
    assert out.read_bytes() == b"old"


@pytest.mark.parametrize("content,expect", [
    (b"not numpy at all", "bad magic"),
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': '<i4'", "truncated"),
    (None, "truncated"),
])
def test_bad_npy(tmp_path, content, expect):
    src = tmp_path / "in.npy"
    if content is None:
        make_logits(src, rows=1)
        src.write_bytes(src.read_bytes()[:-100])
    else:
        src.write_bytes(content)
    p = plot("logits", "--npy", src, "-o", tmp_path / "fig.png", check=False)
    assert_clean_failure(p, tmp_path, expect, keep=["in.npy"])


def test_bad_npy_dtype(tmp_path):
    np.save(tmp_path / "in.npy", np.zeros((2, 5), dtype=np.int32))
    p = plot("logits", "--npy", tmp_path / "in.npy", "-o", tmp_path / "f.png", check=False)
    assert_clean_failure(p, tmp_path, "dtype", keep=["in.npy"])


@pytest.mark.parametrize("args,expect", [
    (["--mark-id", "50257"], "--mark-id"),
    (["--mark-next"], "--mark-next"),
    (["--mark-max", "--no-mark"], "at most one"),
    (["--theme", "blue"], "--theme"),
    (["--size", "10"], "--size"),
    (["--dpi", "0"], "--dpi"),
    (["--bogus"], "unknown option"),
])
def test_bad_options(tmp_path, logits_npy, args, expect):
    p = plot("logits", "--npy", logits_npy[0], *args, "-o", tmp_path / "f.png", check=False)
    assert_clean_failure(p, tmp_path, expect)


def test_unknown_figure_and_missing_output(tmp_path, logits_npy):
    p = plot("histogram", "--npy", logits_npy[0], "-o", tmp_path / "f.png", check=False)
    assert_clean_failure(p, tmp_path, "unknown figure")
    p = plot("logits", "--npy", logits_npy[0], check=False)
    assert_clean_failure(p, tmp_path, "-o FILE")


# --------------------------------------------------------------------------
# From the model: the plotted row is the model's row at --pos
# --------------------------------------------------------------------------

TEXT = "I like to drink a cup of"


@pytest.fixture(scope="module")
def tiny():
    from fixtures import fixture_dir

    return fixture_dir("tiny")


def model_logits(tmp_path, model, *inp):
    out = tmp_path / "all.npy"
    run_cli("logits", "--model", model, *inp, "--npy", out, check=True)
    return np.load(out)


def test_model_row_and_default_mark(tmp_path, tiny):
    ids = [40, 588, 284, 4144, 257, 6508, 286]
    x = model_logits(tmp_path, tiny, "--ids", ",".join(map(str, ids)))
    svg, png = tmp_path / "f.svg", tmp_path / "f.png"
    p = plot("logits", "--model", tiny, "--ids", ",".join(map(str, ids)), "--pos", "2", "--json",
             "-o", svg)
    report = json.loads(p.stdout)
    assert report["mark"] == ids[3]  # default: the next input token
    (q,) = report["panels"]
    assert q["ylim"] == pytest.approx(expected_limits(x[2]), rel=1e-6)
    assert_dots_at(svg_dots_with_opacity(svg), np.arange(V), x[2], "model row")
    plot("logits", "--model", tiny, "--ids", ",".join(map(str, ids)), "--pos", "2", "-o", png)
    img = load_png(png)
    (box,) = axes_boxes(img, (0, 0, 0), 1)
    idx = np.arange(V, dtype=np.float64)
    ex, ey = expected_pixel(box, idx, x[2], ids[3])
    assert min(np.hypot(bx - ex, by - ey) for bx, by in red_blobs(img)) < 1.0


def test_model_mark_token_by_text(tmp_path, tiny):
    x = model_logits(tmp_path, tiny, "--text", TEXT)
    out = tmp_path / "f.png"
    p = plot("softmax", "--model", tiny, "--text", TEXT, "--mark", " coffee", "--json", "-o", out)
    assert json.loads(p.stdout)["mark"] == 6891  # " coffee" in GPT-2's vocabulary
    img = load_png(out)
    row = x[-1]
    panels = panels_data("softmax", row)
    blobs = red_blobs(img)
    for box, (px, py) in zip(axes_boxes(img, (0, 0, 0), 3), panels):
        ex, ey = expected_pixel(box, px, py, 6891)
        assert min(np.hypot(bx - ex, by - ey) for bx, by in blobs) < 1.0


@pytest.mark.parametrize("args,expect", [
    (["--pos", "7"], "--pos: '7' is outside the sequence of 7 tokens"),
    (["--hook", "no.such.point:zero"], "no.such.point"),
    (["--mark", " coffee cup"], "is 2 tokens"),
    (["--mark-next"], "no next input token"),
    (["--npy", "x.npy"], "either with --npy"),
])
def test_model_bad_input(tmp_path, tiny, args, expect):
    p = plot("logits", "--model", tiny, "--text", TEXT, *args, "-o", tmp_path / "f.png",
             check=False)
    assert_clean_failure(p, tmp_path, expect)


def test_hook_applies_before_plotting(tmp_path, tiny):
    """The notebook's last figure: after the lm_head hook " coffee" is the max."""
    out = tmp_path / "f.svg"
    p = plot("logits", "--model", tiny, "--text", TEXT, "--mark-max", "--json",
             "--hook", "lm_head:set: coffee=max+10", "-o", out)
    report = json.loads(p.stdout)
    assert report["mark"] == 6891
    x = model_logits(tmp_path, tiny, "--text", TEXT)[-1].astype(np.float64)
    hooked = x.copy()
    hooked[6891] = x.max() + 10
    (q,) = report["panels"]
    assert q["ylim"] == pytest.approx(expected_limits(hooked), rel=1e-6)
    assert_dots_at(svg_dots_with_opacity(out), np.arange(V), hooked, "hooked row")
    p = plot("logits", "--npy", tmp_path / "all.npy", "--hook", "lm_head:zero",
             "-o", tmp_path / "g.png", check=False)
    assert p.returncode != 0 and "--hook" in p.stderr


# --------------------------------------------------------------------------
# plot lens (and lens --plot): the logit lens over the layers
# --------------------------------------------------------------------------

N_LAYER = 2  # the tiny fixture's blocks


def lens_json(tiny, *args):
    p = run_cli("lens", "--model", tiny, "--text", TEXT, "--top-k", "1000", "--json", *args,
                check=True)
    return json.loads(p.stdout)["layers"]


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_lens_each_format_is_a_valid_file(tmp_path, tiny, fmt):
    out = tmp_path / f"lens.{fmt}"
    p = plot("lens", "--model", tiny, "--text", TEXT, "-o", out)
    assert p.stdout.startswith(f"wrote {out} (lens, {N_LAYER + 1} layers, 3 panels")
    data = out.read_bytes()
    assert len(data) > 5000, len(data)
    if fmt == "png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[-8:-4] == b"IEND"
        assert struct.unpack(">II", data[16:24]) == (1200, 330)
    elif fmt == "svg":
        assert data.startswith(b"<?xml") and data.rstrip().endswith(b"</svg>")
        assert b'width="864pt"' in data[:400] and b'height="238pt"' in data[:400]
    else:
        assert data.startswith(b"%PDF-") and b"%%EOF" in data[-32:]
    assert os.listdir(tmp_path) == [out.name]


@pytest.mark.parametrize("cmd", ["plot", "lens"])
def test_lens_svg_points_are_the_lens_probabilities(tmp_path, tiny, cmd):
    """One point per layer in each panel (embeddings + every block), where
    `lens --json` puts them: panel 3 the top token's probability, panel 1 the
    final prediction's probability, panel 2 log10 of its rank + 1 (ranks count
    from 0, as in every command)."""
    out = tmp_path / "lens.svg"
    if cmd == "plot":
        p = plot("lens", "--model", tiny, "--text", TEXT, "--json", "-o", out)
    else:
        p = run_cli("lens", "--model", tiny, "--text", TEXT, "--json", "--plot", out, check=True)
    drawn = json.loads(p.stdout)["plot"]
    layers = lens_json(tiny)
    n = N_LAYER + 1
    assert len(layers) == n
    dots = svg_dots(out)
    assert len(dots) == 3 * n, len(dots)
    panels = dots.reshape(3, n, 2)
    for k in range(3):
        assert_linear(np.arange(n, dtype=np.float64), panels[k, :, 0], f"panel {k} x (layer)")
        assert drawn["panels"][k]["points"] == n
    top_prob = np.array([l["top"][0]["prob"] for l in layers], dtype=np.float64)
    assert_linear(top_prob, panels[2, :, 1], "top token probability per layer")
    final = layers[-1]["top"][0]["id"]
    assert drawn["mark"] == final  # default mark: the final prediction
    assert drawn["top_id"] == [l["top"][0]["id"] for l in layers]
    # the mark's probability and rank, wherever it is among the top 1000
    known = 0
    for l, layer in enumerate(layers):
        ids = [t["id"] for t in layer["top"]]
        if final in ids:
            i = ids.index(final)
            assert drawn["mark_rank"][l] == i == layer["top"][i]["rank"]
            assert abs(drawn["mark_prob"][l] - layer["top"][i]["prob"]) < 1e-6
            known += 1
        else:
            assert drawn["mark_rank"][l] >= 1000
    assert known >= 2 and drawn["mark_rank"][-1] == 0
    assert_linear(np.array(drawn["mark_prob"]), panels[0, :, 1], "mark probability per layer")
    assert_linear(np.log10(np.array(drawn["mark_rank"]) + 1), panels[1, :, 1], "mark log10 rank per layer")


def test_lens_mark_and_hook(tmp_path, tiny):
    """--mark TOKEN names the drawn token; --hook applies to the run drawn."""
    out = tmp_path / "lens.svg"
    p = plot("lens", "--model", tiny, "--text", TEXT, "--mark", " coffee", "--json", "-o", out)
    assert json.loads(p.stdout)["plot"]["mark"] == 6891
    hook = ["--hook", "blocks.0.hook_mlp_out:zero"]
    p = plot("lens", "--model", tiny, "--text", TEXT, "--json", *hook, "-o", out)
    hooked = lens_json(tiny, *hook)
    plain = lens_json(tiny)
    top = np.array([l["top"][0]["prob"] for l in hooked], dtype=np.float64)
    assert top[-1] != plain[-1]["top"][0]["prob"]
    assert_linear(top, svg_dots(out).reshape(3, N_LAYER + 1, 2)[2, :, 1], "hooked top probability")


def test_lens_png_dark_theme(tmp_path, tiny):
    out = tmp_path / "lens.png"
    plot("lens", "--model", tiny, "--text", TEXT, "--theme", "dark", "-o", out)
    img = load_png(out)
    assert (img[2, 2] == 0).all()  # dark background
    assert len(axes_boxes(img, (255, 255, 255), 3)) == 3


@pytest.mark.parametrize("args,expect", [
    (["--pos", "7"], "--pos"),
    (["--pos", "-8"], "--pos"),
    (["--mark", " coffee cup"], "is 2 tokens"),
    (["--mark-next"], "no next input token"),
    (["--mark-id", "50257"], "--mark-id"),
    (["--mark-next", "--mark-id", "3"], "at most one"),
    (["--hook", "no.such.point:zero"], "no.such.point"),
    (["--theme", "blue"], "--theme"),
])
def test_lens_bad_input_leaves_the_old_file(tmp_path, tiny, args, expect):
    out = tmp_path / "lens.png"
    out.write_bytes(b"old")
    p = plot("lens", "--model", tiny, "--text", TEXT, *args, "-o", out, check=False)
    assert_clean_failure(p, tmp_path, expect, keep=["lens.png"])
    assert out.read_bytes() == b"old"


def test_lens_bad_output(tmp_path, tiny):
    for name, expect in [("lens.jpg", "unknown image format"), ("no/lens.png", "cannot write")]:
        p = plot("lens", "--model", tiny, "--text", TEXT, "-o", tmp_path / name, check=False)
        assert_clean_failure(p, tmp_path, expect)
        p = run_cli("lens", "--model", tiny, "--text", TEXT, "--plot", tmp_path / name)
        assert_clean_failure(p, tmp_path, expect)
    p = plot("lens", "--model", tiny, "--text", TEXT, check=False)
    assert_clean_failure(p, tmp_path, "-o FILE")
    p = run_cli("lens", "--model", tiny, "--text", TEXT, "--mark", " coffee")
    assert_clean_failure(p, tmp_path, "give --plot FILE")
