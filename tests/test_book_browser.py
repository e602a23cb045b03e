"""The built book, opened in a real browser: every page of `_toc.yml` loads from a local
web server without 404s or script errors, shows no error output from an executed cell,
keeps every exercise solution (code and output) behind a closed toggle,
every figure on it decoded to a real image with a numbered caption, every formula typeset
by the MathJax the book serves itself (no TeX source left visible), and no request leaves
the site (the book works offline). Screenshots go to `_build/screenshots/`.

Chromium (Debian's `chromium`, `make browser-deps`) runs headless and is driven through the
DevTools protocol over a pipe (`--remote-debugging-pipe`: JSON messages ended by a NUL
byte on file descriptors 3 and 4), so the check needs nothing beyond the standard library.

    make book && python -m pytest -m browser tests/test_book_browser.py

The test skips with a message when `_build/html` or Chromium is missing, and fails
instead when `SURVMAMBA_REQUIRE_BROWSER=1` (set by `make test`, so CI cannot skip it).
"""
from __future__ import annotations

import base64
import fcntl
import functools
import http.server
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
REQUIRED = os.environ.get("SURVMAMBA_REQUIRE_BROWSER") == "1"
PAGE_TIMEOUT_S = 60
# a cell's stderr that is an error rather than a warning or a progress bar
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception)\b:", re.MULTILINE)


def _missing(reason: str):
    if REQUIRED:
        pytest.fail(reason + " (SURVMAMBA_REQUIRE_BROWSER=1: the browser check may not be skipped)")
    pytest.skip(reason)


def find_chromium() -> str | None:
    """The Chromium executable: $CHROMIUM, /usr/bin/chromium, or chromium/chromium-browser on PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def toc_pages() -> list[str]:
    """Every page of `_toc.yml` as its HTML path relative to `_build/html`, root page first."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def files(entries):
        for e in entries or []:
            if "file" in e:
                yield e["file"]
            yield from files(e.get("chapters"))
            yield from files(e.get("sections"))

    names = [toc["root"], *files(toc.get("chapters"))]
    for part in toc.get("parts", []):
        names += list(files(part.get("chapters")))
    return [f"{Path(n).with_suffix('')}.html" for n in names]


