"""Honest conformance (issue 12 §6): every class /ogc/conformance declares is checked
against the running API here; a declared class without a check fails (a pygeoapi upgrade
that starts declaring something is noticed). Transactions are not offered: not
declared, POST of features 415, PUT/PATCH/DELETE 405 with ``Allow``."""

from __future__ import annotations

import io

import mapbox_vector_tile
import psycopg
import pytest
from PIL import Image
from test_coverages import make_cog

from layers.departments import ensure_departments
from layers.registry import Column, create_data_table, publish

LAYER, RASTER = "t_conf", "t_conf_dem"
SPEC = "http://www.opengis.net/spec/"


@pytest.fixture(scope="module")
def world(database_url, tmp_path_factory):
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn)
        table = create_data_table(conn, LAYER, 1, "MultiPoint",
                                  [Column("tag", "text", "标记"), Column("seq", "integer", "序号")])
        conn.execute(f"INSERT INTO {table} (fid, geom, tag, seq) SELECT g, ST_Multi(ST_SetSRID("
                     "ST_Point(113.0 + g * 0.01, 22.5 + g * 0.001), 4490)), "
                     "CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, g "
                     "FROM generate_series(1, 12) g")
        publish(conn, layer=LAYER, version=1, table_name=table, feature_count=12, report={},
                title="一致性测试", dept="sw", theme="water", sharing_class="open")
        path = tmp_path_factory.mktemp("cog") / f"{RASTER}_v1.tif"
        make_cog(path)
        publish(conn, layer=RASTER, version=1, table_name=f"file:{path}", feature_count=0,
                report={"kind": "raster"}, title="一致性高程", dept="gtzy", theme="land",
                sharing_class="open", kind="raster")
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:  # no raster for others
        conn.execute("DELETE FROM layer WHERE name = %s", (RASTER,))


def ok(client, path, ctype=None, **params):
    r = client.get(path, params=params)
    assert r.status_code == 200, (path, params, r.status_code, r.text[:300])
    if ctype:
        assert r.headers["content-type"].startswith(ctype), (path, r.headers["content-type"])
    return r


ITEMS = f"/ogc/collections/{LAYER}/items"


def _landing(c):
    rels = {x["rel"] for x in ok(c, "/ogc", "application/json", f="json").json()["links"]}
    assert {"conformance", "data", "service-desc"} <= rels


def _oas(c):
    doc = ok(c, "/ogc/openapi", "application/vnd.oai.openapi+json", f="json").json()
    assert doc["openapi"].startswith("3.0")
    return doc


def _schema(c):
    props = ok(c, f"/ogc/collections/{LAYER}/schema", f="json").json()["properties"]
    assert {"tag", "seq"} <= set(props)
    return props


def _roles(c):
    roles = {v.get("x-ogc-role") for v in _schema(c).values()}
    assert {"id", "primary-geometry"} <= roles


def _features_core(c):
    body = ok(c, ITEMS, f="json").json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == 12
    assert ok(c, f"{ITEMS}/3", f="json").json()["id"] == 3
    assert len(ok(c, ITEMS, bbox="113.005,22.4,113.035,22.6").json()["features"]) == 3
    assert c.get(f"{ITEMS}/999").status_code == 404


def _crs(c):
    coll = ok(c, f"/ogc/collections/{LAYER}", f="json").json()
    uri = "http://www.opengis.net/def/crs/EPSG/0/4490"
    assert uri in coll["crs"] and coll["storageCrs"] == uri
    r = ok(c, f"{ITEMS}/1", crs=uri)
    assert r.headers["content-crs"] == f"<{uri}>"
    lat, lon = r.json()["geometry"]["coordinates"][0]  # EPSG:4490 is lat/lon
    assert (lat, lon) == pytest.approx((22.501, 113.01))


def _queryables(c):
    props = ok(c, f"/ogc/collections/{LAYER}/queryables", f="json").json()["properties"]
    assert {"tag", "seq"} <= set(props)


def _query_parameters(c):
    feats = ok(c, ITEMS, tag="a").json()["features"]
    assert len(feats) == 6 and {f["properties"]["tag"] for f in feats} == {"a"}


def _cql2_text(c):
    feats = ok(c, ITEMS, filter="seq > 9 AND tag = 'a'", **{"filter-lang": "cql2-text"}
               ).json()["features"]
    assert sorted(f["id"] for f in feats) == [10, 12]


