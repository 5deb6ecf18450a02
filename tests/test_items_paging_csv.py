"""Items pages (issue 12 §6, §8): keyset ``next``/``prev``/``first`` links and no ``next``
after the last page, a default page of 100 with ``limit`` declared once in the OpenAPI
document, items as CSV (WKT, ``Content-Crs``), and GDAL reading all features in few
requests."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess

import psycopg
import pytest
import shapely.wkt

from layers.departments import ensure_departments
from layers.registry import Column, create_data_table, publish

LAYER = "t_pages"
N = 237


def _publish(dsn: str, name: str, n: int) -> None:
    with psycopg.connect(dsn) as conn, conn.transaction():
        ensure_departments(conn)
        table = create_data_table(conn, name, 1, "MultiPoint",
                                  [Column("label", "text", "名称"), Column("odd", "boolean"),
                                   Column("rank", "integer")])
        conn.execute(f"INSERT INTO {table} (fid, geom, label, odd, rank) SELECT g, ST_Multi("
                     "ST_SetSRID(ST_Point(112.5 + g * 0.001, 22.0 + g * 0.0005), 4490)), "
                     "'要素' || g, g %% 2 = 1, g %% 7 FROM generate_series(1, %s) g", (n,))
        publish(conn, layer=name, version=1, table_name=table, feature_count=n, report={},
                title=f"分页与CSV {name}", dept="sw", theme="water", sharing_class="open")


@pytest.fixture(scope="module")
def layer(database_url):
    _publish(database_url, LAYER, N)
    _publish(database_url, "t_pages_20", 20)
    return LAYER


def _links(body: dict) -> dict[str, str]:
    return {x["rel"]: x["href"].replace("http://testserver", "") for x in body["links"]
            if x["rel"] in ("next", "prev", "first")}


def _page(client, url: str, **params) -> dict:
    r = client.get(url, params=params or None)  # {} would drop the link's own query
    assert r.status_code == 200, r.text
    return r.json()


def test_walk_forward_and_back(app_client, layer):
    url = f"/ogc/collections/{LAYER}/items"
    pages, body = [], _page(app_client, url, limit=50)
    assert "prev" not in _links(body) and "first" not in _links(body)
    while True:
        pages.append([f["id"] for f in body["features"]])
        links = _links(body)
        if "next" not in links:
            break
        assert body["numberMatched"] == N
        body = _page(app_client, links["next"])
        assert "first" in _links(body) and "prev" in _links(body)
    assert [len(p) for p in pages] == [50, 50, 50, 50, 37]
    assert sum(pages, []) == list(range(1, N + 1))
    back = [pages[-1]]
    while "prev" in _links(body):
        body = _page(app_client, _links(body)["prev"])
        back.append([f["id"] for f in body["features"]])
        assert "next" in _links(body)
    assert back[::-1] == pages
    first = _page(app_client, _links(body)["first"])
    assert [f["id"] for f in first["features"]] == pages[0]


def test_no_next_after_a_last_full_page(app_client, layer):
    first = _page(app_client, "/ogc/collections/t_pages_20/items", limit=10)
    second = _page(app_client, _links(first)["next"])
    assert [f["id"] for f in second["features"]] == list(range(11, 21))
    assert "next" not in _links(second)
    whole = _page(app_client, "/ogc/collections/t_pages_20/items", limit=20)
    assert set(_links(whole)) == set()


def test_sorted_and_offset_pages(app_client, layer):
    url = f"/ogc/collections/{LAYER}/items"
    got = []
    body = _page(app_client, url, limit=40, sortby="-rank")
    while True:
        got += [(f["properties"]["rank"], f["id"]) for f in body["features"]]
        if "next" not in _links(body):
            break
        body = _page(app_client, _links(body)["next"])
    assert got == sorted(((i % 7, i) for i in range(1, N + 1)), reverse=True)
    # an offset page offers its way back; mixed directions page by offset
    body = _page(app_client, url, limit=30, offset=60)
    assert [f["id"] for f in body["features"]][0] == 61
    prev = _page(app_client, _links(body)["prev"])
    assert [f["id"] for f in prev["features"]] == list(range(31, 61))
    mixed = _page(app_client, url, limit=100, offset=100, sortby="rank,-label")
    assert "offset=200" in _links(mixed)["next"] and "offset" not in _links(mixed)["prev"]
    last = _page(app_client, url, limit=100, offset=200, sortby="rank,-label")
    assert len(last["features"]) == 37 and "next" not in _links(last)


def test_default_page_and_declared_limit(app_client, layer):
    body = _page(app_client, f"/ogc/collections/{LAYER}/items")
    assert len(body["features"]) == 100 and "next" in _links(body)
    oas = app_client.get("/ogc/openapi", params={"f": "json"}).json()
    limit = oas["components"]["parameters"]["limit"]
    assert limit["schema"]["default"] == 100 and limit["schema"]["maximum"] == 10_000
    items_paths = [p for p in oas["paths"] if p.endswith("/items")]
    assert f"/collections/{LAYER}/items" in items_paths and "/collections/catalog/items" \
        in items_paths
    for path in items_paths:
        params = oas["paths"][path]["get"]["parameters"]
        assert {"$ref": "#/components/parameters/limit"} in params, path
        assert not [p for p in params if p.get("name") == "limit"], path
    r = app_client.get(f"/ogc/collections/{LAYER}/items", params={"limit": 10_001})
    assert r.status_code == 400


def test_page_size_is_a_setting(serve_with, layer):
    import httpx

    with serve_with(JMGEO_ITEMS_PAGE_SIZE="25", JMGEO_ITEMS_MAX_LIMIT="60") as url:
        body = httpx.get(f"{url}/ogc/collections/{LAYER}/items").json()
        assert len(body["features"]) == 25
        limit = httpx.get(f"{url}/ogc/openapi?f=json").json()["components"]["parameters"][
            "limit"]["schema"]
        assert (limit["default"], limit["maximum"]) == (25, 60)
        assert httpx.get(f"{url}/ogc/collections/{LAYER}/items?limit=61").status_code == 400


def _csv(r) -> list[dict]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_items_as_csv(app_client, layer):
    url = f"/ogc/collections/{LAYER}/items"
    r = app_client.get(url, params={"f": "csv", "limit": 5, "label": "要素3"})
    rows = _csv(r)
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    assert list(rows[0]) == ["fid", "label", "odd", "rank", "WKT"]
    assert rows == [{"fid": "3", "label": "要素3", "odd": "true", "rank": "3",
                     "WKT": rows[0]["WKT"]}]
    pt = shapely.wkt.loads(rows[0]["WKT"]).geoms[0]
    assert (pt.x, pt.y) == pytest.approx((112.503, 22.0015))
    # the same page as the GeoJSON, paged by the Link header
    r = app_client.get(url, params={"f": "csv", "limit": 100})
    link = re.match(r'<([^>]+)>; rel="next"', r.headers["link"]).group(1)
    assert "f=csv" in link and "cursor=" in link
    second = _csv(app_client.get(link.replace("http://testserver", "")))
    assert [row["fid"] for row in second] == [str(i) for i in range(101, 201)]
    # Accept: text/csv; crs= in the authority order of the CRS it names
    r = app_client.get(f"{url}?limit=1", headers={"Accept": "text/csv"})
    assert len(_csv(r)) == 1
    r = app_client.get(url, params={"f": "csv", "limit": 1,
                                    "crs": "http://www.opengis.net/def/crs/EPSG/0/4490"})
    pt = shapely.wkt.loads(_csv(r)[0]["WKT"]).geoms[0]
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4490>"
    assert (pt.x, pt.y) == pytest.approx((22.0005, 112.501))
    # skipGeometry: no WKT column; properties: only those
    rows = _csv(app_client.get(url, params={"f": "csv", "limit": 2, "skipGeometry": "true",
                                            "properties": "label"}))
    assert list(rows[0]) == ["fid", "label"]
    assert app_client.get(url, params={"f": "nonsense"}).status_code == 400


def _ogrinfo(url: str, layer: str, *options: str) -> tuple[int, list[str]]:
    """(features GDAL read, the items requests it made) — GDAL's own HTTP debug log."""
    env = dict(os.environ, CPL_DEBUG="ON", GDAL_HTTP_TIMEOUT="30")
    out = subprocess.run(["/usr/bin/ogrinfo", "-ro", "-al", "-q", *options, f"OAPIF:{url}/ogc",
                          layer], capture_output=True, text=True, env=env, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    fetches = [line for line in out.stderr.splitlines()
               if line.startswith("HTTP: Fetch(") and f"/collections/{layer}/items" in line]
    return len(re.findall(r"^OGRFeature\(", out.stdout, re.M)), fetches


def test_gdal_reads_every_feature_in_few_requests(live_server, layer):
    """GDAL 3.6 asks its own page size (10) unless told (PAGE_SIZE, up to our maximum):
    either way it reads every feature and stops at the last page — no request after a
    last full page (it reads the first page twice: once for the schema)."""
    n, fetches = _ogrinfo(live_server, "t_pages_20")
    assert n == 20 and len(fetches) == 1 + 2, fetches
    n, fetches = _ogrinfo(live_server, LAYER, "-oo", "PAGE_SIZE=10000")
    assert n == N and len(fetches) <= 2, fetches
    n, fetches = _ogrinfo(live_server, LAYER, "-oo", "PAGE_SIZE=100")
    assert n == N and len(fetches) == 1 + 3, fetches