# --------------------------------------------------------------------------- local web server
class _RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves `_build/html` and records (status, path) of every request."""

    log: list[tuple[int, str]]

    def log_request(self, code="-", size="-"):
        self.log.append((int(code) if str(code).isdigit() else 0, self.path))

    def log_message(self, format, *args):        # keep pytest's output clean
        pass


class BookServer:
    """`http.server` on 127.0.0.1 at a free port, in a daemon thread."""

    def __init__(self, directory: Path):
        handler = type("Handler", (_RecordingHandler,), {"log": []})
        self.log = handler.log
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(handler, directory=str(directory)))
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- DevTools over a pipe
class DevToolsPipe:
    """A headless Chromium driven through the DevTools protocol on a pipe.

    Commands are written to the browser's fd 3, replies and events read from its fd 4,
    each a JSON object followed by a NUL byte.
    """

    FLAGS = ("--headless", "--no-sandbox",             # no sandbox: CI runs as root, and containers lack user namespaces
             "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio",
             "--remote-debugging-pipe",
             # no name resolves but the local server's address: a page that asks another site
             # fails there (and the check reports it) without any traffic leaving the machine
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")

    def __init__(self, executable: str):
        self.profile = tempfile.mkdtemp(prefix="survmamba_chromium_")
        cmd_r, self._cmd_w = os.pipe()          # we write commands, the browser reads them on fd 3
        self._evt_r, evt_w = os.pipe()          # the browser writes on fd 4, we read
        # the browser's ends move above fd 9 first, so that neither is 3 or 4 itself
        cmd_r, evt_w = (self._above_9(fd) for fd in (cmd_r, evt_w))
        # a small Python trampoline moves the two ends to fds 3 and 4 and execs the browser
        # (a shell cannot: dash redirects single-digit fds only)
        trampoline = (f"import os, sys; os.dup2({cmd_r}, 3); os.dup2({evt_w}, 4); "
                      f"os.close({cmd_r}); os.close({evt_w}); os.execv(sys.argv[1], sys.argv[1:])")
        self.proc = subprocess.Popen([sys.executable, "-c", trampoline, executable, *self.FLAGS,
                                      f"--user-data-dir={self.profile}", "about:blank"],
                                     pass_fds=(cmd_r, evt_w), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        os.close(cmd_r)
        os.close(evt_w)
        self._next_id = 0
        self._inbox: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.version = self.call("Browser.getVersion")["product"]

    @staticmethod
    def _above_9(fd: int) -> int:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return high

    def _read(self):
        buf = b""
        with os.fdopen(self._evt_r, "rb", buffering=0) as f:
            while chunk := f.read(1 << 16):
                buf += chunk
                *messages, buf = buf.split(b"\0")
                for m in messages:
                    self._inbox.put(json.loads(m))
        self._inbox.put(None)                   # the browser closed the pipe

    def _receive(self, deadline: float) -> dict:
        try:
            msg = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("no message from Chromium before the deadline") from None
        if msg is None:
            stderr = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.poll() is not None else ""
            raise RuntimeError(f"Chromium closed the DevTools pipe (exit code {self.proc.poll()}): {stderr}")
        return msg

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = PAGE_TIMEOUT_S) -> dict:
        """Send one command and wait for its reply; events met meanwhile are kept in `events`."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float = PAGE_TIMEOUT_S) -> dict:
        """The first event `method` of `session` not seen before (earlier ones are consumed)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method and e.get("sessionId") == session and not e.get("_seen"):
                    e["_seen"] = True
                    return self.events[i]
            self.events.append(self._receive(deadline))

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        shutil.rmtree(self.profile, ignore_errors=True)


# JavaScript run in the page once it has loaded: waits for every <img> to load or fail,
# then reports the images, error outputs and the text of stderr outputs.
INSPECT_JS = r"""
(async () => {
  const RAW_TEX = RAW_TEX_SOURCE;
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(img => img.complete ? null :
      new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })));
  // MathJax is served by the book (_static/mathjax): wait for it to load and typeset the page
  const mathNodes = document.querySelectorAll('.math');
  for (let i = 0; i < 200 && mathNodes.length && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++)
    await new Promise(done => setTimeout(done, 50));
  const mathjax = !!(window.MathJax && window.MathJax.version);
  if (mathjax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const text = sel => Array.from(document.querySelectorAll(sel)).map(e => e.innerText);
  // the visible text of the page's content, less code, typeset formulas and scripts
  const content = (document.querySelector('main article, article, main') || document.body).cloneNode(true);
  content.querySelectorAll('pre, code, mjx-container, mjx-assistive-mml, script, style, .highlight, .cell_input, .cell_output')
         .forEach(e => e.remove());
  const visible = content.innerText || content.textContent || '';
  return JSON.stringify({
    url: location.href,
    title: document.title,
    h1: (document.querySelector('main h1, article h1, h1') || {}).innerText || null,
    images: imgs.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth, height: i.naturalHeight,
                            shown: i.getBoundingClientRect().width})),
    errorOutputs: text('.cell_output .traceback, .cell_output .output.error, .output_error'),
    stderr: text('.cell_output .output.stderr'),
    cellOutputs: document.querySelectorAll('.cell_output').length,
    bodyHasTraceback: document.body.innerText.includes('Traceback (most recent call last)'),
    mathjax: mathjax,
    mathErrors: text('mjx-merror'),
    // Markdown shown as text: a paragraph holding a table's |---|---| separator row
    // (which the HTML writer's smart quotes may have turned into |—|—|)
    rawTables: Array.from(document.querySelectorAll('p')).map(e => e.innerText)
                    .filter(t => /\|\s*:?(-{3,}|[\u2013\u2014]-?)\s*:?\|\s*:?(-{3,}|[\u2013\u2014]-?)\s*:?\|/.test(t)),
    // formulas MathJax left as TeX: a .math element with no typeset output, or TeX in the visible text
    mathNodes: mathNodes.length,
    untypeset: Array.from(mathNodes).filter(e => !e.querySelector('mjx-container') && !e.matches('mjx-container'))
                    .map(e => e.textContent.slice(0, 120)),
    rawTex: (visible.match(RAW_TEX) || []).slice(0, 10),
    // outputs that name a temporary folder of the machine that built the page
    buildPaths: text('.cell_output').flatMap(t => t.match(/(^|[\s'"(=])\/tmp\/\S*/g) || []),
    // exercise solutions: every solution cell inside a closed <details> (one toggle with its
    // output), no stub of the student edition on the page
    solutionCells: document.querySelectorAll('.cell.tag_solution').length,
    solutionsShown: Array.from(document.querySelectorAll('.cell.tag_solution'))
        .filter(c => !c.closest('details:not([open])'))
        .map(c => (c.innerText || '').slice(0, 80)),
    stubCells: document.querySelectorAll('.cell.tag_stub').length,
    // long dumps: one output longer than a screenful of text
    longOutputs: text('.cell_output .output').filter(t => t.length > 4000).map(t => t.slice(0, 80)),
    // content images (cell outputs and figures): each inside a <figure> with a numbered caption
    uncaptioned: Array.from(document.images)
        .filter(i => (i.getAttribute('src') || '').includes('_images/'))
        .filter(i => { const f = i.closest('figure');
                       const c = f && f.querySelector('figcaption');
                       return !(c && c.innerText.trim() && c.querySelector('.caption-number')); })
        .map(i => i.getAttribute('src')),
  });
})()
"""


# TeX that MathJax should have typeset: \(...\), \[...\], $$, or a control word of a formula
RAW_TEX = (r"/\\\(|\\\)|\\\[|\\\]|\$\$|\\(frac|operatorname|mathbb|mathrm|mathcal|begin|end|sum|prod|int|"
           r"bar|hat|tilde|left|right|alpha|beta|gamma|delta|Delta|lambda|sigma|exp|log|cdot|times|leq?|geq?|"
           r"mid|bA|bB|bK|R)(?![A-Za-z])/g")
INSPECT_JS = INSPECT_JS.replace("RAW_TEX_SOURCE", RAW_TEX)


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").is_file():
        _missing(f"{HTML} has no built book: run `make book` first")
    srv = BookServer(HTML)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        _missing("Chromium is not installed: run `make browser-deps` (as root: apt-get install chromium), "
                 "or set CHROMIUM=/path/to/chromium")
    b = DevToolsPipe(exe)
    print("browser:", b.version)
    yield b
    b.close()


def open_page(browser: DevToolsPipe, url: str, width: int = 1280, height: int = 900) -> tuple[str, str]:
    """Open `url` in a new tab and wait for its load event; returns the tab's target id and session id."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Network", "Runtime"):
        browser.call(f"{domain}.enable", session=session)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
    nav = browser.call("Page.navigate", {"url": url}, session=session)
    if nav.get("errorText"):
        raise AssertionError(f"navigating to {url} failed: {nav['errorText']}")
    browser.wait_event("Page.loadEventFired", session)
    return target, session