def _map(c):
    r = ok(c, f"/ogc/collections/{LAYER}/map", "image/png", f="png",
           bbox="112.9,22.4,113.2,22.6", width=200, height=200)
    assert Image.open(io.BytesIO(r.content)).convert("RGBA").getextrema()[3][1] > 0


def _records(c, **params):
    return ok(c, "/ogc/collections/catalog/items", f="json", **params).json()["features"]


def _records_sorting(c):
    titles = [f["properties"].get("title") or "" for f in _records(c, sortby="title")]
    assert titles == sorted(titles)


def _tile(c):
    r = ok(c, f"/ogc/collections/{LAYER}/tiles/WebMercatorQuad/8/111/208",
           "application/vnd.mapbox-vector-tile", f="mvt")
    assert len(mapbox_vector_tile.decode(r.content)[LAYER]["features"]) == 12


def _tilesets(c):
    sets = ok(c, f"/ogc/collections/{LAYER}/tiles", f="json").json()["tilesets"]
    assert {"WebMercatorQuad"} <= {s["tileMatrixSetURI"].rsplit("/", 1)[-1] for s in sets}


def _tileset(c):
    ok(c, f"/ogc/collections/{LAYER}/tiles/WebMercatorQuad", "application/json", f="json")


def _coverage(c, **params):
    return ok(c, f"/ogc/collections/{RASTER}/coverage", f="json", **params).json()


def _coverage_subset(c):
    cj = _coverage(c, subset="Long(112.9:113.0),Lat(22.3:22.4)")
    assert cj["ranges"]["1"]["shape"] == [10, 10]


CHECKS = {
    "cql2/1.0/conf/basic-cql2": _cql2_text,
    "cql2/1.0/conf/cql2-text": _cql2_text,
    "ogcapi-common-1/1.0/conf/core": _landing,
    "ogcapi-common-1/1.0/conf/landing-page": _landing,
    "ogcapi-common-1/1.0/conf/json": _landing,
    "ogcapi-common-1/1.0/conf/html": lambda c: ok(c, "/ogc", "text/html", f="html"),
    "ogcapi-common-1/1.0/conf/oas30": _oas,
    "ogcapi-common-2/1.0/conf/collections":
        lambda c: LAYER in {x["id"] for x in ok(c, "/ogc/collections", f="json").json()[
            "collections"]} or pytest.fail("collection not listed"),
    "ogcapi-common-3/1.0/conf/schemas": _schema,
    "ogcapi-common-3/1.0/conf/advanced-property-roles": _roles,
    "ogcapi-features-1/1.0/conf/core": _features_core,
    "ogcapi-features-1/1.0/conf/geojson": lambda c: (
        ok(c, ITEMS, "application/geo+json"), ok(c, f"{ITEMS}/1", "application/geo+json")),
    "ogcapi-features-1/1.0/conf/html": lambda c: ok(c, ITEMS, "text/html", f="html"),
    "ogcapi-features-1/1.0/conf/oas30":
        lambda c: _oas(c)["paths"][f"/collections/{LAYER}/items"]["get"],
    "ogcapi-features-2/1.0/conf/crs": _crs,
    "ogcapi-features-3/1.0/conf/queryables": _queryables,
    "ogcapi-features-3/1.0/conf/queryables-query-parameters": _query_parameters,
    "ogcapi-maps-1/1.0/conf/core": _map,
    "ogcapi-records-1/1.0/conf/core": lambda c: _records(c),
    "ogcapi-records-1/1.0/conf/json": lambda c: _records(c),
    "ogcapi-records-1/1.0/conf/html":
        lambda c: ok(c, "/ogc/collections/catalog/items", "text/html", f="html"),
    "ogcapi-records-1/1.0/conf/opensearch":
        lambda c: any("一致性" in (f["properties"].get("title") or "")
                      for f in _records(c, q="一致性")) or pytest.fail("q found nothing"),
    "ogcapi-records-1/1.0/conf/sorting": _records_sorting,
    "ogcapi-tiles-1/1.0/conf/core": _tile,
    "ogcapi-tiles-1/1.0/conf/mvt": _tile,
    "ogcapi-tiles-1/1.0/conf/geodata-tilesets": _tilesets,
    "ogcapi-tiles-1/1.0/conf/tilesets-list": _tilesets,
    "ogcapi-tiles-1/1.0/conf/tileset": _tileset,
    "ogcapi-tiles-1/1.0/conf/oas30":
        lambda c: _oas(c)["paths"][f"/collections/{LAYER}/tiles"]["get"],
    "ogcapi-coverages-1/1.0/conf/core": lambda c: _coverage(c)["type"] == "Coverage"
        or pytest.fail("not a coverage"),
    "ogcapi-coverages-1/1.0/conf/geodata-coverage": lambda c: _coverage(c),
    "ogcapi-coverages-1/1.0/conf/oas30":
        lambda c: _oas(c)["paths"][f"/collections/{RASTER}/coverage"]["get"],
    "ogcapi-coverages-1/1.0/conf/html":
        lambda c: ok(c, f"/ogc/collections/{RASTER}", "text/html", f="html"),
    "ogcapi-coverages-1/1.0/conf/coverage-subset": _coverage_subset,
    "ogcapi-coverages-1/1.0/conf/coverage-bbox":
        lambda c: _coverage(c, bbox="112.9,22.3,113.0,22.4")["ranges"]["1"]["shape"] == [
            10, 10] or pytest.fail("bbox subset"),
    "ogcapi-coverages-1/1.0/conf/coverage-rangesubset":
        lambda c: list(_coverage(c, properties="1", bbox="112.9,22.3,113.0,22.4")[
            "ranges"]) == ["1"] or pytest.fail("range subset"),
}


