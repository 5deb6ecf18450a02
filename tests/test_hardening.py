"""Hostile clients and inputs (issue 16, item 1 and 5): never a 5xx, links never from Host.

Each test here failed before its fix: language negotiation (babel's ``zh_CN``), the race to
build a version's region index, NUL bytes / control characters / malformed cursors /
out-of-range integers reaching SQL, the Host header in cacheable links, absurd stored
coordinates in projected output, and the CLI's broken pipe.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import uuid

import psycopg
import pytest
from policy_fixtures import build_world, create_layer
from psycopg.rows import dict_row

from jmgeo.ogc import router as ogc_router

LANGUAGES = ["fr-FR", "ja-JP", "zh-TW", "zh", "*", "zh-Hant", "en", "en-GB", "zh-CN",
             "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "xx-invalid", "q=1;;,", "",
             "zh-CN;q=abc", "\u4e2d\u6587", "a" * 300, "i-klingon", "sgn-BE-FR"]
OGC_PATHS = ["/ogc", "/ogc/collections", "/ogc/collections/tpol_open",
             "/ogc/collections/tpol_open/items", "/ogc/collections/tpol_open/items/1",
             "/ogc/collections/tpol_open/queryables", "/ogc/conformance", "/ogc/openapi",
             "/ogc/TileMatrixSets"]


@pytest.fixture(scope="module")
def world(database_url):
    return build_world(database_url)


def _headers(caller) -> dict[str, str]:
    return {"X-API-Key": caller.token} if caller.token else {}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_language_tag_negotiates_to_a_supported_locale(app_client, world, lang):
    bad = []
    for path in OGC_PATHS:
        for headers, params in (({"Accept-Language": lang.encode()},
                                 {}), ({}, {"lang": lang})):
            r = app_client.get(path, headers=headers, params=params)
            if r.status_code != 200:
                bad.append((path, headers, params, r.status_code, r.text[:120]))
            else:
                assert r.headers.get("Content-Language", "").split("-")[0] in ("zh", "en")
    assert bad == []


def test_language_negotiation_prefers_what_the_client_reads(app_client, world):
    def lang(tag):
        return app_client.get("/ogc", headers={"Accept-Language": tag}).headers[
            "Content-Language"]

    assert lang("en-GB").startswith("en")
    assert lang("zh-TW").startswith("zh")  # same language, another territory
    assert lang("fr-FR").startswith("zh")  # nothing served: the platform's default
    assert lang("fr, en;q=0.5").startswith("en")


# -- region statistics on a new version: the index is built once, race-free -------------

def _concurrent_stats(database_url: str, table: str, n: int) -> tuple[list, list]:
    """``n`` sessions asking for the statistics of ``table`` at the same moment."""
    from spatial.regions import region_stats

    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    counts: list[int] = []

    def run():
        try:
            with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
                barrier.wait()
                counts.append(region_stats(conn, "440700", table)["totals"]["count"])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors, counts


def test_first_concurrent_region_stats_do_not_race(database_url):
    for attempt in range(3):
        name = f"thd_race_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            create_layer(conn, name, "open")
            table = conn.execute("SELECT table_name FROM layer_version v JOIN layer l "
                                 "ON l.id = v.layer_id WHERE l.name = %s",
                                 (name,)).fetchone()[0]
        errors, counts = _concurrent_stats(database_url, table, 6)
        assert errors == [], f"attempt {attempt}: {errors!r}"
        assert counts == [4] * 6


# -- hostile parameter values: 400 naming the parameter, before SQL ---------------------

def _cursor(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


HOSTILE = [
    ("/ogc/collections/tpol_open/items", {"name": "\x00"}, "name"),
    ("/ogc/collections/tpol_open/items", {"name": "a\x01b"}, "name"),
    ("/ogc/collections/tpol_open/items", {"region": "4407\x0003"}, "region"),
    ("/ogc/collections/tpol_open/items", {"offset": str(2 ** 70)}, "offset"),
    ("/ogc/collections/tpol_open/items", {"limit": str(2 ** 70)}, "limit"),
    ("/ogc/collections/tpol_open/items", {"cursor": _cursor({"v": 1, "k": [{"a": 1}]})},
     "cursor"),
    ("/ogc/collections/tpol_open/items", {"cursor": _cursor({"v": 1e400, "k": [1]})},
     "cursor"),
    ("/ogc/collections/tpol_open/items", {"cursor": _cursor({"v": 2 ** 70, "k": [1]})},
     "cursor"),
    ("/ogc/collections/tpol_open/items", {"cursor": _cursor({"v": 1, "k": {"a": 1}})},
     "cursor"),
    ("/ogc/collections/tpol_open/items", {"cursor": _cursor([1, 2])}, "cursor"),
    ("/ogc/collections/tpol_open/items", {"cursor": "\x00"}, "cursor"),
    ("/ogc/collections/tpol_open/items", {"area": str(10 ** 400)}, "area"),
    ("/regions/44%0007/stats", {"layer": "tpol_open"}, "code"),
    ("/regions/440703/stats", {"layer": "tpol_open", "group_by": "na\x00me"}, "group_by"),
    ("/regions/44%0007", {}, "code"),
]


@pytest.mark.parametrize("path,params,name", HOSTILE, ids=[f"{p}?{q}" for p, q, _ in HOSTILE])
def test_hostile_values_answer_400_naming_the_parameter(app_client, world, path, params,
                                                        name):
    r = app_client.get(path, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert {"code", "description"} <= set(body)
    assert name in body["description"]


# -- links from configuration, never from Host ---------------------------------------------

def test_host_header_never_reaches_cacheable_links(app_client, world, monkeypatch,
                                                   fresh_settings):
    monkeypatch.delenv("JMGEO_PUBLIC_URL", raising=False)
    fresh_settings()
    ogc_router.AUDIENCES.clear()
    for path in ["/ogc", "/ogc/collections", "/ogc/collections/tpol_open/items",
                 "/ogc/collections/tpol_open/items?limit=1",  # next/first/prev links too
                 "/ogc/collections/tpol_open/items?limit=1&f=csv",
                 "/ogc/collections/tpol_open/items/1", "/ogc/openapi"]:
        r = app_client.get(path, headers={"Host": "evil.example:666",
                                          "X-Forwarded-Host": "evil2.example"})
        assert r.status_code in (200, 400), (path, r.status_code)
        if r.status_code == 200:
            blob = r.text + r.headers.get("link", "")
            assert "evil" not in blob, path
            assert "127.0.0.1:5000" in blob or path == "/ogc/collections/tpol_open/items/1"


def test_unknown_hosts_are_refused_when_configured(app_client, world, monkeypatch,
                                                   fresh_settings):
    monkeypatch.setenv("JMGEO_PUBLIC_URL", "https://geo.jiangmen.example")
    monkeypatch.setenv("JMGEO_ALLOWED_HOSTS", "geo.jiangmen.example,testserver")
    fresh_settings()
    ogc_router.AUDIENCES.clear()
    r = app_client.get("/ogc/collections", headers={"Host": "evil.example"})
    assert r.status_code == 400
    assert r.json()["code"] == "InvalidHost"
    ok = app_client.get("/ogc/collections")
    assert ok.status_code == 200
    assert "https://geo.jiangmen.example/ogc" in ok.text
    assert app_client.get("/health", headers={"Host": "evil.example"}).status_code == 400
    ogc_router.AUDIENCES.clear()


# -- a client that hangs up --------------------------------------------------------------

@pytest.mark.parametrize("method,path", [("POST", "/exchange/webhook-test"),
                                         ("PUT", "/ogc/collections/tpol_open/styles/default")])
def test_client_disconnect_is_no_logged_server_error(app_client, world, caplog, method,
                                                     path):
    import anyio

    sent: list[dict] = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "server": ("testserver", 80),
             "client": ("127.0.0.1", 5555),
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                         (b"content-length", b"1000"),
                         (b"x-api-key", world["owner"].token.encode())]}
    with caplog.at_level("INFO", logger="jmgeo"):
        # in a thread of its own: the session's browser (Playwright's sync API) may hold
        # an event loop in this one
        worker = threading.Thread(target=anyio.run, args=(app_client.app, scope, receive, send))
        worker.start()
        worker.join(30)
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses and statuses[0] < 500, statuses
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


# -- the CLI in a pipe ---------------------------------------------------------------------

def test_cli_output_into_a_closed_pipe_is_quiet(database_url, world):
    import os

    env = dict(os.environ, DATABASE_URL=database_url)
    cmd = (f"{sys.executable} -m jmgeo.cli layer list | true; "
           f"{sys.executable} -m jmgeo.cli --help | true")
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "内部错误" not in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr.lower(), proc.stderr