def inspect(browser: DevToolsPipe, session: str) -> dict:
    res = browser.call("Runtime.evaluate", {"expression": INSPECT_JS, "awaitPromise": True,
                                            "returnByValue": True}, session=session)
    if "exceptionDetails" in res:
        raise AssertionError(f"inspecting the page failed: {res['exceptionDetails']}")
    return json.loads(res["result"]["value"])


def screenshot(browser: DevToolsPipe, session: str, path: Path, width: int = 1280, max_height: int = 30000) -> tuple[int, int]:
    """A full-page PNG (cut at `max_height` CSS pixels); returns its size in CSS pixels.

    The window is made as tall as the page first: capturing beyond a short window
    lays the sticky sidebars out wrongly.
    """
    height = min(int(browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]["height"]), max_height)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
    shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return width, height


def network_problems(events: list[dict], origin: str) -> tuple[list[str], list[str]]:
    """(failures of requests to `origin`, failures of requests elsewhere) from a tab's Network events."""
    urls = {e["params"]["requestId"]: e["params"]["request"]["url"]
            for e in events if e.get("method") == "Network.requestWillBeSent"}
    local, remote = [], []
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Network.responseReceived" and p["response"]["status"] >= 400:
            problem, url = f"HTTP {p['response']['status']} {p['response']['url']}", p["response"]["url"]
        elif e.get("method") == "Network.loadingFailed" and not p.get("canceled"):
            url = urls.get(p["requestId"], "?")
            problem = f"{p.get('errorText')} {url}"
        else:
            continue
        (local if url.startswith(origin) else remote).append(problem)
    return local, remote


def external_requests(events: list[dict], origin: str) -> list[str]:
    """URLs of a tab's requests that leave `origin` (data: and blob: URLs stay in the page)."""
    urls = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    return list(dict.fromkeys(u for u in urls if not u.startswith(origin) and not u.startswith(("data:", "blob:", "about:"))))


PAGES = toc_pages()


