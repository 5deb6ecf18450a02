"""Web and desktop clients as they are (jmgeo.web, jmgeo.auth, jmgeo.ogc.router): CORS in
two tiers over real HTTP, gzip for JSON and vector tiles without breaking byte ranges or
ETags, the API key as the HTTP Basic password (QGIS 3.22), /ogc without a redirect and
the cache headers of caller-dependent documents.

The CORS tests run against a uvicorn server of their own (``conftest.serve``) started
with one trusted origin; the rest use the in-process app (default settings: no trusted
origin) unless they say otherwise.
"""

from __future__ import annotations

import base64
import gzip
import json
import math

import httpx
import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from policy_fixtures import FEATURES, GRANT_FIELDS, GRANT_REGION, build_world, layer_name

from jmgeo.auth import INVALID, MALFORMED
from jmgeo.web import EXPOSED_HEADERS, accepts_gzip

TRUSTED = "http://maps.jiangmen.test:8080"
OTHER = "http://elsewhere.test:3000"
OPEN = layer_name("open")
COND = layer_name("conditional")
GRANT_FIDS = {f[0] for f in FEATURES if f[3] == GRANT_REGION}
DOCUMENTS = ("/ogc", "/ogc/", "/ogc/collections", "/ogc/openapi", "/ogc/conformance",
             f"/ogc/collections/{OPEN}")


@pytest.fixture(scope="module")
def world(database_url):
    return build_world(database_url)


@pytest.fixture(scope="module")
def server(serve_with, world):
    with serve_with(JMGEO_CORS_ORIGINS=f"{TRUSTED}/") as url:
        yield url


def _vary(response: httpx.Response) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("vary", "").split(",") if v}


def _basic(password: str, user: str = "qgis") -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _ids(response) -> set[int]:
    return {f["id"] for f in response.json()["features"]}


# -- CORS, over real HTTP --------------------------------------------------------------

def _preflight(url: str, origin: str, method: str = "GET", headers: str = "") -> httpx.Response:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return httpx.options(f"{url}/ogc/collections/{OPEN}/items", headers=asked, timeout=10)


def test_preflight_from_the_trusted_origin_allows_the_key(server):
    r = _preflight(server, TRUSTED, "GET", "X-API-Key, If-None-Match")
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == TRUSTED
    assert r.headers["access-control-allow-credentials"] == "true"
    allowed = {h.strip() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"x-api-key", "authorization", "if-none-match"} <= allowed
    assert "POST" in r.headers["access-control-allow-methods"]
    assert int(r.headers["access-control-max-age"]) > 0
    assert "origin" in _vary(r)
    r = _preflight(server, TRUSTED, "DELETE", "authorization")
    assert r.status_code == 204


def test_preflight_from_another_origin_allows_anonymous_reads_only(server):
    r = _preflight(server, OTHER, "GET", "if-none-match, range")
    assert r.status_code == 204, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
    for method, headers in (("GET", "x-api-key"), ("GET", "Authorization"),
                            ("POST", "content-type"), ("DELETE", "")):
        r = _preflight(server, OTHER, method, headers)
        assert r.status_code == 403, (method, headers)
        assert "access-control-allow-origin" not in r.headers
        assert r.json()["code"] == "Forbidden"
        assert "JMGEO_CORS_ORIGINS" in r.json()["description"]


def test_trusted_origin_reads_keyed_data_with_credentials(server, world):
    key = {"X-API-Key": world["limited_grant"].token}
    r = httpx.get(f"{server}/ogc/collections/{COND}/items?f=json",
                  headers={"Origin": TRUSTED, **key}, timeout=30)
    assert r.status_code == 200, r.text
    assert _ids(r) == GRANT_FIDS
    assert r.headers["access-control-allow-origin"] == TRUSTED
    assert r.headers["access-control-allow-credentials"] == "true"
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {h.lower() for h in EXPOSED_HEADERS} <= exposed
    assert {"content-crs", "link", "etag", "jmgeo-from-version", "location",
            "retry-after"} <= exposed
    assert r.headers["cache-control"] == "private, no-store"  # private stays private
    assert {"origin", "authorization", "x-api-key", "cookie"} <= _vary(r)


def test_other_origin_reads_open_data_anonymously(server, world):
    r = httpx.get(f"{server}/ogc/collections/{OPEN}/items?f=json",
                  headers={"Origin": OTHER}, timeout=30)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
    assert "content-crs" in r.headers["access-control-expose-headers"].lower()
    assert "origin" in _vary(r)  # the trusted origin would be answered otherwise
    # the platform routes too (a map page locating a click)
    r = httpx.get(f"{server}/regions/locate?lon=113.08&lat=22.58",
                  headers={"Origin": OTHER}, timeout=30)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"


