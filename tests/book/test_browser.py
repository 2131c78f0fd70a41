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
    requests, failed, console_errors = [], [], []
    page = browser.new_page()
    page.set_default_timeout(120_000)  # generous: CI machines have 2 busy cores
    page.on("request", lambda r: requests.append(r.url))
    # A file the site does not ship (a MathJax font or extension, say) answers 404.
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
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
    assert not failed, f"{toc_docname}: requests the site could not answer: {failed}"
    assert not console_errors, f"{toc_docname}: console errors: {console_errors}"


# Layout checks, run in the page at the current viewport. Collapsed outputs are opened first so
# that what they hide is measured too. Each list names the offending elements.
LAYOUT = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const main = document.querySelector('main') || document.body;
  const label = el => (el.id || el.closest('[id]')?.id || '') + ': ' +
    (el.textContent || el.getAttribute('src') || '').trim().replace(/\\s+/g, ' ').slice(0, 60);
  const wider = el => el.scrollWidth > el.clientWidth + 1;
  const displays = Array.from(main.querySelectorAll('div.math, mjx-container[display="true"]'));
  const code = Array.from(main.querySelectorAll('pre'));
  const imgs = Array.from(main.querySelectorAll('img'));
  const pathlike = /(^|\\/)[\\w.-]+\\.(png|jpe?g|svg|gif|webp)$|^[0-9a-f]{16,}|^_images\\//i;
  const captionOf = img => {
    const fig = img.closest('figure');
    const cap = fig && fig.querySelector('figcaption');
    return cap ? cap.textContent.trim() : '';
  };
  return {
    wideMath: displays.filter(wider).map(label),
    wideCode: code.filter(wider).map(label),
    uncaptioned: imgs.filter(img => !captionOf(img)).map(label),
    badAlt: imgs.filter(img => {
      const alt = (img.getAttribute('alt') || '').trim();
      return !alt || pathlike.test(alt) || alt === img.getAttribute('src');
    }).map(label),
    shrunk: imgs.filter(img => {
      const shown = img.getBoundingClientRect().width;
      return shown > 0 && img.naturalWidth > 1.6 * shown;
    }).map(img => `${label(img)} (${img.naturalWidth} px shown at ` +
                  `${Math.round(img.getBoundingClientRect().width)} px)`),
    gpuPlaceholder: (main.innerText || '').includes('No GPU here'),
  };
}"""

WIDE, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def layout_problems(page):
    """What reads badly on a loaded page: at 1280 px everything, at 390 px the displays (code
    may scroll sideways on a phone). Returns ``{check: [offending elements]}``, empty if none."""
    page.set_viewport_size(WIDE)
    page.evaluate(MATH_STATE)
    page.evaluate(BROKEN_IMAGES)
    wide = page.evaluate(LAYOUT)
    page.set_viewport_size(PHONE)
    phone = page.evaluate(LAYOUT)
    page.set_viewport_size(WIDE)
    found = {
        "display wider than its container at 1280 px": wide["wideMath"],
        "display wider than its container at 390 px": phone["wideMath"],
        "code wider than its container at 1280 px": wide["wideCode"],
        "image outside a captioned <figure>": wide["uncaptioned"],
        "image whose alt text is missing or a path": wide["badAlt"],
        "image shrunk to unreadable (natural > 1.6x shown)": wide["shrunk"],
        'GPU placeholder ("No GPU here") on the page': ["page text"]
        if wide["gpuPlaceholder"]
        else [],
    }
    return {check: where for check, where in found.items() if where}


def screenshot(page, name):
    """Full-page screenshots at both widths into DESCENT_SCREENSHOTS, if it names a folder."""
    if not SCREENSHOTS:
        return
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    for size in (WIDE, PHONE):
        page.set_viewport_size(size)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}-{size['width']}.png"), full_page=True)
    page.set_viewport_size(WIDE)


def test_every_toc_page_reads_well(site, browser, toc_docname):
    """Does this page fit its column at 1280 px and on a 390 px phone, with every figure
    numbered and captioned, legible, described by alt text, and no GPU placeholder?"""
    page = browser.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(f"{site}/{toc_docname}.html", wait_until="load")
        problems = layout_problems(page)
        screenshot(page, toc_docname.replace("/", "--"))
    finally:
        page.close()
    report = "\n".join(f"- {check}: {where}" for check, where in problems.items())
    assert not problems, f"{toc_docname} reads badly:\n{report}"


def wrong_on_purpose(folder):
    """A page with one instance of every defect the layout checks look for, and the same page
    done right; returns the two file names. The "display" is a plain wide box in ``div.math``
    (the checks measure boxes, not MathJax), the image a 2000 px PNG drawn by matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    plt.imsave(folder / "wide.png", np.zeros((40, 2000)), cmap="gray")
    plt.imsave(folder / "small.png", np.zeros((40, 300)), cmap="gray")
    css = "main { width: 600px; } pre { overflow-x: auto; } div.math { overflow-x: auto; }"
    bad = f"""<!doctype html><html><head><style>{css}</style></head><body><main>
      <div class="math" id="eq-bad"><span style="display:inline-block;width:900px">x</span></div>
      <pre id="code-bad">{"x = 1  # " + "a long comment " * 12}</pre>
      <img id="no-figure" src="small.png" alt="A black bar.">
      <figure><img id="path-alt" src="small.png" alt="_images/0123abcd.png">
        <figcaption>Fig. 1</figcaption></figure>
      <figure><img id="shrunk" src="wide.png" alt="A black bar." style="width:500px">
        <figcaption>Fig. 2</figcaption></figure>
      <p>No GPU here: this section runs when CUDA is present.</p>
    </main></body></html>"""
    good = f"""<!doctype html><html><head><style>{css}</style></head><body><main>
      <div class="math"><span style="display:inline-block;width:300px">x</span></div>
      <pre>x = 1</pre>
      <figure><img src="small.png" alt="A black bar."><figcaption>Fig. 1</figcaption></figure>
      <p>On a GPU this section compares the two devices.</p>
    </main></body></html>"""
    (folder / "bad.html").write_text(bad)
    (folder / "good.html").write_text(good)
    return "bad.html", "good.html"


def test_layout_checks_fail_a_page_made_wrong_on_purpose(browser, tmp_path):
    """Does each layout check flag its defect on a bad page, and pass the same page done right?"""
    bad, good = wrong_on_purpose(tmp_path)
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    page = browser.new_page()
    try:
        page.goto(f"{base}/{bad}", wait_until="load")
        flagged = layout_problems(page)
        page.goto(f"{base}/{good}", wait_until="load")
        clean = layout_problems(page)
    finally:
        page.close()
        server.shutdown()
        server.server_close()
    expected = {
        "display wider than its container at 1280 px": "eq-bad",
        "display wider than its container at 390 px": "eq-bad",
        "code wider than its container at 1280 px": "code-bad",
        "image outside a captioned <figure>": "no-figure",
        "image whose alt text is missing or a path": "path-alt",
        "image shrunk to unreadable (natural > 1.6x shown)": "shrunk",
        'GPU placeholder ("No GPU here") on the page': "page text",
    }
    for check, culprit in expected.items():
        assert any(culprit in where for where in flagged.get(check, [])), (check, flagged)
    assert set(flagged) == set(expected), flagged
    assert clean == {}, clean