def solution_cells(page: str) -> int:
    """Code cells tagged ``solution`` in the chapter source of ``page`` (0 for a page that is not a chapter)."""
    source = ROOT / Path(page).with_suffix(".py")
    if not source.is_file():
        return 0
    jupytext = pytest.importorskip("jupytext")
    return sum(1 for c in jupytext.read(source).cells
               if c.cell_type == "code" and "solution" in c.metadata.get("tags", []))


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(server: BookServer, browser: DevToolsPipe, page: str):
    html_file = HTML / page
    assert html_file.is_file(), f"{page} is in _toc.yml but not in {HTML}: rebuild with `make book`"
    served_before = len(server.log)
    target, session = open_page(browser, server.base + page)
    info = inspect(browser, session)
    shot = SCREENSHOTS / (page.replace("/", "__").removesuffix(".html") + ".png")
    width, height = screenshot(browser, session, shot)
    events = [e for e in browser.events if e.get("sessionId") == session]
    browser.call("Target.closeTarget", {"targetId": target})
    print(f"{page}: {info['cellOutputs']} cell outputs, {len(info['images'])} images, "
          f"screenshot {shot.relative_to(ROOT)} ({width}x{height})")

    # the page is the one asked for, with a title
    assert info["url"] == server.base + page, f"{page} redirected to {info['url']}"
    assert info["h1"], f"{page} has no heading"

    # no 404s or failed requests to the book's own server
    # (the browser asks for /favicon.ico on its own when a page names no icon: not the book's link)
    local, remote = network_problems(events, server.base)
    local = [p for p in local if not p.endswith(server.base + "favicon.ico")]
    served = [f"HTTP {code} {path}" for code, path in server.log[served_before:]
              if code >= 400 and path != "/favicon.ico"]
    assert not local and not served, f"{page}: failed requests: {local + served}"
    # the book works offline: no request leaves the site (a CDN script, a web font, a tracker)
    outside = external_requests(events, server.base)
    assert not outside and not remote, f"{page}: requests that leave the site: {outside or remote}"

    # no script errors thrown by the page
    thrown = [(d.get("exception", {}).get("description") or d.get("text", ""))[:300]
              for d in (e["params"]["exceptionDetails"] for e in events if e.get("method") == "Runtime.exceptionThrown")]
    assert not thrown, f"{page}: JavaScript exceptions: {thrown}"

    # no cell raised: no traceback outputs, no error text in stderr outputs
    assert not info["errorOutputs"], f"{page}: error outputs: {[t[:300] for t in info['errorOutputs']]}"
    assert not info["bodyHasTraceback"], f"{page}: the page shows a Python traceback"
    errors = [t for t in info["stderr"] if ERROR_TEXT.search(t)]
    assert not errors, f"{page}: stderr outputs with errors: {[t[:300] for t in errors]}"
    for t in info["stderr"]:
        warnings.warn(f"{page}: a cell wrote to stderr: {t[:200]!r}", stacklevel=1)

    # Markdown outputs (tables a cell displays) rendered as tables, not as text with pipes
    assert not info["rawTables"], f"{page}: Markdown tables shown as text: {[t[:120] for t in info['rawTables']]}"

    # MathJax (served by the book) loaded where the page has formulas, and typeset every one of
    # them without an error: no TeX source left visible
    assert not info["mathErrors"], f"{page}: MathJax errors: {info['mathErrors'][:5]}"
    if info["mathNodes"]:
        assert info["mathjax"], f"{page}: {info['mathNodes']} formulas but MathJax did not load"
    assert not info["untypeset"], f"{page}: formulas left as TeX: {info['untypeset'][:5]}"
    assert not info["rawTex"], f"{page}: raw TeX visible in the text: {info['rawTex']}"

    # no build paths or long dumps in cell outputs
    assert not info["buildPaths"], f"{page}: outputs show the build machine's temporary folders: {info['buildPaths'][:5]}"
    assert not info["longOutputs"], f"{page}: outputs longer than 4000 characters: {info['longOutputs']}"

    # exercise solutions stay behind their toggle: as many hidden solution cells as the chapter has
    assert not info["solutionsShown"], f"{page}: solutions shown without opening a toggle: {info['solutionsShown']}"
    assert info["stubCells"] == 0, f"{page}: {info['stubCells']} stub cells of the student edition on the page"
    expected = solution_cells(page)
    assert info["solutionCells"] == expected, \
        f"{page}: {info['solutionCells']} solution cells on the page, the chapter has {expected}"

    # every figure has a numbered caption
    assert not info["uncaptioned"], f"{page}: figures without a numbered caption: {info['uncaptioned']}"

    # every figure decoded to a real, displayed image
    broken = [i["src"] for i in info["images"] if i["width"] == 0 or i["height"] == 0]
    assert not broken, f"{page}: images that did not load or decode: {broken}"
    hidden = [i["src"] for i in info["images"] if i["shown"] == 0 and "_images/" in (i["src"] or "")]
    assert not hidden, f"{page}: figures with zero displayed width: {hidden}"
    if page.startswith("notebooks/"):
        assert info["cellOutputs"] > 0, f"{page}: a chapter without any cell output was not executed"

    # the screenshot is a real PNG of the page
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000, f"bad screenshot {shot}"


