"""The typed HTTP seam (jmgeo.http): one error envelope for every route, the caller and
the visible-resource dependencies, authentication off the event loop, and the audit
action each OGC route states.

Through the real app (``jmgeo.app.create_app``) and the real database; where a route of
the kind under test does not exist in the platform (one raising a bare UserError or an
unexpected error) the test adds it to a fresh app instance, behind the same middleware
and handlers.
"""

from __future__ import annotations

import asyncio
import math
import re

import psycopg
import pytest
from fastapi.testclient import TestClient
from policy_fixtures import build_world, layer_name

from jmgeo.http import NOT_FOUND, CallerDep, LayerInPath, LayerInQuery, VisibleResource

HAN = re.compile(r"[\u4e00-\u9fff]")
HIDDEN = layer_name("not_shared")  # no department but its owner may have its data
OPEN = layer_name("open")


def _chinese_first(description: str) -> tuple[str, str]:
    zh, sep, en = description.partition(" / ")
    assert sep, description
    assert HAN.search(zh) and not HAN.search(en), description
    return zh, en


@pytest.fixture(scope="module")
def world(database_url):
    return build_world(database_url)


@pytest.fixture(scope="module")
def probe(world):
    """The real app plus routes that use the dependencies and raise what no platform
    route raises on purpose."""
    from jmgeo.app import create_app
    from layers.registry import RegistryError

    app = create_app()

    @app.get("/probe/path/{layer}")
    def by_path(resource: LayerInPath, caller: CallerDep) -> dict:
        assert isinstance(resource, VisibleResource)
        return {"name": resource.name, "kind": resource.kind,
                "sharing_class": resource.access.sharing_class, "caller": caller.kind}

    @app.get("/probe/query")
    def by_query(resource: LayerInQuery) -> dict:
        return {"name": resource.name, "table": resource.table_name}

    @app.get("/probe/user-error")
    def user_error() -> dict:
        raise RegistryError("图层名称无效 / invalid layer name: use lowercase ascii")

    @app.get("/probe/crash")
    def crash() -> dict:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _key(world, label: str) -> dict[str, str]:
    return {"X-API-Key": world[label].token}


# -- validation errors --------------------------------------------------------------

def test_validation_error_names_the_parameter_chinese_first(app_client):
    r = app_client.get("/regions/locate", params={"lon": "abc", "lat": "22.6"})
    assert r.status_code == 422
    body = r.json()
    assert set(body) == {"code", "description", "errors"}
    assert body["code"] == "InvalidParameterValue"
    zh, en = _chinese_first(body["description"])
    assert zh == "参数 lon：应为数字"
    assert en.startswith("parameter lon: ") and "number" in en
    assert [(e["parameter"], e["in"]) for e in body["errors"]] == [("lon", "query")]


def test_every_wrong_parameter_is_named(app_client):
    r = app_client.get("/regions/locate", params={"lon": "200"})
    assert r.status_code == 422
    zh, en = _chinese_first(r.json()["description"])
    assert "参数 lon：应不大于 180" in zh and "参数 lat：缺少必填项" in zh
    assert "parameter lon" in en and "parameter lat" in en
    assert {e["parameter"] for e in r.json()["errors"]} == {"lon", "lat"}


