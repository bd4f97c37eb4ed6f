"""The built site as a reader's browser shows it: headless Chromium driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: no package beyond the standard library), plus a static check of every in-site link.

:func:`check_site` loads every page and reports, per page, the console errors and uncaught exceptions (failed
loads included), the images that did not load, the equations MathJax did not typeset (raw TeX left), and the
links whose page or section does not exist.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# run in the page once it has loaded: waits for MathJax's first typesetting and for every image, then reports
REPORT_JS = """(async () => {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) { try { await mj.startup.promise; } catch (e) {} }
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  const settled = i => i.complete ? null : new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); });
  await Promise.race([Promise.all(imgs.map(settled)), new Promise(r => setTimeout(r, 10000))]);
  const math = [...document.querySelectorAll('.math')];
  return JSON.stringify({
    broken_images: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    raw_tex: math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.trim().slice(0, 80)),
    equations: math.length,
  });
})()"""


def find_chromium() -> str | None:
    """A Chromium on this machine: ``$LTDD_CHROMIUM``, else the first of the usual names on the PATH."""
    if os.environ.get("LTDD_CHROMIUM"):
        return os.environ["LTDD_CHROMIUM"]
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


class Browser:
    """One headless Chromium; :meth:`load` opens a page in a fresh tab and returns what it saw."""

    def __init__(self, executable: str, timeout: float = 60.0):
        self.timeout, self._id, self._buf = timeout, 0, b""
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds_3_and_4():        # Chromium reads commands on fd 3 and writes replies on fd 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)
        self._profile = tempfile.mkdtemp(prefix="ltdd-chromium-")
        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--allow-file-access-from-files", f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds_3_and_4, pass_fds=(3, 4))
        os.close(to_chrome_r)
        os.close(from_chrome_w)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            if time.time() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, events: list | None = None):
        """Send one command; return its result. Events that arrive meanwhile go to ``events``."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if events is not None:
                events.append(reply)

    def load(self, url: str) -> dict:
        """Open ``url`` in a new tab, wait for its load event, MathJax and its images; return the report of
        :data:`REPORT_JS` with ``errors`` (console errors, uncaught exceptions, failed loads)."""
        events: list = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session, events=events)
        self.send("Page.navigate", {"url": url}, session=session, events=events)
        deadline = time.time() + self.timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            events.append(self._read(deadline))
        result = self.send("Runtime.evaluate", {"expression": REPORT_JS, "awaitPromise": True, "returnByValue": True},
                           session=session, events=events)
        report = json.loads(result["result"]["value"])
        report["errors"] = [_describe(e) for e in events if _is_error(e)]
        self.send("Target.closeTarget", {"targetId": target}, events=[])
        return report


def _is_error(event: dict) -> bool:
    method, params = event.get("method"), event.get("params", {})
    return (method == "Runtime.exceptionThrown"
            or (method == "Runtime.consoleAPICalled" and params.get("type") == "error")
            or (method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error"))


def _describe(event: dict) -> str:
    p = event.get("params", {})
    if event["method"] == "Runtime.exceptionThrown":
        d = p["exceptionDetails"]
        return f"exception: {d.get('exception', {}).get('description') or d.get('text')}"
    if event["method"] == "Log.entryAdded":
        return f"{p['entry'].get('text')} {p['entry'].get('url', '')}".strip()
    return "console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(errors="replace"))
    return parser


def dead_links(page: Path, site: Path) -> list[str]:
    """The links of ``page`` (inside ``site``) to a file that does not exist or to a section its page lacks."""
    dead, parsed = [], {}
    for href in _parse(page).hrefs:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
            continue
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file() or site.resolve() not in target.parents:
            dead.append(href)
        elif parts.fragment and target.suffix == ".html":
            ids = parsed.setdefault(target, _parse(target).ids)
            if unquote(parts.fragment) not in ids:
                dead.append(href)
    return dead


def check_site(site: Path, pages: list[Path], executable: str) -> dict[str, list[str]]:
    """Per page (relative path) the problems a reader would meet; pages without problems are left out."""
    problems = {}
    with Browser(executable) as browser:
        for page in pages:
            r = browser.load(page.resolve().as_uri())
            found = ([f"console: {e}" for e in r["errors"]] + [f"image not loaded: {s}" for s in r["broken_images"]]
                     + [f"raw TeX: {t}" for t in r["raw_tex"]] + [f"dead link: {h}" for h in dead_links(page, site)])
            if found:
                problems[str(page.relative_to(site))] = found
    return problems
