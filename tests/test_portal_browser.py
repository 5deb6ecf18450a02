"""The open portal in a real browser (Debian's chromium through Playwright): the base
layout, the language toggle, keyboard navigation and the CSP rules every page keeps."""

from __future__ import annotations

pytest_plugins = ["browser"]

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
    page.evaluate("() => document.body.focus()")
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