def test_body_fields_and_path_parameters_are_named(app_client):
    r = app_client.post("/catalog/entries", json={"name": "x", "bogus": 1})
    assert r.status_code == 422
    zh, en = _chinese_first(r.json()["description"])
    assert "字段 bogus：不是可接受的字段" in zh and "field bogus" in en
    r = app_client.get("/catalog/entries/0")
    assert r.status_code == 422
    zh, _ = _chinese_first(r.json()["description"])
    assert zh == "参数 entry_id：应不小于 1"
    assert r.json()["errors"][0]["in"] == "path"
    r = app_client.post("/catalog/entries", content=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["description"]


# -- Starlette's and the routes' HTTP errors --------------------------------------------

def test_unknown_route_is_the_standard_404(app_client):
    for path in ("/no/such/route", "/catalog/nope", "/ogc/no/such/route"):
        r = app_client.get(path)
        assert r.status_code == 404
        assert r.json() == {"code": "NotFound", "description": NOT_FOUND}
    _chinese_first(NOT_FOUND)


def test_wrong_method_is_405_in_the_envelope(app_client):
    r = app_client.delete("/regions")
    assert r.status_code == 405
    assert r.json()["code"] == "MethodNotAllowed"
    _chinese_first(r.json()["description"])
    assert "GET" in r.headers["allow"]


def test_route_http_exception_keeps_its_message(app_client):
    r = app_client.get("/regions/999999")
    assert r.status_code == 404
    assert r.json() == {"code": "NotFound",
                        "description": "区划代码不存在 / unknown region code: 999999"}


def test_user_error_is_400_with_its_code(probe):
    r = probe.get("/probe/user-error")
    assert r.status_code == 400
    assert r.json() == {"code": "user_error",
                        "description": "图层名称无效 / invalid layer name: use lowercase ascii"}


def test_anything_else_is_500_without_internals(probe):
    r = probe.get("/probe/crash")
    assert r.status_code == 500
    assert r.json()["code"] == "InternalError"
    _chinese_first(r.json()["description"])
    assert "secret" not in r.text and "Traceback" not in r.text


def test_bad_key_is_401_in_the_envelope(app_client):
    for path in ("/health", "/ogc/collections", "/catalog/entries"):
        for headers in ({"X-API-Key": "garbage"}, {"Authorization": "Basic eDp5"},
                        {"X-API-Key": "jmk_0badf00d_" + "A" * 43}):
            r = app_client.get(path, headers=headers)
            assert r.status_code == 401, (path, headers)
            assert r.json()["code"] == "Unauthorized"
            _chinese_first(r.json()["description"])
            assert r.headers["www-authenticate"].startswith("Bearer")


# -- the resource dependency ----------------------------------------------------------

def test_hidden_and_absent_resources_answer_byte_identical_404(probe, world):
    unrelated = _key(world, "unrelated")
    for headers in ({}, unrelated):
        hidden = probe.get(f"/probe/path/{HIDDEN}", headers=headers)
        absent = probe.get("/probe/path/tseam_never_loaded", headers=headers)
        assert hidden.status_code == absent.status_code == 404
        assert hidden.content == absent.content
        # a NUL byte is refused for what it is (jmgeo.guard), whichever name carries it
        malformed = probe.get(f"/probe/path/{HIDDEN}%00", headers=headers)
        assert malformed.status_code == 400 and "layer" in malformed.json()["description"]
        assert malformed.content == probe.get("/probe/path/tseam_never%00",
                                              headers=headers).content
        assert HIDDEN.encode() not in hidden.content
        assert hidden.json() == {"code": "NotFound", "description": NOT_FOUND}
        q_hidden = probe.get("/probe/query", params={"layer": HIDDEN}, headers=headers)
        q_absent = probe.get("/probe/query", params={"layer": "tseam_x"}, headers=headers)
        assert q_hidden.status_code == 404 and q_hidden.content == q_absent.content
    r = probe.get("/probe/query")  # the dependency's parameter is a declared one
    assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "layer"


def test_visible_resource_reaches_the_route_typed(probe, world):
    owner = probe.get(f"/probe/path/{HIDDEN}", headers=_key(world, "owner"))
    assert owner.status_code == 200
    assert owner.json() == {"name": HIDDEN, "kind": "vector", "sharing_class": "not_shared",
                            "caller": "department"}
    anon = probe.get(f"/probe/path/{OPEN}")
    assert anon.json()["caller"] == "anonymous" and anon.json()["sharing_class"] == "open"
    assert probe.get("/probe/query", params={"layer": OPEN}).json() == {
        "name": OPEN, "table": f"layer_data.{OPEN}_v1"}


def test_dependency_parameter_is_documented_once(probe):
    spec = probe.get("/openapi.json").json()
    params = spec["paths"]["/probe/path/{layer}"]["get"]["parameters"]
    assert [(p["name"], p["in"]) for p in params] == [("layer", "path")]


# -- authentication off the event loop ------------------------------------------------

def test_key_lookup_runs_in_a_worker_thread(app_client, world, monkeypatch):
    """On a cache miss the database lookup runs where no event loop is running."""
    import jmgeo.auth as auth
    from layers import identity

    seen: list[bool] = []
    real = identity.lookup

    def spy(conn, prefix):
        try:
            asyncio.get_running_loop()
            seen.append(True)  # on the loop: wrong
        except RuntimeError:
            seen.append(False)
        return real(conn, prefix)

    monkeypatch.setattr(identity, "lookup", spy)
    auth.forget()
    headers = _key(world, "unrelated")
    assert app_client.get("/health", headers=headers).status_code == 200
    assert app_client.get("/health", headers=headers).status_code == 200  # cached now
    assert seen == [False]


def test_revocation_hook_forgets_at_once(app_client, database_url):
    from layers.identity import create_key, revoke_key

    with psycopg.connect(database_url, autocommit=True) as conn:
        key = create_key(conn, "tseam-revoke", dept="hb")
        h = {"X-API-Key": key["token"]}
        assert app_client.get("/health", headers=h).status_code == 200  # cached
        revoke_key(conn, key["prefix"])
    assert app_client.get("/health", headers=h).status_code == 401


# -- the audit learns the action from the route ---------------------------------------

def test_audit_action_comes_from_the_route(app_client, world, database_url):
    owner = _key(world, "owner")
    layer = layer_name("conditional")
    with psycopg.connect(database_url, autocommit=True) as conn:
        mark = conn.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
        base = f"/ogc/collections/{layer}"
        assert app_client.get(f"{base}/items", params={"f": "json"},
                              headers=owner).status_code == 200
        assert app_client.get(f"{base}/items/1", params={"f": "json"},
                              headers=owner).status_code == 200
        z, lon, lat = 12, 113.08, 22.58  # the tile of feature 1
        col = int((lon + 180) / 360 * 2 ** z)
        row = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2 ** z)
        assert app_client.get(f"{base}/tiles/WebMercatorQuad/{z}/{row}/{col}",
                              params={"f": "mvt"}, headers=owner).status_code == 200
        assert app_client.get(base, params={"f": "json"}, headers=owner).status_code == 200
        rows = conn.execute("SELECT action, layer, rows FROM audit_log WHERE id > %s "
                            "ORDER BY id", (mark,)).fetchall()
    assert rows == [("ogc.items", layer, 4), ("ogc.item", layer, 1),
                    ("ogc.tiles", layer, None)]  # metadata is not audited