def test_other_origin_sending_a_key_gets_no_cors_headers(server, world):
    key = {"Authorization": f"Bearer {world['limited_grant'].token}"}
    r = httpx.get(f"{server}/ogc/collections/{COND}/items?f=json",
                  headers={"Origin": OTHER, **key}, timeout=30)
    assert r.status_code == 200  # the server answers; the browser will not let the page read
    assert "access-control-allow-origin" not in r.headers
    assert r.headers["cache-control"] == "private, no-store"


def test_a_401_is_readable_by_the_trusted_page(server):
    r = httpx.get(f"{server}/ogc/collections", timeout=10,
                  headers={"Origin": TRUSTED, "X-API-Key": "jmk_0badf00d_" + "A" * 43})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == TRUSTED
    assert r.json()["code"] == "Unauthorized"


def test_without_trusted_origins_no_vary_origin(app_client, world):
    """Default settings: every anonymous GET says ``*`` (with or without Origin), so the
    answer does not vary by origin; a preflight asking for a key is refused."""
    for headers in ({"Origin": OTHER}, {}):
        r = app_client.get(f"/ogc/collections/{OPEN}/items?f=json", headers=headers)
        assert r.headers["access-control-allow-origin"] == "*"
        assert "origin" not in _vary(r)
    r = app_client.options(f"/ogc/collections/{OPEN}/items", headers={
        "Origin": TRUSTED, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-api-key"})
    assert r.status_code == 403


def test_options_without_preflight_is_still_405(app_client):
    assert app_client.options("/regions").status_code == 405


# -- compression ------------------------------------------------------------------------

def _raw(client, url: str, headers: dict) -> tuple[httpx.Response, bytes]:
    with client.stream("GET", url, headers=headers) as r:
        return r, b"".join(r.iter_raw())


def test_items_json_is_gzipped_and_decodes(app_client, world):
    url = "/ogc/collections/regions/items?f=json&limit=50"
    plain, plain_body = _raw(app_client, url, {"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert "accept-encoding" in _vary(plain)
    r, body = _raw(app_client, url, {"Accept-Encoding": "gzip, deflate"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) == len(body)
    assert "accept-encoding" in _vary(r)
    decoded = gzip.decompress(body)
    assert len(body) < len(decoded) / 2
    assert json.loads(decoded)["features"] == json.loads(plain_body)["features"]
    assert r.headers["cache-control"] == "public, max-age=60"


def test_gzip_refused_by_q0_is_not_sent(app_client, world):
    r, _ = _raw(app_client, "/ogc/collections/regions/items?f=json",
                {"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in r.headers
    assert accepts_gzip("br, gzip;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0, *") and not accepts_gzip("identity")


def test_vector_tile_is_gzipped(app_client, world):
    z, lon, lat = 8, 112.8, 22.3
    n = 2 ** z
    col = int((lon + 180) / 360 * n)
    row = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    url = f"/ogc/collections/regions/tiles/WebMercatorQuad/{z}/{row}/{col}?f=mvt"
    r, body = _raw(app_client, url, {"Accept-Encoding": "gzip"})
    assert r.status_code == 200, body[:200]
    assert r.headers["content-type"].startswith("application/vnd.mapbox-vector-tile")
    assert r.headers["content-encoding"] == "gzip"
    tile = mapbox_vector_tile.decode(gzip.decompress(body))
    assert {"440703", "440781"} <= {f["properties"]["code"]
                                    for f in tile["regions"]["features"]}


def test_keyed_responses_are_compressed_and_stay_private(app_client, world):
    key = {"X-API-Key": world["owner"].token, "Accept-Encoding": "gzip"}
    r, body = _raw(app_client, f"/ogc/collections/{layer_name('not_shared')}/items?f=json",
                   key)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "private, no-store"
    if r.headers.get("content-encoding") == "gzip":  # a small page may stay as it is
        body = gzip.decompress(body)
    assert len(json.loads(body)["features"]) == 4


@pytest.fixture(scope="module")
def probe(world, tmp_path_factory):
    """The real app plus routes with what other routes will send: a strong ETag, a
    stream, and a file offered by byte ranges (a resumable download)."""
    from fastapi.responses import FileResponse, Response, StreamingResponse

    from jmgeo.app import create_app

    app = create_app()
    csv = tmp_path_factory.mktemp("web") / "rows.csv"
    csv.write_text("fid,name\n" + "".join(f"{i},地块{i}\n" for i in range(5000)),
                   encoding="utf-8")

    @app.get("/probe/etag")
    def etag() -> Response:
        return Response(json.dumps({"rows": list(range(2000))}), media_type="application/json",
                        headers={"ETag": '"v7-abc"'})

    @app.get("/probe/stream")
    def stream() -> StreamingResponse:
        chunks = (f"{i},地块{i}\n".encode() for i in range(20000))
        return StreamingResponse(chunks, media_type="text/csv; charset=utf-8")

    @app.get("/probe/file")
    def file() -> FileResponse:
        return FileResponse(csv, media_type="text/csv; charset=utf-8")

    with TestClient(app) as client:
        yield client, csv.read_bytes()


def test_compressed_strong_etag_becomes_weak(probe):
    client, _ = probe
    r, body = _raw(client, "/probe/etag", {"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["etag"] == 'W/"v7-abc"'
    assert json.loads(gzip.decompress(body))["rows"][-1] == 1999
    r, _ = _raw(client, "/probe/etag", {"Accept-Encoding": "identity"})
    assert r.headers["etag"] == '"v7-abc"'


def test_streaming_response_is_compressed_whole(probe):
    client, _ = probe
    r, body = _raw(client, "/probe/stream", {"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert "content-length" not in r.headers
    assert gzip.decompress(body) == "".join(f"{i},地块{i}\n" for i in range(20000)).encode()


def test_byte_range_files_stay_identity(probe):
    client, data = probe
    r, body = _raw(client, "/probe/file", {"Accept-Encoding": "gzip"})
    assert r.headers.get("accept-ranges") == "bytes"
    assert "content-encoding" not in r.headers and body == data
    r, body = _raw(client, "/probe/file", {"Accept-Encoding": "gzip", "Range": "bytes=100-199"})
    assert r.status_code == 206
    assert "content-encoding" not in r.headers and body == data[100:200]


# -- HTTP Basic with the key as password (QGIS 3.22) -----------------------------------

def test_basic_auth_with_the_key_is_the_departments_view(app_client, world):
    token = world["limited_grant"].token
    bearer = app_client.get(f"/ogc/collections/{COND}/items?f=json",
                            headers={"Authorization": f"Bearer {token}"})
    for user in ("qgis", "", "某用户"):
        r = app_client.get(f"/ogc/collections/{COND}/items?f=json", headers=_basic(token, user))
        assert r.status_code == 200, r.text
        assert _ids(r) == GRANT_FIDS
        props = set(r.json()["features"][0]["properties"])
        assert props <= set(GRANT_FIELDS) and "qlr" not in props
        assert r.json()["features"] == bearer.json()["features"]
        assert r.headers["cache-control"] == "private, no-store"
    listed = app_client.get("/ogc/collections?f=json", headers=_basic(token))
    assert COND in {c["id"] for c in listed.json()["collections"]}
    anonymous = app_client.get("/ogc/collections?f=json")
    assert COND not in {c["id"] for c in anonymous.json()["collections"]}


def test_bad_basic_credentials_are_the_same_401(app_client, world):
    wrong = "jmk_0badf00d_" + "A" * 43
    as_key = app_client.get("/ogc/collections", headers={"X-API-Key": wrong})
    assert as_key.status_code == 401 and as_key.json()["description"] == INVALID
    r = app_client.get("/ogc/collections", headers=_basic(wrong))
    assert r.status_code == 401
    assert r.json() == as_key.json()
    assert r.headers["www-authenticate"].startswith("Bearer")  # never a Basic challenge
    garbage = base64.b64encode(b"no-colon").decode()
    for headers in (_basic("garbage"), _basic(""), {"Authorization": f"Basic {garbage}"},
                    {"Authorization": "Basic %%%"},
                    {**_basic(world["owner"].token), "X-API-Key": world["unrelated"].token}):
        r = app_client.get("/ogc/collections", headers=headers)
        assert r.status_code == 401, headers
        assert r.json() == {"code": "Unauthorized", "description": MALFORMED}


# -- /ogc and the cache headers of caller-dependent documents ------------------------------

def test_ogc_answers_without_a_redirect(app_client, server):
    r = app_client.get("/ogc?f=json", follow_redirects=False)
    assert r.status_code == 200
    assert r.json()["links"] == app_client.get("/ogc/?f=json").json()["links"]
    live = httpx.get(f"{server}/ogc", params={"f": "json"}, timeout=10)
    assert live.status_code == 200 and not live.history
    self_link = next(link["href"] for link in live.json()["links"] if link["rel"] == "self")
    assert httpx.get(self_link, timeout=10).status_code == 200


def test_caller_dependent_documents_are_revalidated(app_client, world):
    key = {"Authorization": f"Bearer {world['limited_grant'].token}"}
    for path in DOCUMENTS:
        anonymous = app_client.get(path, params={"f": "json"})
        keyed = app_client.get(path, params={"f": "json"}, headers=key)
        assert anonymous.status_code == keyed.status_code == 200, path
        assert anonymous.headers["cache-control"] == "public, no-cache", path
        assert keyed.headers["cache-control"] == "private, no-cache", path
        assert {"authorization", "x-api-key"} <= _vary(keyed), path
    # data keeps its rule: anonymous open data shared a minute, keyed data never stored
    r = app_client.get(f"/ogc/collections/{OPEN}/items?f=json")
    assert r.headers["cache-control"] == "public, max-age=60"
    r = app_client.get(f"/ogc/collections/{OPEN}/items?f=json", headers=key)
    assert r.headers["cache-control"] == "private, no-store"