def test_home_redirects_to_the_introduction(server: BookServer, browser: DevToolsPipe):
    """`index.html` forwards to the root page of `_toc.yml`."""
    target, session = open_page(browser, server.base)
    expected = server.base + PAGES[0]
    deadline = time.monotonic() + 20
    url = None
    while time.monotonic() < deadline:
        url = browser.call("Runtime.evaluate", {"expression": "location.href", "returnByValue": True},
                           session=session)["result"]["value"]
        if url == expected:
            break
        time.sleep(0.2)
    browser.call("Target.closeTarget", {"targetId": target})
    assert url == expected, f"the home page stayed at {url}, expected a redirect to {expected}"


def test_figure_pages_have_figures():
    """The chapters that plot must show figures (guards against a page list that misses them)."""
    with_images = [p for p in PAGES if (HTML / p).is_file() and "<img" in (HTML / p).read_text()]
    if not with_images:
        _missing(f"{HTML} has no built book: run `make book` first")
    for page in ("notebooks/05_selective_scan.html", "notebooks/11_survival.html"):
        assert page in with_images, f"{page} has no <img>: the chapter's figures did not render"


def test_the_checks_catch_a_broken_page(browser: DevToolsPipe, tmp_path: Path):
    """The inspection itself: a page with a missing figure, a traceback output, an error in
    stderr and a Markdown table left as text is reported as such, and the local server records the 404."""
    (tmp_path / "ok.png").write_bytes(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="))
    (tmp_path / "broken.html").write_text(
        "<html><head><meta charset='utf-8'></head><body><h1>Broken</h1><img src='ok.png'><img src='_images/missing.png'>"
        "<div class='cell_output'><div class='output stream'><pre>results in /tmp/survmamba_x/run</pre></div></div>"
        "<div class='cell_output'><div class='output traceback'><pre>Traceback (most recent call last):\n"
        "ValueError: boom</pre></div><div class='output stderr'><pre>KeyError: 'x'</pre></div></div>"
        "<p>| a | b | |---|---| | 1 | 2 |</p><p>| a | b |\n|\u2014|\u2014|</p><p>a | b, c - d</p>"
        "<table><tr><td>a</td></tr></table>"
        "<p>Raw: <span class='math notranslate nohighlight'>\\(\\operatorname{Linear}(x)\\)</span></p>"
        "<p>costs $5 and $6; a path C:\\Users is no formula</p>"
        "<figure><img src='ok.png?captioned'><figcaption><span class='caption-number'>Fig. 1 </span>"
        "<span>Captioned.</span></figcaption></figure><img src='_images/uncaptioned.png'>"
        "<img src='http://cdn.example.invalid/outside.png'>"
        "<div class='cell tag_solution'><pre>answer = 42</pre></div>"
        "<details class='sd-dropdown'><summary>Solution</summary><div class='cell tag_solution'><pre>hidden</pre>"
        "</div></details><div class='cell tag_stub'><pre>answer = None</pre></div></body></html>")
    srv = BookServer(tmp_path)
    try:
        target, session = open_page(browser, srv.base + "broken.html")
        info = inspect(browser, session)
        events = [e for e in browser.events if e.get("sessionId") == session]
        browser.call("Target.closeTarget", {"targetId": target})
    finally:
        srv.close()
    sizes = {i["src"]: (i["width"], i["height"]) for i in info["images"]}
    assert sizes["ok.png"] == (1, 1) and sizes["_images/missing.png"] == (0, 0)
    assert info["untypeset"] == ["\\(\\operatorname{Linear}(x)\\)"] and not info["mathjax"]
    assert set(info["rawTex"]) == {"\\(", "\\operatorname", "\\)"}, info["rawTex"]
    assert info["uncaptioned"] == ["_images/missing.png", "_images/uncaptioned.png"]
    assert external_requests(events, srv.base) == ["http://cdn.example.invalid/outside.png"]
    assert [p.strip() for p in info["buildPaths"]] == ["/tmp/survmamba_x/run"]
    assert len(info["errorOutputs"]) == 1 and info["bodyHasTraceback"]
    assert [bool(ERROR_TEXT.search(t)) for t in info["stderr"]] == [True]
    assert info["rawTables"] == ["| a | b | |---|---| | 1 | 2 |", "| a | b | |\u2014|\u2014|"]
    assert info["solutionCells"] == 2 and info["solutionsShown"] == ["answer = 42"] and info["stubCells"] == 1
    local, _ = network_problems(events, srv.base)
    assert any("404" in p and "missing.png" in p for p in local), local
    assert (404, "/_images/missing.png") in srv.log
