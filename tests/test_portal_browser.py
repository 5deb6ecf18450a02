"""The open portal in a real browser (Debian's chromium through Playwright): the base
layout, the language toggle, keyboard navigation and the CSP rules every page keeps."""

from __future__ import annotations

pytest_plugins = ["browser", "portal_fixtures"]

NO_INLINE = """() => ({
  inlineScripts: [...document.scripts].filter(s => !s.src).length,
  styleAttrs: document.querySelectorAll('[style]').length,
  styleTags: document.querySelectorAll('style').length,
  handlers: [...document.querySelectorAll('*')].filter(e =>
      [...e.attributes].some(a => a.name.startsWith('on'))).length,
})"""


def test_base_layout_chinese_first_with_english_toggle(page, live_server):
    from browser import enforce_csp

    violations = enforce_csp(page)
    page.goto(f"{live_server}/")
    assert page.url.endswith("/portal/")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "开放门户" in page.title()
    nav = page.get_by_role("navigation", name="主导航")
    assert nav.get_by_role("link", name="数据目录").is_visible()
    assert page.evaluate(NO_INLINE) == {"inlineScripts": 0, "styleAttrs": 0,
                                        "styleTags": 0, "handlers": 0}
    page.get_by_role("link", name="Switch to English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("navigation", name="Main navigation").is_visible()
    # the choice is kept (cookie): the next page is English without ?lang=
    page.goto(f"{live_server}/portal/")
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("link", name="切换到中文").click()
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert violations == []


def test_keyboard_reaches_skip_link_and_nav(page, live_server):
    page.goto(f"{live_server}/portal/")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent.trim()")
    assert focused == "跳到正文"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    names = []
    page.goto(f"{live_server}/portal/")  # focus starts over: skip link, brand, toggle, nav
    for _ in range(8):
        page.keyboard.press("Tab")
        names.append(page.evaluate("() => document.activeElement.textContent.trim()"))
    assert "数据目录" in names and "行政区划" in names


def test_phone_screen_has_no_horizontal_scroll(browser, live_server):
    ctx = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN",
                              is_mobile=True)
    try:
        pg = ctx.new_page()
        pg.goto(f"{live_server}/portal/")
        assert pg.evaluate("() => document.documentElement.scrollWidth") <= 360
    finally:
        ctx.close()


def test_unknown_portal_page_is_the_portal_404(page, live_server):
    response = page.goto(f"{live_server}/portal/no/such/page")
    assert response.status == 404
    assert page.get_by_role("heading", name="页面不存在").is_visible()


# -- the journey: search → dataset → map → download -------------------------------------

WATER = (0x1F, 0x78, 0xB4)  # layers.styles.THEME_COLOURS["water"]: the rivers' colour


def wait_for_map(page, timeout: float = 30_000) -> None:
    """Until map.js says the map is idle (everything requested was drawn), or failed."""
    page.wait_for_function(
        "() => { const m = document.getElementById('map');"
        " return m && (m.dataset.state === 'idle' || m.dataset.error); }", timeout=timeout)
    error = page.get_attribute("#map", "data-error")
    assert error is None, f"the map failed: {error}"


def test_search_dataset_map_and_geopackage_download(page, site, portal_world, tmp_path):
    import pyogrio
    from browser import colour_pixels, enforce_csp, pixels_drawn

    violations = enforce_csp(page)
    page.goto(f"{site}/portal/")
    page.get_by_role("searchbox").fill("河流")
    page.get_by_role("button", name="检索").click()
    page.wait_for_url("**/portal/datasets?q=*")
    page.get_by_role("link", name="河流（演示）").click()
    page.wait_for_url(f"**/portal/datasets/{portal_world['rivers']}")
    assert page.get_by_role("heading", name="河流（演示）", level=1).is_visible()
    wait_for_map(page)
    shot = page.locator("#map").screenshot()
    # the map drew: the basemap and, in the layer's own colour, the rivers
    assert pixels_drawn(shot) > 20_000
    assert colour_pixels(shot, WATER) > 1_000
    with page.expect_download() as info:
        page.get_by_role("link", name="GeoPackage").click()
    assert info.value.suggested_filename.endswith(".gpkg")
    path = tmp_path / "rivers.gpkg"
    info.value.save_as(path)
    frame = pyogrio.read_dataframe(path)
    assert len(frame) > 0 and frame.crs.to_epsg() == 4490
    assert set(frame.geom_type) <= {"LineString", "MultiLineString"}
    assert violations == []


def test_basemap_alone_has_no_layer_colour(page, site, portal_world):
    """The control of the pixel check above: the framework basemap (a region page's map)
    draws, but nothing in the rivers' colour."""
    from browser import colour_pixels, pixels_drawn

    page.goto(f"{site}/portal/regions/440703")
    wait_for_map(page)
    shot = page.locator("#map").screenshot()
    assert pixels_drawn(shot) > 20_000
    assert colour_pixels(shot, WATER) < 100
