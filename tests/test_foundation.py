"""Foundation: migrations, the framework's regions, the OGC surface and its axis order."""

from __future__ import annotations

from urllib.parse import quote

CRS_4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"


def test_regions_codes_and_polygons(db):
    n_codes = db.execute("SELECT count(*) FROM region WHERE valid_to IS NULL").fetchone()[0]
    n_polys = db.execute("SELECT count(*) FROM region WHERE geom IS NOT NULL").fetchone()[0]
    assert n_codes == 90
    assert n_polys == 8
    invalid = db.execute("SELECT count(*) FROM region WHERE NOT ST_IsValid(geom)").fetchone()[0]
    assert invalid == 0


def test_locate_pengjiang(app_client):
    r = app_client.get("/regions/locate", params={"lon": 113.08, "lat": 22.58})
    assert r.status_code == 200
    body = r.json()
    assert body["inside_jiangmen"] is True
    assert body["county"]["code"] == "440703" and body["county"]["name"] == "蓬江区"
    assert body["city"]["code"] == "440700"


def test_locate_outside_jiangmen(app_client):
    r = app_client.get("/regions/locate", params={"lon": 116.4, "lat": 39.9})
    assert r.status_code == 200
    body = r.json()
    assert body["inside_jiangmen"] is False and body["county"] is None
    assert "outside Jiangmen" in body["message"]


def test_locate_bad_input(app_client):
    assert app_client.get("/regions/locate", params={"lon": "abc", "lat": 22}).status_code == 422
    assert app_client.get("/regions/locate", params={"lon": 500, "lat": 22}).status_code == 422


def test_region_tree_and_feature(app_client):
    tree = app_client.get("/regions").json()["regions"]
    assert [r["code"] for r in tree] == ["440700"]
    counties = tree[0]["children"]
    assert len(counties) == 7
    assert sum(len(c["children"]) for c in counties) == 82
    feat = app_client.get("/regions/440781").json()
    assert feat["properties"]["name"] == "台山市"
    assert feat["geometry"]["type"] == "MultiPolygon"
    minx, miny, maxx, maxy = feat["bbox"]
    assert 111.9 < minx < maxx < 113.3 and 21.4 < miny < maxy < 22.9


def test_unknown_region_is_404(app_client):
    r = app_client.get("/regions/999999")
    assert r.status_code == 404
    assert "unknown region code" in r.json()["description"]
    assert r.json()["code"] == "NotFound"


def test_health(app_client):
    body = app_client.get("/health").json()
    assert body["status"] == "ok"
    assert body["postgres"].startswith("15") and body["postgis"].startswith("3")


def test_ogc_collections_lists_regions_with_links(app_client):
    r = app_client.get("/ogc/collections", params={"f": "json"})
    assert r.status_code == 200
    cols = {c["id"]: c for c in r.json()["collections"]}
    assert "regions" in cols
    hrefs = [link["href"] for link in cols["regions"]["links"]]
    assert any(h.startswith("http://testserver/ogc/collections/regions") for h in hrefs)


def test_crs84_bbox_around_pengjiang_returns_pengjiang(app_client):
    """Stock pygeoapi 0.24 swaps the axes here and returns nothing for a 4490 table."""
    r = app_client.get("/ogc/collections/regions/items",
                       params={"bbox": "113.05,22.56,113.10,22.60", "f": "json", "limit": 50})
    assert r.status_code == 200
    codes = {f["id"] for f in r.json()["features"]}
    assert "440703" in codes
    assert "440781" not in codes  # 台山 is far south-west of this box
    # geometry answers in CRS84 lon/lat by default
    pj = next(f for f in r.json()["features"] if f["id"] == "440703")
    lon, lat = _first_coord(pj["geometry"])
    assert 112 < lon < 114 and 21 < lat < 23


def test_crs_4490_answers_lat_lon(app_client):
    r = app_client.get("/ogc/collections/regions/items/440703",
                       params={"crs": CRS_4490, "f": "json"})
    assert r.status_code == 200
    assert r.headers["Content-Crs"] == f"<{CRS_4490}>"
    lat, lon = _first_coord(r.json()["geometry"])
    assert 21 < lat < 23 and 112 < lon < 114


def test_bbox_crs_4490_is_lat_lon(app_client):
    bbox = "22.56,113.05,22.60,113.10"  # lat/lon per EPSG:4490's axis order
    r = app_client.get(f"/ogc/collections/regions/items?f=json&bbox={bbox}"
                       f"&bbox-crs={quote(CRS_4490, safe='')}")
    assert r.status_code == 200
    assert "440703" in {f["id"] for f in r.json()["features"]}


def test_unknown_collection_is_404(app_client):
    r = app_client.get("/ogc/collections/no_such_layer/items", params={"f": "json"})
    assert r.status_code == 404


def _first_coord(geometry):
    coords = geometry["coordinates"]
    while isinstance(coords[0], list):
        coords = coords[0]
    return coords[0], coords[1]


