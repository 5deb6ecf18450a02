"""Issue 12's real-client check of CORS: a page on ANOTHER origin (a tiny static site on
a second loopback port, with its own copy of MapLibre GL JS) draws an open layer from the
platform's TileJSON and default style — the style, TileJSON, tiles and glyphs are all
cross-origin fetches, which the browser refuses without the right CORS headers. Checked
by the pixels of a screenshot, in the layer's colour."""

from __future__ import annotations

import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

pytest_plugins = ["browser", "portal_fixtures"]

VENDOR = Path(__file__).resolve().parent.parent / "jmgeo" / "static" / "vendor" / "maplibre-gl"
WATER = (0x1F, 0x78, 0xB4)  # layers.styles.THEME_COLOURS["water"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>another origin</title>
<link rel="stylesheet" href="maplibre-gl.css">
<link rel="stylesheet" href="page.css">
<script type="module" src="app.js"></script></head>
<body><div id="map"></div></body></html>
"""
CSS = "html, body { margin: 0; background: #fff; } #map { width: 800px; height: 600px; }\n"
APP = """import * as maplibregl from "./maplibre-gl.mjs";
const params = new URLSearchParams(location.search);
const el = document.getElementById("map");
const map = new maplibregl.Map({ container: el, style: params.get("style"),
  center: [112.85, 22.35], zoom: 8, attributionControl: false,
  localIdeographFontFamily: "sans-serif" });
map.on("error", (e) => { el.dataset.error = String(e.error && e.error.message || e.error); });
map.once("idle", () => { el.dataset.state = "idle"; });
"""


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102 - keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory):
    """A static site on a second loopback port: the page, and MapLibre GL JS beside it."""
    if not (VENDOR / "maplibre-gl.mjs").is_file():
        pytest.skip("MapLibre GL JS is not built: run `make assets`")
    root = tmp_path_factory.mktemp("other-origin")
    (root / "index.html").write_text(PAGE, encoding="utf-8")
    (root / "page.css").write_text(CSS, encoding="utf-8")
    (root / "app.js").write_text(APP, encoding="utf-8")
    for name in ("maplibre-gl.mjs", "maplibre-gl-worker.mjs", "maplibre-gl.css"):
        shutil.copy(VENDOR / name, root / name)
    Quiet.extensions_map = {**Quiet.extensions_map, ".mjs": "text/javascript",
                            ".js": "text/javascript"}
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_another_origin_draws_an_open_layer_from_tilejson_and_style(page, site,
                                                                    other_origin):
    from browser import colour_pixels

    style = f"{site}/ogc/collections/rivers/styles/default"
    platform = "{0.scheme}://{0.netloc}".format(urlsplit(site))
    answers: dict[str, str | None] = {}
    page.on("response", lambda r: answers.__setitem__(
        r.url, r.headers.get("access-control-allow-origin")))
    page.goto(f"{other_origin}/index.html?style={quote(style, safe='')}")
    page.wait_for_function("() => { const m = document.getElementById('map');"
                           " return m.dataset.state === 'idle' || m.dataset.error; }",
                           timeout=30_000)
    assert page.get_attribute("#map", "data-error") is None
    shot = page.locator("#map").screenshot()
    assert colour_pixels(shot, WATER) > 500  # the rivers, drawn from cross-origin tiles
    from_platform = {u: v for u, v in answers.items() if u.startswith(platform)}
    assert any("/tilejson.json" in u for u in from_platform)
    assert any("/tiles/WebMercatorQuad/" in u for u in from_platform)
    assert set(from_platform.values()) == {"*"}  # anonymous, open data: any origin


def test_without_cors_the_same_page_draws_nothing(page, serve_with, portal_world,
                                                  other_origin):
    """The control: the platform with anonymous CORS switched off (JMGEO_CORS_ANONYMOUS=0)
    — the browser refuses the cross-origin style, and the map reports the error."""
    with serve_with(JMGEO_CORS_ANONYMOUS="0") as url:
        style = f"{url}/ogc/collections/rivers/styles/default"
        page.goto(f"{other_origin}/index.html?style={quote(style, safe='')}")
        page.wait_for_function("() => { const m = document.getElementById('map');"
                               " return m.dataset.state === 'idle' || m.dataset.error; }",
                               timeout=30_000)
        assert page.get_attribute("#map", "data-error") is not None