def test_record_ogc_refuses_an_unknown_action():
    from layers.audit import record_ogc

    with pytest.raises(ValueError, match="unknown OGC audit action"):
        record_ogc(None, {}, "itmes", None, 200, b"")


# -- the upload limit is a setting ------------------------------------------------------

def test_upload_limit_comes_from_settings(app_client, world, monkeypatch):
    from jmgeo import settings

    monkeypatch.setenv("JMGEO_UPLOAD_MAX_BYTES", "10")
    settings.reset_settings()
    try:
        r = app_client.post("/layers/upload", headers=_key(world, "unrelated"),
                            files={"file": ("a.csv", b"x" * 100)},
                            data={"dept": "hb", "layer": "tseam_upload", "theme": "land",
                                  "sharing": "open"})
    finally:  # the limit must not outlive this request (settings are read once)
        monkeypatch.delenv("JMGEO_UPLOAD_MAX_BYTES")
        settings.reset_settings()
    assert r.status_code == 413 and r.json()["code"] == "PayloadTooLarge"
    _chinese_first(r.json()["description"])
    r = app_client.post("/layers/upload", files={"file": ("a.csv", b"x")},
                        data={"dept": "hb", "layer": "tseam_upload", "theme": "land",
                              "sharing": "open"})
    assert r.status_code == 401 and r.json()["code"] == "Unauthorized"
