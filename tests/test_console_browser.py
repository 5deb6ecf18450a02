"""The department console in a real browser (Debian's chromium through Playwright, the
portal's fixtures in tests/browser.py) against the platform served by uvicorn: sign in
with a key, upload a file and read the load report (and the loader's message when the
file is bad), file a share request as one department and approve it as the owner until
the data is visible to the first, keep a form across an expired session, refuse a
cross-site form post, the session cookie's flags, and the screenshot docs/console.png
(written when JMGEO_WRITE_SCREENSHOTS is set)."""

from __future__ import annotations

import json
import os
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from exchange_fixtures import fresh_resource, make_callers

pytest_plugins = ["browser"]

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data" / "realworld"
if not SHARED.exists():  # a worktree beside /work/main
    SHARED = Path("/work/shared/data/realworld")


@pytest.fixture(scope="module")
def world(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        callers = make_callers(conn)
        resource = fresh_resource(conn, "conditional", "cb")
    return {"callers": callers, "resource": resource}


def csp_violations(page) -> list[str]:
    """The page's Content-Security-Policy violations (the platform sends the header on
    every console page itself)."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text)
            if "Content Security Policy" in m.text else None)
    return seen


def sign_in(page, base: str, token: str, path: str = "/console") -> None:
    page.goto(f"{base}{path}")
    assert "/console/signin" in page.url  # no session yet: the sign-in page, next kept
    page.fill("#key", token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(f"{base}{path}")


def small_geojson(path: Path) -> Path:
    """Three shelters (人防疏散点) in 蓬江区 and 台山市, WGS 84 — a file as a department has."""
    features = [{"type": "Feature", "properties": {"name": n, "capacity": c},
                 "geometry": {"type": "Point", "coordinates": xy}}
                for n, c, xy in (("北街人防疏散点", 800, [113.08, 22.58]),
                                 ("白沙人防疏散点", 450, [113.07, 22.61]),
                                 ("台城人防疏散点", 1200, [112.79, 22.25]))]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features},
                               ensure_ascii=False), encoding="utf-8")
    return path


def test_sign_in_upload_report_and_cookie_flags(page, live_server, world, tmp_path):
    violations = csp_violations(page)
    sign_in(page, live_server, world["callers"]["owner"].token, "/console/resources")
    cookie = next(c for c in page.context.cookies() if c["name"] == "jmgeo_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # http here; https (JMGEO_PUBLIC_URL) adds Secure
    assert world["callers"]["owner"].token not in cookie["value"]
    assert page.evaluate("document.cookie").find("jmgeo_session") == -1  # HttpOnly
    layer = f"tx_console_upload_{tmp_path.name[-6:].lower().replace('-', '_')}"
    page.set_input_files("#upload-form input[name=file]",
                         str(small_geojson(tmp_path / "shelters.geojson")))
    page.fill("#upload-form input[name=layer]", layer)
    page.fill("#upload-form input[name=title]", "人防疏散点（控制台上传）")
    page.fill("#upload-form input[name=theme]", "civil_defence")
    page.select_option("#upload-form select[name=sharing]", "open")
    with page.expect_response(f"{live_server}/layers/upload", timeout=60_000) as answer:
        page.click("#upload-form button[type=submit]")
    assert answer.value.status == 201, answer.value.text()
    report = page.locator("#upload-report")
    report.wait_for(state="visible", timeout=60_000)
    page.wait_for_selector("#report-facts dd")
    text = report.inner_text()
    assert layer in text and "3" in text
    assert page.locator("#upload-progress").evaluate("p => p.value") == 100
    # the new resource is one of mine, with its version and report
    page.click("#report-link")
    page.wait_for_url(f"{live_server}/console/resources/{layer}")
    assert page.locator("#current-version").inner_text() == "1"
    assert violations == []


def test_a_failed_upload_shows_the_loaders_message(page, live_server, world, tmp_path):
    """A shapefile without its .shp (a real file from the shared data): the loader's
    own message, in the page."""
    sign_in(page, live_server, world["callers"]["owner"].token, "/console/resources")
    archive = tmp_path / "county_2004.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in sorted((SHARED / "missing-shp-county2004").iterdir()):
            z.write(part, part.name)
    page.set_input_files("#upload-form input[name=file]", str(archive))
    page.fill("#upload-form input[name=layer]", "tx_console_broken")
    page.fill("#upload-form input[name=theme]", "land")
    page.click("#upload-form button[type=submit]")
    error = page.locator("#upload-error")
    error.wait_for(state="visible", timeout=60_000)
    message = error.inner_text()
    assert ".shp" in message and " / " in message  # the loader's bilingual line
    assert page.locator("#upload-report").is_hidden()


def test_request_approved_by_the_owner_makes_the_data_visible(browser, live_server, world):
    resource = world["resource"]
    items = f"{live_server}/ogc/collections/{resource}/items?f=json"
    applicant = browser.new_context(locale="zh-CN").new_page()
    owner = browser.new_context(locale="zh-CN").new_page()
    try:
        sign_in(applicant, live_server, world["callers"]["applicant"].token)
        assert applicant.goto(items).status == 404  # conditional, no grant: hidden
        applicant.goto(f"{live_server}/console/requests/new?resource={resource}")
        applicant.fill("#purpose", "蓬江区控制性详细规划编制（浏览器测试）")
        applicant.check("#request-form input[name=regions][value='440703']")
        applicant.click("#request-form button[type=submit]")
        applicant.wait_for_selector("#done")
        request_url = applicant.url.split("?")[0]
        assert applicant.locator("#status").inner_text() == "submitted"

        sign_in(owner, live_server, world["callers"]["owner"].token,
                "/console/requests?box=inbox")
        owner.click(f"#requests a[href='{request_url[len(live_server):]}']")
        owner.check("#answer-form input[value=approve_part]")
        owner.uncheck("#answer-form input[name=fields][value=qlr]")  # no 权利人
        owner.click("#answer-form button[type=submit]")
        owner.wait_for_selector("#done")
        assert owner.locator("#status").inner_text() == "partly_approved"

        response = applicant.goto(items)
        assert response.status == 200
        body = json.loads(applicant.locator("body").inner_text())
        assert body["features"], body
        assert all("qlr" not in f["properties"] for f in body["features"])
        applicant.goto(f"{live_server}/console/usable")
        assert resource in applicant.locator("#usable").inner_text()
    finally:
        applicant.context.close()
        owner.context.close()


def test_an_expired_session_keeps_the_form(page, live_server, world, database_url):
    resource = world["resource"]
    form = f"/console/requests/new?resource={resource}"
    sign_in(page, live_server, world["callers"]["applicant"].token, form)
    purpose = "学校布点规划（会话过期后保留）"
    page.fill("#purpose", purpose)
    page.fill("#request-form input[name=contact]", "张工 0750-1234567")
    with psycopg.connect(database_url, autocommit=True) as conn:  # the session ends
        conn.execute("UPDATE console_session SET expires_at = now() - interval '1 second'")
    page.click("#request-form button[type=submit]")
    page.wait_for_selector("#expired")
    assert "/console/signin" in page.url
    page.fill("#key", world["callers"]["applicant"].token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("[data-restored]")
    assert page.url == f"{live_server}{form}"
    assert page.input_value("#purpose") == purpose
    assert page.input_value("#request-form input[name=contact]") == "张工 0750-1234567"
    page.click("#request-form button[type=submit]")
    page.wait_for_selector("#done")
    assert purpose in page.locator("#request-facts").inner_text()


class _Attacker(BaseHTTPRequestHandler):
    """Another site's page that posts a form to the platform as soon as it loads."""

    target = ""

    def do_GET(self):  # noqa: N802 — http.server's spelling
        body = (f'<form id="f" method="post" action="{self.target}/console/subscriptions">'
                '<input name="url" value="http://attacker.example/hook"></form>'
                '<script>document.getElementById("f").submit()</script>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_cross_site_form_post_is_refused(page, live_server, world, database_url):
    sign_in(page, live_server, world["callers"]["unrelated"].token)

    def count() -> int:
        with psycopg.connect(database_url) as conn:
            return conn.execute("SELECT count(*) FROM subscription WHERE url = "
                                "'http://attacker.example/hook'").fetchone()[0]

    before = count()
    handler = type("Attacker", (_Attacker,), {"target": live_server})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # the same site (127.0.0.1, another port): SameSite lets the cookie go along, the
        # Origin check and the missing CSRF token refuse the post
        with page.expect_response(f"{live_server}/console/subscriptions") as posted:
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert posted.value.status == 403
        # another site (localhost): SameSite=Strict keeps the cookie home
        with page.expect_response(f"http://localhost:{live_server.rsplit(':', 1)[1]}"
                                  "/console/subscriptions") as posted:
            handler.target = live_server.replace("127.0.0.1", "localhost")
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert posted.value.status in (303, 403)
    finally:
        server.shutdown()
    assert count() == before


def test_console_screenshot(page, live_server, world):
    """The console as a department sees it, for the README (the supervision dashboard's
    own tests are tests/test_console_supervision_browser.py)."""
    from browser import pixels_drawn

    violations = csp_violations(page)
    sign_in(page, live_server, world["callers"]["owner"].token,
            "/console/requests?box=inbox")
    shot = page.screenshot(full_page=True)
    assert pixels_drawn(shot) > 10_000
    assert violations == []
    if os.environ.get("JMGEO_WRITE_SCREENSHOTS"):  # the README's picture, on request only
        (REPO / "docs" / "console.png").write_bytes(shot)
