"""The built site in a real browser (Debian's chromium, headless, offline).

Every page of the table of contents is loaded from a server on 127.0.0.1 and must render its math
with the site's own MathJax, load every image, make no request to another host and log no error.
"""

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
# The flags the course's CI uses: headless, no sandbox (root in a container), and nothing that
# phones home (background networking, component updates, sync, QUIC).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots of every page land here when DESCENT_SCREENSHOTS names a folder.
SCREENSHOTS = os.environ.get("DESCENT_SCREENSHOTS")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),  # the first test may pay for the session's book build
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed"),
]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def site(book_build):
    """The built HTML served on 127.0.0.1 at a free port; yields the base URL."""
    if not (book_build.html / "index.html").exists():
        pytest.fail("the build produced no site:\n" + book_build.log[-4000:])
    handler = functools.partial(QuietHandler, directory=str(book_build.html))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A persistent chromium context with a fresh user-data-dir."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
            service_workers="block",
        )
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


# Wait for MathJax to finish typesetting (it starts after DOMContentLoaded), then report.
MATH_STATE = """async () => {
  const hasMath = document.querySelector('.math, .MathJax_Preview, span.math, div.math') !== null;
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  return {
    hasMath,
    mathjax: !!(window.MathJax && MathJax.version),
    containers: document.querySelectorAll('mjx-container').length,
    errors: Array.from(document.querySelectorAll('mjx-merror')).map(e => e.textContent),
  };
}"""

# Load every image (lazy ones too) and list those that did not decode.
BROKEN_IMAGES = """async () => {
  const imgs = Array.from(document.images);
  for (const img of imgs) { img.loading = 'eager'; }
  await Promise.all(imgs.map(img => img.complete ? null :
    new Promise(done => { img.onload = done; img.onerror = done; })));
  return imgs.filter(img => !(img.naturalWidth > 0)).map(img => img.getAttribute('src'));
}"""


def test_every_toc_page_renders_offline(site, browser, toc_docname):
    """Does this page render its math and images with no request off 127.0.0.1 and no error?"""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    host = urlparse(site).netloc
    requests, console_errors = [], []
    page = browser.new_page()
    page.set_default_timeout(120_000)  # generous: CI machines have 2 busy cores
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: console_errors.append(f"uncaught: {e}"))
    page.on(
        "console",
        lambda m: (
            console_errors.append(f"{m.text} @ {m.location.get('url')}")
            if m.type == "error"
            else None
        ),
    )
    try:
        response = page.goto(f"{site}/{toc_docname}.html", wait_until="load")
        assert response is not None and response.ok, f"{toc_docname}: HTTP error"
        math = page.evaluate(MATH_STATE)
        broken = page.evaluate(BROKEN_IMAGES)
        try:  # let late requests (fonts, lazy scripts) happen, so they are checked below
            page.wait_for_load_state("networkidle", timeout=10_000)
        except PlaywrightTimeout:
            pass  # a busy machine: every request recorded so far is still checked
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            name = toc_docname.replace("/", "--") + ".png"
            page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)
    finally:
        page.close()

    offsite = [u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")]
    offsite = [u for u in offsite if urlparse(u).netloc != host]
    assert not offsite, f"{toc_docname} requested other hosts: {offsite}"
    if math["hasMath"]:
        assert math["mathjax"], f"{toc_docname}: the site's MathJax did not load"
        assert math["containers"] > 0, f"{toc_docname}: math on the page was not typeset"
    assert not math["errors"], f"{toc_docname}: MathJax errors {math['errors']}"
    assert not broken, f"{toc_docname}: images that did not load: {broken}"
    assert not console_errors, f"{toc_docname}: console errors: {console_errors}"
