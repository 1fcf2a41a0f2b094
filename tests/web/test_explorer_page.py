"""The explorer page in a real browser: Debian's chromium and chromium-driver
driven by Selenium, on `logitscope serve` with the tiny fixture. Each test
starts its own server (--port 0); one headless browser serves the module.
Checks the page's numbers against the CLI and that it asks nothing of any
other host."""
import json
import math
import os
import pathlib
import shutil
import sys
import time
import urllib.parse

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "server"))
from conftest import run_cli  # noqa: E402
from fixtures import fixture_dir  # noqa: E402
from serverlib import serve  # noqa: E402,F401  (a fixture)

TEXT = "The quick brown fox jumps over the lazy dog, and then"
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def cli_json(*args):
    out = run_cli(*args, "--model", fixture_dir("tiny"), "--json", check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        if os.environ.get("LSC_REQUIRE_ORACLE") == "1":
            pytest.fail(f"selenium is required under CI: {e}")
        pytest.skip(f"selenium not installed: {e}")
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        if os.environ.get("LSC_REQUIRE_ORACLE") == "1":
            pytest.fail("chromium and chromium-driver are required under CI (scripts/install-deps --test)")
        pytest.skip("chromium / chromium-driver not installed")
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800",
              "--disable-background-networking", "--disable-component-update", "--no-first-run"):
        o.add_argument(a)
    o.binary_location = CHROMIUM
    o.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    d = webdriver.Chrome(service=Service(DRIVER), options=o)
    yield d
    d.quit()


