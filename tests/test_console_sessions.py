"""Console sessions over HTTP: sign-in with a key → a cookie that is the key's own caller,
CSRF on every unsafe cookie request, expiry, idle timeout, revocation, sign-out, and the
console pages' bad input (sign-in redirects with ``next``, the one 404 page, no acting
for another department). The real app and PostGIS; the browser flows are in
tests/test_console_browser.py."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from exchange_fixtures import APPLICANT, fresh_resource, make_callers
from fastapi.testclient import TestClient
from policy_fixtures import OWNER

COOKIE = "jmgeo_session"


@pytest.fixture(scope="module")
def world(database_url):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        callers = make_callers(conn)
        conditional = fresh_resource(conn, "conditional", "cs")
    return {"callers": callers, "conditional": conditional}


@pytest.fixture
def ddb(database_url):
    """A connection whose rows are dicts."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture(scope="module")
def app(database_url):
    from jmgeo.app import create_app

    return create_app()


def client_for(app) -> TestClient:
    """A browser of its own (its own cookie jar); redirects are looked at, not followed."""
    return TestClient(app, base_url="http://testserver", follow_redirects=False)


def sign_in(app, token: str, next_url: str = "/console") -> tuple[TestClient, str]:
    """A signed-in client and its session's CSRF token (read from a page, as scripts do)."""
    client = client_for(app)
    r = client.post("/console/signin", data={"key": token, "next": next_url})
    assert r.status_code == 303, r.text
    page = client.get("/console")
    assert page.status_code == 200, page.text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text).group(1)
    return client, csrf


def test_sign_in_sets_a_secure_session_cookie_never_the_key(app, world, ddb):
    token = world["callers"]["owner"].token
    client = client_for(app)
    r = client.post("/console/signin", data={"key": token, "next": "/console/resources"})
    assert r.status_code == 303
    assert r.headers["location"] == "/console/resources"
    cookie = r.headers["set-cookie"]
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert "secure" not in flags  # served over plain http here (JMGEO_PUBLIC_URL unset)
    sid = cookie.split(";")[0].split("=", 1)[1]
    # the key's secret part (after jmk_<id>_; itself may hold "_")
    assert len(sid) >= 40 and token not in cookie and token.split("_", 2)[2] not in sid
    # the database keeps the id's hash, never the id
    row = ddb.execute("SELECT token_hash, key_id FROM console_session WHERE token_hash = %s",
                     (hashlib.sha256(sid.encode()).hexdigest(),)).fetchone()
    assert row is not None
    assert ddb.execute("SELECT count(*) AS n FROM console_session WHERE token_hash = %s",
                      (sid,)).fetchone()["n"] == 0
    audit = ddb.execute("SELECT caller, dept_code, request FROM audit_log WHERE action = "
                       "'console.signin' ORDER BY id DESC LIMIT 1").fetchone()
    assert audit["dept_code"] == OWNER and audit["request"]["path"] == "/console/signin"


def test_secure_flag_when_served_over_https(monkeypatch, fresh_settings):
    from jmgeo import sessions

    monkeypatch.setenv("JMGEO_PUBLIC_URL", "https://gis.jiangmen.gov.cn")
    fresh_settings()
    header = sessions.set_cookie_header("x" * 43)
    assert header.startswith("__Host-jmgeo_session=") and "; Secure" in header
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header


def test_wrong_key_and_key_in_url_do_not_sign_in(app, world):
    client = client_for(app)
    bad = client.post("/console/signin", data={"key": "jmk_00000000_" + "A" * 43})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    assert "密钥无效" in bad.text
    token = world["callers"]["owner"].token
    r = client.get("/console/signin", params={"key": token})  # a GET never signs in
    assert r.status_code == 200 and "set-cookie" not in r.headers


def test_next_never_leads_off_the_platform(app, world):
    token = world["callers"]["owner"].token
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = client_for(app).post("/console/signin", data={"key": token, "next": evil})
        assert r.headers["location"] == "/console"


def test_the_cookie_is_the_keys_own_caller(app, world):
    """Every API asks the same policy: the outbox by cookie = the outbox by key."""
    who = world["callers"]["applicant"]
    client, _csrf = sign_in(app, who.token)
    by_cookie = client.get("/exchange/requests", params={"box": "outbox"})
    by_key = client_for(app).get("/exchange/requests", params={"box": "outbox"},
                                 headers=who.headers)
    assert by_cookie.status_code == by_key.status_code == 200
    assert by_cookie.json() == by_key.json()
    # and an unsigned client is anonymous: 401
    assert client_for(app).get("/exchange/requests").status_code == 401