def test_keyset_paging_follows_next_links(app_client):
    """Walking `next` links visits every region polygon once, in code order."""
    seen, links = [], []
    url = "/ogc/collections/regions/items?f=json&limit=3&skipGeometry=true"
    while url:
        body = app_client.get(url).json()
        seen.extend(f["id"] for f in body["features"])
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        links.extend(nxt)
        url = nxt[0].replace("http://testserver", "") if nxt else None
        assert len(seen) < 20
    assert seen == sorted(seen) and len(seen) == 8 and len(set(seen)) == 8
    assert links and all("cursor=" in h and "offset=" not in h for h in links)


def test_region_parameter_and_errors(app_client):
    r = app_client.get("/ogc/collections/regions/items",
                       params={"f": "json", "region": "440703", "limit": 20})
    assert r.status_code == 200
    assert {"440703", "440700"} <= {f["id"] for f in r.json()["features"]}
    bad = app_client.get("/ogc/collections/regions/items", params={"region": "999999"})
    assert bad.status_code == 400 and "region" in bad.json()["description"]
    cur = app_client.get("/ogc/collections/regions/items", params={"cursor": "!!!"})
    assert cur.status_code == 400 and "cursor" in cur.json()["description"]
    unknown = app_client.get("/ogc/collections/regions/items", params={"nosuchfield": "1"})
    assert unknown.status_code == 400


def test_bad_input_answers_400_naming_the_parameter(app_client):
    base = "/ogc/collections/regions/items"
    assert app_client.get(base, params={"bbox": "1,2,3"}).status_code == 400
    assert app_client.get(base, params={"crs": "http://example.com/crs/1"}).status_code == 400
    assert app_client.get(base, params={"filter": "name ==== 'x'"}).status_code == 400
    assert app_client.get(base, params={"limit": "100000"}).status_code == 400
    assert app_client.get(base, params={"sortby": "nosuchfield"}).status_code == 400
    r = app_client.get(base, params={"filter": "nosuchfield = 'x'"})
    assert r.status_code == 400 and "unknown property" in r.json()["description"]


def test_cql2_filter_on_regions(app_client):
    r = app_client.get("/ogc/collections/regions/items",
                       params={"f": "json", "filter": "kind = 'county_city' AND name LIKE '台%'"})
    assert r.status_code == 200
    assert [f["id"] for f in r.json()["features"]] == ["440781"]
    r = app_client.get("/ogc/collections/regions/items", params={
        "f": "json", "filter": "S_INTERSECTS(geom, POINT(113.08 22.58)) AND kind <> 'city'"})
    assert [f["id"] for f in r.json()["features"]] == ["440703"]


def test_projected_crs_output(app_client):
    r = app_client.get("/ogc/collections/regions/items/440703",
                       params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4547"})
    assert r.status_code == 200
    first, second = _first_coord(r.json()["geometry"])
    # EPSG:4547's authority order is northing, easting (CM 114E, false easting 500 km)
    assert 2_400_000 < first < 2_600_000 and 350_000 < second < 500_000


def test_tile_matrix_sets_list_cgcs2000(app_client):
    body = app_client.get("/ogc/TileMatrixSets", params={"f": "json"}).json()
    ids = [t["id"] for t in body["tileMatrixSets"]]
    assert {"WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad"} <= set(ids)
    href = next(t for t in body["tileMatrixSets"] if t["id"] == "CGCS2000Quad")["links"][0]
    r = app_client.get(href["href"].replace("http://testserver", ""))
    assert r.status_code == 200 and r.json()["id"] == "CGCS2000Quad"


def test_region_in_cql2(app_client):
    """`region` is a queryable of every layer, and REGION(code) a geometry in CQL2."""
    base = "/ogc/collections/regions/items"
    r = app_client.get(base, params={"f": "json", "filter": "region = '440781' AND kind <> 'city'",
                                     "limit": 50})
    assert r.status_code == 200, r.text
    ids = {f["id"] for f in r.json()["features"]}
    assert "440781" in ids and "440703" not in ids
    r = app_client.get(base, params={
        "f": "json", "filter": "S_WITHIN(geom, REGION('440700')) AND kind <> 'city'",
        "limit": 50})
    assert r.status_code == 200, r.text
    assert len(r.json()["features"]) >= 1
    bad = app_client.get(base, params={"filter": "S_INTERSECTS(geom, REGION(1, 2))"})
    assert bad.status_code == 400


def test_region_parameter_declared_in_openapi_and_queryables(app_client):
    oas = app_client.get("/ogc/openapi", params={"f": "json"}).json()
    params = oas["paths"]["/collections/regions/items"]["get"]["parameters"]
    assert {"region", "cursor"} <= {p.get("name") for p in params}
    q = app_client.get("/ogc/collections/regions/queryables", params={"f": "json"}).json()
    assert "region" in q["properties"]
