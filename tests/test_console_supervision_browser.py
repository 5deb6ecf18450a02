"""The console's supervision in a real browser (Debian's chromium through Playwright,
tests/browser.py) on a synthetic quarter (tests/supervision_fixtures.py, built in the
session database the live server reads): the bureau's dashboard draws its charts (by
pixels), files the current quarter's report and downloads its PDF; a department sees
only its own figures; a consumer rates a delivery and raises a correction, which the
owner answers in its own console; the screenshot docs/console-supervision.png."""

from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from exchange_fixtures import make_callers

pytest_plugins = ["browser"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(database_url):
    from supervision_fixtures import build_quarter

    from exchange.clock import CHINA
    from supervision.periods import current_quarter

    with psycopg.connect(database_url, autocommit=True) as conn:
        callers = make_callers(conn)
        if conn.execute("SELECT 1 FROM layer WHERE name = 'syn_parcels'").fetchone() is None:
            build_quarter(database_url)
        # a delivery to 环保 (hb) not rated yet: the rating form's
        fresh = conn.execute(
            "INSERT INTO exchange_delivery (layer_id, dept_id, mode, rows, bytes, at) SELECT "
            "l.id, d.id, 'download', 7, 700, now() FROM layer l, department d WHERE l.name = "
            "'syn_boundaries' AND d.code = 'hb' RETURNING id").fetchone()[0]
        names = dict(conn.execute("SELECT code, name FROM department").fetchall())
    assert callers["unrelated"].dept == "hb" and callers["owner"].dept == "gtzy"
    return {"callers": callers, "delivery": fresh, "names": names,
            "quarter": current_quarter(datetime.now(CHINA).date())}


def watch(page, seen: list[str] | None = None) -> list[str]:
    """CSP violations and script errors of the page (the platform sends the policy)."""
    seen = [] if seen is None else seen
    page.on("console", lambda m: seen.append(m.text)
            if "Content Security Policy" in m.text
            or (m.type == "error" and "Failed to load resource" not in m.text) else None)
    page.on("pageerror", lambda e: seen.append(f"pageerror: {e}"))
    page.on("response", lambda r: seen.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    return seen


def sign_in(page, base: str, token: str, path: str) -> None:
    page.goto(f"{base}{path}")
    assert "/console/signin" in page.url
    page.fill("#key", token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(f"{base}{path}")


def test_bureau_dashboard_draws_files_a_report_and_downloads_its_pdf(page, live_server,
                                                                     world):
    from browser import colour_pixels, pixels_drawn
    from pypdf import PdfReader

    problems = watch(page)
    with page.expect_response(lambda r: "/supervision/figures" in r.url) as answer:
        sign_in(page, live_server, world["callers"]["admin"].token, "/console/supervision")
    fig = answer.value.json()
    assert fig["scope"] == "city" and fig["period"]["label"] == world["quarter"]
    page.wait_for_selector("body[data-charts=drawn]", timeout=30_000)
    page.wait_for_selector("body[data-reports=listed]")
    timeliness = page.locator("#chart-timeliness").screenshot()
    assert pixels_drawn(timeliness, background=(255, 255, 255)) > 2_000
    on_time = fig["sections"]["timeliness"]["total"]["on_time"]
    assert on_time > 0 and colour_pixels(timeliness, (0x2E, 0x7D, 0x32), 30) > 200
    for chart in ("#chart-requests", "#chart-exchange", "#chart-corrections", "#chart-quality"):
        assert pixels_drawn(page.locator(chart).screenshot(), (255, 255, 255)) > 1_000, chart
    # the headline is the API's figure; the ranking names every ranked department
    t = fig["sections"]["timeliness"]["total"]
    assert f"{t['on_time']}/{t['obligations']}" in page.locator("#fig-timeliness").inner_text()
    ranked = page.locator("#ranking tbody tr").evaluate_all("rs => rs.map(r => r.dataset.dept)")
    assert ranked == [r["dept"] for r in fig["ranking"]] and "gtzy" in ranked
    assert world["names"]["gtzy"] in page.locator("#ranking").inner_text()
    # the overdue list: syn_bus (weekly, published once on 11-02) is long overdue
    assert page.locator("#overdue tr[data-resource=syn_bus]").count() == 1

    page.select_option("#report-period", world["quarter"])
    with page.expect_response(lambda r: r.url.endswith("/supervision/reports")
                              and r.request.method == "POST", timeout=120_000) as filed:
        page.click("#report-form button[type=submit]")
    assert filed.value.status == 201, filed.value.text()
    report = filed.value.json()["id"]
    page.wait_for_selector(f"#reports tr[data-report='{report}']")
    assert world["quarter"] in page.locator(f"#reports tr[data-report='{report}']").inner_text()
    with page.expect_download() as download:
        page.click(f"#reports tr[data-report='{report}'] a[href$='.pdf']")
    body = Path(download.value.path()).read_bytes()
    assert body.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages)
    assert world["names"]["gtzy"] in text and world["names"]["sw"] in text
    assert problems == []

    page.evaluate("window.scrollTo(0, 0)")
    shot = page.screenshot(full_page=True)
    assert pixels_drawn(shot) > 50_000
    if os.environ.get("JMGEO_WRITE_SCREENSHOTS"):  # the README's picture, on request only
        (REPO / "docs" / "console-supervision.png").write_bytes(shot)


def test_a_department_sees_only_its_own_figures(page, live_server, world, database_url):
    problems = watch(page)
    owner = world["callers"]["owner"]
    with page.expect_response(lambda r: "/supervision/figures" in r.url) as answer:
        sign_in(page, live_server, owner.token, "/console/supervision")
    fig = answer.value.json()
    page.wait_for_selector("body[data-charts=drawn]", timeout=30_000)
    assert fig["scope"] == "gtzy"
    for section in fig["sections"].values():
        assert set(section["by_dept"]) <= {"gtzy"}
    ranked = page.locator("#ranking tbody tr").evaluate_all("rs => rs.map(r => r.dataset.dept)")
    assert ranked == ["gtzy"]
    overdue = page.locator("#overdue tr[data-resource]").evaluate_all(
        "rs => rs.map(r => r.dataset.resource)")
    assert "syn_bus" not in overdue  # 交通's, not 国土's
    assert page.locator("#reports").count() == 0  # the filed reports are the bureau's
    # the headline is the department's own figure, not the city's
    own = fig["sections"]["timeliness"]["by_dept"]["gtzy"]
    assert page.locator("#fig-timeliness").inner_text().endswith(
        f"（{own['on_time']}/{own['obligations']}）")
    from supervision import figures
    from supervision.periods import parse_period

    with psycopg.connect(database_url, autocommit=True) as conn:
        city = figures.compute(conn, parse_period(world["quarter"]))
    total = city["sections"]["timeliness"]["total"]
    assert (own["on_time"], own["obligations"]) != (total["on_time"], total["obligations"])
    assert problems == []


def test_a_correction_raised_in_the_console_is_answered_by_the_owner(browser, live_server,
                                                                      world):
    consumer = browser.new_context(locale="zh-CN").new_page()
    owner = browser.new_context(locale="zh-CN").new_page()
    problems = watch(owner, watch(consumer))
    description = f"宗地名称与登记簿不一致（浏览器测试 {datetime.now():%H%M%S%f}）"
    try:
        sign_in(consumer, live_server, world["callers"]["unrelated"].token, "/console/feedback")
        rate = f"#deliveries tr[data-delivery='{world['delivery']}']"
        consumer.select_option(f"{rate} select[name=score]", "3")
        consumer.fill(f"{rate} input[name=comment]", "范围完整，部分属性为空")
        consumer.click(f"{rate} button[type=submit]")
        consumer.wait_for_url(f"**/console/feedback?done=rate%3A{world['delivery']}")
        assert "★★★☆☆" in consumer.locator(rate).inner_text()

        consumer.select_option("#correction-resource", "syn_parcels")
        consumer.fill("#correction-form input[name=field]", "name")
        consumer.fill("#correction-form input[name=record_key]", "P-002")
        consumer.fill("#correction-description", description)
        consumer.click("#correction-form button[type=submit]")
        consumer.wait_for_url("**/console/feedback?done=correction")
        mine = consumer.locator("#correction-raised tr", has_text=description)
        assert mine.count() == 1 and "待答复" in mine.inner_text()
        ticket = mine.get_attribute("data-ticket")
        # a wrong field is the API's own refusal, shown in the form
        consumer.fill("#correction-form input[name=field]", "no_such_field")
        consumer.fill("#correction-description", "字段不存在")
        consumer.click("#correction-form button[type=submit]")
        error = consumer.locator("#correction-form .error")
        error.wait_for(state="visible")
        assert "no_such_field" in error.inner_text()

        sign_in(owner, live_server, world["callers"]["owner"].token, "/console/feedback")
        row = owner.locator(f"#correction-inbox tr[data-ticket='{ticket}']")
        assert description in row.inner_text() and "P-002" in row.inner_text()
        row.locator("input[value=not_error]").check()
        row.locator("input[name=reason]").fill("经核实与不动产登记簿一致")
        row.locator("button[type=submit]").click()
        owner.wait_for_url(f"**/console/feedback?done=answer-correction%3A{ticket}")
        answered = owner.locator(f"#correction-inbox tr[data-ticket='{ticket}']")
        assert "经核实与不动产登记簿一致" in answered.inner_text()
        assert answered.locator("form").count() == 0

        consumer.goto(f"{live_server}/console/feedback")
        assert "经核实与不动产登记簿一致" in consumer.locator(
            f"#correction-raised tr[data-ticket='{ticket}']").inner_text()
        # the consumer cannot answer tickets of resources it does not own: no form for it
        assert consumer.locator(f"#correction-inbox tr[data-ticket='{ticket}']").count() == 0
    finally:
        consumer.context.close()
        owner.context.close()
    # the refused correction (422) is the one failed answer
    assert [p for p in problems if not p.startswith("422 ")] == [], problems