def test_csrf_guards_every_unsafe_cookie_request(app, world, ddb):
    client, csrf = sign_in(app, world["callers"]["applicant"].token)
    body = {"resource": world["conditional"], "purpose": "控规编制（CSRF 测试）"}
    before = ddb.execute("SELECT count(*) AS n FROM share_request").fetchone()["n"]
    no_token = client.post("/exchange/requests", json=body)
    assert no_token.status_code == 403 and no_token.json()["code"] == "CSRFRefused"
    wrong = client.post("/exchange/requests", json=body, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    foreign = client.post("/exchange/requests", json=body,
                          headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert foreign.status_code == 403
    cross = client.post("/exchange/requests", json=body,
                        headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert ddb.execute("SELECT count(*) AS n FROM share_request").fetchone()["n"] == before
    ok = client.post("/exchange/requests", json=body,
                     headers={"X-CSRF-Token": csrf, "Origin": "http://testserver"})
    assert ok.status_code == 201, ok.text
    # an HTML form sends the token as a field; without it the form post is refused
    form = {"resource": world["conditional"], "purpose": "表单提交（CSRF 测试）"}
    assert client.post("/console/requests/new", data=form).status_code == 403
    filed = client.post("/console/requests/new", data={**form, "csrf_token": csrf})
    assert filed.status_code == 303 and filed.headers["location"].startswith(
        "/console/requests/")
    # a key in a header is no cookie sign-in: no token needed (a foreign page cannot
    # send that header without a refused CORS preflight)
    by_key = client.post("/exchange/requests", json=body,
                         headers=world["callers"]["applicant"].headers)
    assert by_key.status_code == 201


def test_pages_without_a_session_go_to_sign_in_with_next(app):
    client = client_for(app)
    r = client.get("/console/requests", params={"box": "inbox"})
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    assert target.path == "/console/signin"
    assert parse_qs(target.query)["next"] == ["/console/requests?box=inbox"]
    assert "expired" not in parse_qs(target.query)
    client.cookies.set(COOKIE, "n" * 43)  # a cookie naming no session: ended
    r = client.get("/console/resources")
    assert parse_qs(urlsplit(r.headers["location"]).query)["expired"] == ["1"]


@pytest.mark.parametrize("clock", ["expires_at = now() - interval '1 second'",
                                   "last_seen = now() - interval '31 minutes'"])
def test_expired_or_idle_session_signs_in_again(app, world, ddb, clock):
    client, csrf = sign_in(app, world["callers"]["owner"].token)
    assert client.get("/console/resources").status_code == 200
    sid = client.cookies.get(COOKIE)
    ddb.execute(f"UPDATE console_session SET {clock} WHERE token_hash = %s",
               (hashlib.sha256(sid.encode()).hexdigest(),))
    r = client.get("/console/resources")
    assert r.status_code == 303
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["next"] == ["/console/resources"] and query["expired"] == ["1"]
    # a form posted after the end goes to sign-in too, back to the form's page
    posted = client.post("/console/subscriptions", data={"url": "http://x", "csrf_token": csrf},
                         headers={"Referer": "http://testserver/console/subscriptions"})
    assert posted.status_code == 303
    assert parse_qs(urlsplit(posted.headers["location"]).query)["next"] == [
        "/console/subscriptions"]
    # the API answers the ended session as anonymous
    assert client.get("/exchange/requests").status_code == 401


def test_a_revoked_key_ends_its_sessions(app, database_url):
    import psycopg

    from layers.identity import create_key, revoke_key

    with psycopg.connect(database_url, autocommit=True) as conn:
        key = create_key(conn, "tx-console-revoke", role="department", dept=APPLICANT)
    client, _csrf = sign_in(app, key["token"])
    assert client.get("/console/usable").status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:
        revoke_key(conn, key["prefix"])
    assert client.get("/console/usable").status_code == 303
    assert client.get("/exchange/requests").status_code == 401


def test_sign_out_ends_the_session(app, world, ddb):
    client, csrf = sign_in(app, world["callers"]["owner"].token)
    sid = client.cookies.get(COOKIE)
    refused = client.post("/console/signout")  # no token: refused, still signed in
    assert refused.status_code == 403
    r = client.post("/console/signout", data={"csrf_token": csrf})
    assert r.status_code == 303 and "Max-Age=0" in r.headers["set-cookie"]
    assert ddb.execute("SELECT count(*) AS n FROM console_session WHERE token_hash = %s",
                      (hashlib.sha256(sid.encode()).hexdigest(),)).fetchone()["n"] == 0
    assert ddb.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'console.signout'"
                      ).fetchone()["n"] >= 1
    replay = client_for(app)
    replay.cookies.set(COOKIE, sid)
    assert replay.get("/console").status_code == 303


def assert_same_404(client, hidden_path: str, missing_path: str) -> None:
    """The two pages are the one 404 page (each names only its own path, in the
    language toggle's link)."""
    hidden, missing = client.get(hidden_path), client.get(missing_path)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace(hidden_path, "<path>") == \
        missing.text.replace(missing_path, "<path>")
    assert hidden.headers["cache-control"] == missing.headers["cache-control"]


def test_hidden_pages_are_the_missing_page(app, world, ddb):
    """Another department's resource and request look exactly like ones that do not exist."""
    owner, _ = sign_in(app, world["callers"]["owner"].token)
    other, _ = sign_in(app, world["callers"]["unrelated"].token)
    name = world["conditional"]
    assert owner.get(f"/console/resources/{name}").status_code == 200
    assert_same_404(other, f"/console/resources/{name}", "/console/resources/no_such_one")
    req = ddb.execute("SELECT max(id) AS id FROM share_request").fetchone()["id"]
    if req is not None:  # one filed above by the applicant (gh): not hb's to see
        assert_same_404(other, f"/console/requests/{req}", "/console/requests/2147483000")


def test_no_acting_for_another_department(app, world, ddb, database_url):
    import psycopg

    from exchange import requests as xr
    from jmgeo.auth import caller_for_token

    with psycopg.connect(database_url, autocommit=True) as conn:
        req = xr.file_request(conn, caller_for_token(world["callers"]["applicant"].token),
                              resource=world["conditional"], purpose="规划编制（越权测试）")
    other, csrf = sign_in(app, world["callers"]["unrelated"].token)
    r = other.post(f"/console/requests/{req['id']}/answer",
                   data={"decision": "approve", "csrf_token": csrf})
    assert r.status_code == 404
    # not even the applicant answers its own request
    applicant, csrf_a = sign_in(app, world["callers"]["applicant"].token)
    r = applicant.post(f"/console/requests/{req['id']}/answer",
                       data={"decision": "approve", "csrf_token": csrf_a})
    assert r.status_code in (403, 404) or "error" in r.text
    status = ddb.execute("SELECT status FROM share_request WHERE id = %s",
                        (req["id"],)).fetchone()["status"]
    assert status == "submitted"
    # another department's layer: no rollback, no upload
    version = ddb.execute("SELECT current_version FROM layer WHERE name = %s",
                         (world["conditional"],)).fetchone()["current_version"]
    r = other.post(f"/console/resources/{world['conditional']}/rollback",
                   data={"version": "1", "csrf_token": csrf})
    assert r.status_code == 404
    assert ddb.execute("SELECT current_version FROM layer WHERE name = %s",
                      (world["conditional"],)).fetchone()["current_version"] == version
    up = other.post("/layers/upload", headers={"X-CSRF-Token": csrf},
                    data={"dept": OWNER, "layer": "tx_cs_hijack", "theme": "land",
                          "sharing": "open"},
                    files={"file": ("a.geojson", b'{"type":"FeatureCollection",'
                                                 b'"features":[]}', "application/json")})
    assert up.status_code == 403


def test_pages_show_only_what_the_policy_gives(app, world):
    unrelated, _ = sign_in(app, world["callers"]["unrelated"].token)
    page = unrelated.get("/console/usable")
    assert page.status_code == 200 and world["conditional"] not in page.text
    owner, _ = sign_in(app, world["callers"]["owner"].token)
    mine = owner.get("/console/resources")
    assert world["conditional"] in mine.text
    assert world["conditional"] not in unrelated.get("/console/resources").text


def test_auditor_and_bureau_pages(app, world):
    dept, _ = sign_in(app, world["callers"]["owner"].token)
    assert dept.get("/console/audit").status_code == 403
    own = dept.get("/console/supervision")  # a department: its own figures, no reports
    assert own.status_code == 200 and 'data-scope="gtzy"' in own.text
    assert 'id="reports"' not in own.text and 'id="report-form"' not in own.text
    assert dept.get("/console/supervision/data").status_code == 404  # the placeholder's gone
    auditor, _ = sign_in(app, world["callers"]["auditor"].token)
    log = auditor.get("/console/audit", params={"verify": "true", "limit": 50})
    assert log.status_code == 200 and "console.signin" in log.text
    assert "哈希链完整" in log.text
    watched = auditor.get("/console/supervision")  # reads the reports, files none
    assert 'id="reports"' in watched.text and 'id="report-form"' not in watched.text
    assert auditor.get("/console/feedback").status_code == 403  # rates nothing
    admin, _ = sign_in(app, world["callers"]["admin"].token)
    page = admin.get("/console/supervision", params={"period": "2999Q1"})
    assert page.status_code == 200 and 'id="period-error"' in page.text  # not begun
    assert 'data-scope=""' in page.text and 'id="report-form"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and " style=" not in page.text


def test_a_dataset_page_links_to_the_request_form(app, world, ddb):
    """The portal's dataset page of a conditional resource, as a department without a
    grant sees it, has the button to the console's request form."""
    from catalog import sync

    sync.ensure_synced(ddb)
    entry = ddb.execute("SELECT id FROM catalog_entry WHERE layer_name = %s",
                        (world["conditional"],)).fetchone()["id"]
    unrelated, _ = sign_in(app, world["callers"]["unrelated"].token)
    page = unrelated.get(f"/portal/datasets/{entry}")
    assert page.status_code == 200
    href = f'/console/requests/new?resource={world["conditional"]}'
    assert f'id="request-button" href="{href}"' in page.text
    form = unrelated.get(href)
    assert form.status_code == 200 and 'id="request-form"' in form.text
    owner, _ = sign_in(app, world["callers"]["owner"].token)  # its own: no button
    assert 'id="request-button"' not in owner.get(f"/portal/datasets/{entry}").text
