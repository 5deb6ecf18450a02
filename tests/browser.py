"""Browser fixtures: Playwright driving Debian's ``chromium`` package (never a downloaded
browser), for tests of the portal and of web clients on other origins.

Use as a pytest plugin (``pytest_plugins = ["browser"]`` in a test module, or imported
by conftest): it provides

* ``browser`` (session): a headless Chromium at ``/usr/bin/chromium`` with a fresh, empty
  user-data directory — no profile, no extensions, no background traffic (updates, sync,
  QUIC) that would muddle a test recording the page's requests. Skipped, with the
  reason, when the package is absent.
* ``page`` : a new page in a new context (1280×900, zh-CN) whose every request is
  recorded in ``page.requests`` (URLs, in order) — for the "nothing leaves the
  platform's origin" checks.
* :func:`pixels_drawn` — how many pixels of a screenshot differ from a background
  colour: maps are checked by what was drawn, not by the DOM.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium missing): "
                    "apt-get install chromium to run the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev extra
        pytest.skip("the playwright Python package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        # launch() gives every run a new, empty temporary user-data dir (Playwright makes
        # and removes it); an explicit --user-data-dir is refused by launch()
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                              args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                  service_workers="block")
    pg = context.new_page()
    pg.requests = []  # type: ignore[attr-defined]
    pg.on("request", lambda r: pg.requests.append(r.url))  # type: ignore[attr-defined]
    pg.set_default_timeout(20_000)
    try:
        yield pg
    finally:
        context.close()


def _rgb(png: bytes):
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def pixels_drawn(png: bytes, background: tuple[int, int, int] | None = None,
                 tolerance: int = 12) -> int:
    """Pixels of the screenshot ``png`` farther than ``tolerance`` (in any channel) from
    ``background`` (default: the colour of the top-left pixel)."""
    img = _rgb(png)
    bg = img[0, 0] if background is None else background
    return int((abs(img - bg) > tolerance).any(axis=2).sum())


def colour_pixels(png: bytes, colour: tuple[int, int, int], tolerance: int = 40) -> int:
    """Pixels of ``png`` within ``tolerance`` (every channel) of ``colour`` — to find a
    layer's own colour among the basemap's."""
    img = _rgb(png)
    return int((abs(img - colour) <= tolerance).all(axis=2).sum())


CSP = "default-src 'self'"


def enforce_csp(page, policy: str = CSP) -> list[str]:
    """Serve every response of ``page`` with ``Content-Security-Policy: policy`` added
    (what the platform's offline middleware sends), and return the list the browser's
    CSP violations are collected into — a page that needs an inline script or style
    shows up there even before the platform sends the header itself."""
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)

    def add_header(route):
        response = route.fetch(max_redirects=0)  # the browser follows redirects itself
        headers = {**response.headers, "content-security-policy": policy}
        route.fulfill(response=response, headers=headers)

    page.route("**/*", add_header)
    return violations