def declared(client) -> list[str]:
    return ok(client, "/ogc/conformance", f="json").json()["conformsTo"]


def test_every_declared_class_has_a_check(app_client, world):
    unchecked = [c for c in declared(app_client) if c.removeprefix(SPEC) not in CHECKS]
    assert unchecked == [], "declared without a check in tests/test_conformance.py"


@pytest.mark.parametrize("cls", sorted(CHECKS))
def test_declared_class_works(app_client, world, cls):
    if SPEC + cls not in declared(app_client):
        pytest.skip("not declared for this audience")
    CHECKS[cls](app_client)


def test_transactions_are_not_declared_and_refused(app_client, world):
    classes = declared(app_client)
    assert not [c for c in classes if "ogcapi-features-4" in c]
    assert [c for c in declared(app_client) if "coverage-datetime" in c] == []
    html = ok(app_client, "/ogc/conformance", "text/html", f="html").text
    assert "ogcapi-features-4" not in html and "ogcapi-features-1/1.0/conf/core" in html
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [113, 22.5]},
               "properties": {"tag": "x"}}
    for cid in (LAYER, "tpol_never_existed"):  # alike for every id: no oracle
        r = app_client.post(f"/ogc/collections/{cid}/items", json=feature,
                            headers={"Content-Type": "application/geo+json"})
        assert r.status_code == 415, r.text
        assert "application/json" in r.headers["accept-post"]
        assert "read-only" in r.json()["description"]
    for method, path in (("DELETE", f"{ITEMS}/1"), ("PUT", f"{ITEMS}/1"),
                         ("PATCH", f"{ITEMS}/1"), ("DELETE", ITEMS), ("PUT", ITEMS)):
        r = app_client.request(method, path, json=feature)
        assert r.status_code == 405, (method, path, r.status_code)
        allow = {m.strip() for m in r.headers["allow"].split(",")}
        assert method not in allow and "GET" in allow
    assert len(ok(app_client, ITEMS).json()["features"]) == 12  # nothing was written
    # a CQL2 JSON search still is a POST
    r = app_client.post(ITEMS, json={"op": "=", "args": [{"property": "tag"}, "a"]})
    assert r.status_code == 200 and len(r.json()["features"]) == 6


def test_openapi_operations_exist(app_client, world):
    """Every operation the OpenAPI document offers on an items path is routed (no 405),
    and none is a transaction (no options/put/delete: the providers are read-only)."""
    paths = _oas(app_client)["paths"]
    for path in (f"/collections/{LAYER}/items", f"/collections/{LAYER}/items/{{featureId}}"):
        ops = set(paths[path])
        assert ops <= {"get", "post"}, (path, ops)
        for op in ops:
            url = "/ogc" + path.replace("{featureId}", "1")
            r = app_client.request(op.upper(), url, json={"op": "=", "args": [
                {"property": "tag"}, "a"]} if op == "post" else None)
            assert r.status_code == 200, (op, url, r.status_code)