def wait(cond, timeout=30, what=None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for the page{': %r' % (what(),) if what else ''}")


def open_page(d, s, **query):
    d.get(f"{s.url}/?{urllib.parse.urlencode(query)}")
    wait(lambda: d.execute_script("return document.body.dataset.ready === '1'"))
    if "text" in query:
        wait(lambda: d.execute_script(
            "return window.lscTimings.analysis.length > 0 || !document.getElementById('error').hidden"))


def tokens(d):
    return d.execute_script("""return [...document.querySelectorAll('#tokens .tok')].map(e =>
        ({pos: e.dataset.pos, id: e.dataset.id, logprob: e.dataset.logprob, rank: e.dataset.rank}))""")


def ids_now(d):
    return [int(t["id"]) for t in tokens(d)]


def requested_urls(d):
    urls = []
    for entry in d.get_log("performance"):
        m = json.loads(entry["message"])["message"]
        if m["method"] == "Network.requestWillBeSent":
            urls.append(m["params"]["request"]["url"])
    return urls


def test_tokens_inspector_keyboard_and_no_outside_request(serve, browser):
    s = serve("--threads", "1")
    d = browser
    d.get_log("performance")  # forget earlier pages' requests
    open_page(d, s, text=TEXT)
    toks = tokens(d)
    score = cli_json("score", "--text", TEXT)
    assert [int(t["id"]) for t in toks] == score["ids"]
    assert [t["pos"] for t in toks] == [str(i) for i in range(len(toks))]
    assert toks[0]["logprob"] == "" and toks[0]["rank"] == ""
    assert [float(t["logprob"]) for t in toks[1:]] == score["token_logprobs"]
    for t in (1, 4, len(toks) - 1):
        r = cli_json("rank", "--text", TEXT, "--pos", str(t - 1), "--token-id", toks[t]["id"])
        assert int(toks[t]["rank"]) == r["rank"]

    # hover token 4: the inspector's top-k table is `next` after position 3
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    span = d.find_element(By.CSS_SELECTOR, '#tokens .tok[data-pos="4"]')
    ActionChains(d).move_to_element(span).perform()
    rows = wait(lambda: d.find_elements(By.CSS_SELECTOR, "#inspector tbody tr"))
    nxt = cli_json("next", "--text", TEXT, "--pos", "3", "--top-k", str(len(rows)))
    cells = [r.find_elements(By.TAG_NAME, "td") for r in rows]
    assert [int(c[1].text) for c in cells] == [c["id"] for c in nxt["top"]]
    assert [float(c[5].text) for c in cells] == pytest.approx([c["prob"] for c in nxt["top"]], abs=1e-4)
    cum = [float(c[6].text) for c in cells]
    assert cum == sorted(cum) and cum[-1] <= 1.0001
    assert f"rank {toks[4]['rank']}" in d.find_element(By.ID, "inspector").text

    # keyboard: focus a token, arrows move, Enter selects the position
    span.click()
    d.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    assert d.switch_to.active_element.get_attribute("data-pos") == "5"
    assert "position 5" in d.find_element(By.ID, "inspector").text
    d.switch_to.active_element.send_keys(Keys.ENTER)
    wait(lambda: "position 5" in d.find_element(By.ID, "next-pos").text)
    assert "pos=5" in d.current_url

    # the other views draw without an error
    for view in ("lens", "attention", "figures"):
        d.find_element(By.CSS_SELECTOR, f'#tabs button[data-view="{view}"]').click()
        wait(lambda: d.execute_script("return document.getElementById('loading').hidden"))
        time.sleep(0.3)
        wait(lambda: d.execute_script("return document.getElementById('loading').hidden"))
        assert not d.find_element(By.ID, "error").is_displayed(), d.find_element(By.ID, "error").text
    lens = d.execute_script("return document.getElementById('lens-canvas').width")
    assert lens > 200

    urls = requested_urls(d)
    assert any(u.startswith(s.url + "/v1/explore/analyze") for u in urls)
    outside = [u for u in urls if not u.startswith(s.url + "/") and not u.startswith(("data:", "blob:"))]
    assert outside == [], outside
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def test_temperature_slider_and_candidate(serve, browser):
    s = serve("--threads", "1")
    d = browser
    open_page(d, s, text=TEXT, view="next")
    from selenium.webdriver.common.by import By
    bars = lambda: d.execute_script("""return [...document.querySelectorAll('#next-chart g[data-id]')].map(g =>
        ({id: +g.dataset.id, raw: +g.dataset.raw, post: +g.dataset.post}))""")
    b1 = wait(bars)
    nxt = cli_json("next", "--text", TEXT, "--top-k", "5")
    assert [b["id"] for b in b1[:5]] == [c["id"] for c in nxt["top"]]
    assert [b["raw"] for b in b1[:5]] == pytest.approx([c["prob"] for c in nxt["top"]], rel=1e-5)
    assert [b["post"] for b in b1] == pytest.approx([b["raw"] for b in b1], rel=1e-9)
    # temperature 0.5: p_T(i) / p_T(j) = (p(i) / p(j)) ** (1 / T), the top sharper
    d.execute_script("const e = document.getElementById('temperature'); e.value = 0.5;"
                     "e.dispatchEvent(new Event('input'))")
    b2 = wait(lambda: (lambda b: b if b and b[0]["post"] != b1[0]["post"] else None)(bars()))
    assert b2[0]["post"] > b1[0]["post"]
    for j in (1, 2, 3):
        assert b2[0]["post"] / b2[j]["post"] == pytest.approx((b1[0]["raw"] / b1[j]["raw"]) ** 2, rel=1e-6)
    assert "temperature=0.5" in d.current_url
    # top-k 2 leaves two tokens, renormalised
    d.execute_script("const e = document.getElementById('top-k'); e.value = 2;"
                     "e.dispatchEvent(new Event('input'))")
    b3 = wait(lambda: (lambda b: b if b and b[2]["post"] == 0 else None)(bars()))
    assert b3[0]["post"] + b3[1]["post"] == pytest.approx(1, abs=1e-9)
    assert max(d.execute_script("return window.lscTimings.redraw")) < 1000

    # export: the view's data as JSON, its chart as SVG and PNG (downloads caught)
    d.execute_script("window.__dl = []; window.__blobs = new Map(); const make = URL.createObjectURL;"
                     "URL.createObjectURL = (b) => { const u = make(b); window.__blobs.set(u, b); return u; };"
                     "HTMLAnchorElement.prototype.click = function () {"
                     " window.__dl.push([this.download, this.href]); };")
    for b in ("export-json", "export-svg", "export-png"):
        d.find_element(By.ID, b).click()
    dl = wait(lambda: (lambda x: x if len(x) == 3 else None)(d.execute_script("return window.__dl")))
    got = {}
    for name, href in dl:
        got[name] = d.execute_async_script(
            "const done = arguments[1]; window.__blobs.get(arguments[0]).arrayBuffer()"
            ".then(b => done(Array.from(new Uint8Array(b))))", href)
    data = json.loads(bytes(got["logitscope-next.json"]))
    assert [t["id"] for t in data["analysis"]["tokens"]] == ids_now(d)
    assert data["state"]["topK"] == 2 and len(data["next"]) == 50
    assert b"<svg" in bytes(got["logitscope-next.svg"])[:200]
    assert bytes(got["logitscope-next.png"])[:8] == b"\x89PNG\r\n\x1a\n"

    # click a candidate whose text extends the token list by itself
    ids = [int(t["id"]) for t in tokens(d)]
    for b in b1[:10]:
        text = cli_json("detokenize", "--ids", ",".join(map(str, ids + [b["id"]])))["text"]
        if cli_json("tokenize", "--text", text)["ids"] == ids + [b["id"]]:
            break
    else:
        pytest.skip("no candidate retokenizes to itself")
    n = d.execute_script("return window.lscTimings.analysis.length")
    d.find_element(By.CSS_SELECTOR, f'#next-chart g[data-id="{b["id"]}"]').click()
    wait(lambda: d.execute_script("return window.lscTimings.analysis.length") > n)
    assert [int(t["id"]) for t in tokens(d)] == ids + [b["id"]]


def test_steering_equals_the_cli_hook(serve, browser):
    s = serve("--threads", "1")
    d = browser
    open_page(d, s, text=TEXT, view="steer")
    from selenium.webdriver.support.ui import Select
    from selenium.webdriver.common.by import By
    Select(d.find_element(By.ID, "hook-op")).select_by_value("set")
    spec = d.find_element(By.ID, "hook-spec").text
    assert spec == "lm_head:set: coffee=max+2"
    d.find_element(By.ID, "steer").click()
    steered = wait(lambda: d.execute_script("""return [...document.querySelectorAll('#steer-delta .tok')]
        .map(e => e.dataset.steeredLogprob)"""))
    score = cli_json("score", "--text", TEXT, "--hook", spec)
    assert [float(x) for x in steered[1:]] == score["token_logprobs"]
    assert "hook=lm_head" in d.current_url
    # the steered distribution's top token is " coffee"
    wait(lambda: d.find_elements(By.CSS_SELECTOR, "#steer-steered text"))
    assert d.find_element(By.CSS_SELECTOR, "#steer-steered text").text == '" coffee"'
    gen = cli_json("generate", "--text", TEXT, "--max-new-tokens", "12", "--hook", spec)
    wait(lambda: d.find_element(By.ID, "cont-steered").text)
    assert d.find_element(By.ID, "cont-steered").text.endswith(gen["new_text"].rstrip())


def test_errors_are_shown_in_the_page(serve, browser):
    s = serve("--threads", "1")
    d = browser
    from selenium.webdriver.common.by import By
    open_page(d, s, text="word " * 100)
    err = d.find_element(By.ID, "error")
    assert err.is_displayed() and "more than the model's context of 64" in err.text
    d.find_element(By.ID, "text").clear()
    d.find_element(By.ID, "text").send_keys("Hello there")
    s.stop()
    d.find_element(By.ID, "analyze").click()
    wait(lambda: "not answering" in d.find_element(By.ID, "error").text)
    assert d.find_element(By.ID, "model-info").text  # the page is still there


def test_api_key_from_the_page(serve, browser):
    """serve --api-key: the page asks for the key on the first 401, keeps it in
    sessionStorage, sends it as a Bearer header and never puts it in the URL."""
    key = "s3cret-key"
    s = serve("--threads", "1", "--api-key", key)
    d = browser
    from selenium.webdriver.common.by import By
    d.get(f"{s.url}/?{urllib.parse.urlencode({'text': TEXT})}")
    d.execute_script("sessionStorage.clear()")
    d.get(f"{s.url}/?{urllib.parse.urlencode({'text': TEXT})}")
    wait(lambda: d.find_element(By.ID, "key-form").is_displayed())
    assert "needs an API key" in d.find_element(By.ID, "error").text
    # a wrong key: refused, said so, the form stays
    d.find_element(By.ID, "api-key").send_keys("wrong")
    d.find_element(By.ID, "key-use").click()
    wait(lambda: "refused this API key" in d.find_element(By.ID, "error").text)
    assert d.find_element(By.ID, "key-form").is_displayed()
    d.find_element(By.ID, "api-key").send_keys(key)
    d.find_element(By.ID, "key-use").click()
    wait(lambda: d.execute_script("return window.lscTimings.analysis.length > 0"))
    assert not d.find_element(By.ID, "error").is_displayed()
    assert not d.find_element(By.ID, "key-form").is_displayed()
    assert ids_now(d) == cli_json("score", "--text", TEXT)["ids"]
    assert d.execute_script("return sessionStorage.getItem('logitscope-api-key')") == key
    assert key not in d.current_url
    # a reload in the same tab goes straight to the analysis with the kept key
    d.refresh()
    wait(lambda: d.execute_script("return window.lscTimings.analysis.length > 0"))
    assert not d.find_element(By.ID, "key-form").is_displayed()
    d.execute_script("sessionStorage.clear()")


def test_lens_pages_through_a_long_text(serve, browser):
    """A text longer than one lens request's window: the pager reaches every
    position, each window equal to the endpoint's numbers for it."""
    s = serve("--threads", "1")
    d = browser
    from selenium.webdriver.common.by import By
    text = " ".join(["one two three four five six seven"] * 8)
    open_page(d, s, text=text, view="lens", pos=3)
    n = len(tokens(d))
    W = json.loads(s.get("/v1/explore/model")[1])["max_lens_positions"]
    assert n > W
    page = lambda: d.find_element(By.ID, "lens-page").text
    lens = lambda: d.execute_script("return JSON.parse(JSON.stringify(window.lscLens || null))")
    wait(lambda: page() == f"positions 0–{W - 1} of {n}")
    assert d.find_element(By.ID, "lens-prev").get_attribute("disabled")
    seen = []
    while True:
        pos0 = len(seen)
        got = wait(lambda: (lambda x: x if x and x["pos0"] == pos0 else None)(lens()),
                   what=lambda: (page(), d.find_element(By.ID, "error").text))
        want = s.post("/v1/explore/lens", {"text": text, "pos0": pos0, "n_pos": min(W, n - pos0)})[1]
        assert got["layers"] == want["layers"]
        seen += got["layers"][0]["top_id"]
        if d.find_element(By.ID, "lens-next").get_attribute("disabled"):
            break
        d.find_element(By.ID, "lens-next").click()
    assert len(seen) == n and page().endswith(f"–{n - 1} of {n}")
    # selecting a token brings its window back
    d.find_element(By.CSS_SELECTOR, '#tokens .tok[data-pos="2"]').click()
    wait(lambda: page() == f"positions 0–{W - 1} of {n}")
    assert not d.find_element(By.ID, "error").is_displayed(), d.find_element(By.ID, "error").text
