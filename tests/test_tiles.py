"""Vector tiles (OGC API Tiles, MVT): fetched through the app, decoded, checked.

A small open polygon/line layer with hand-placed coordinates is tiled at z12–z15 in
WebMercatorQuad, WorldCRS84Quad and CGCS2000Quad; every decoded vertex must sit where
the source coordinate projects into tile space (±1 grid unit). The sharing policy is
checked on the policy test layers (``policy_fixtures``): hidden fields absent, masked
fields masked, region scope honoured, hidden layers answer like nonexistent ones.
"""

from __future__ import annotations

import math

import mapbox_vector_tile
import pytest
from policy_fixtures import GRANT_FIELDS, create_callers, create_layers, layer_name
from shapely import LineString, Point

LAYER = "ttile_parcels"
EXTENT = 4096
MVT = "application/vnd.mapbox-vector-tile"
# a parcel in 蓬江区 (square with an extra vertex per side), a road and a well, lon/lat
PARCEL = [(113.0800, 22.5800), (113.0850, 22.5800), (113.0900, 22.5800), (113.0900, 22.5850),
          (113.0900, 22.5900), (113.0800, 22.5900), (113.0800, 22.5800)]
CORNERS = [PARCEL[0], PARCEL[2], PARCEL[4], PARCEL[5]]
WELL = (113.0835, 22.5835)


@pytest.fixture(scope="module")
def world(database_url):
    import psycopg

    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.identity import DEMO_EXTRA_DEPARTMENTS
    from layers.registry import Column, create_data_table, publish

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
        create_layers(conn)
        callers = create_callers(conn)
        if not conn.execute("SELECT 1 FROM layer WHERE name = %s", (LAYER,)).fetchone():
            with conn.transaction():
                table = create_data_table(
                    conn, LAYER, 1, "MultiPolygon",
                    [Column("dkmc", label="地块名称"), Column("qlr", label="权利人"),
                     Column("mj", "double precision", label="面积"),
                     Column("djrq", "date", label="登记日期")])
                poly = "MULTIPOLYGON(((" + ", ".join(f"{x} {y}" for x, y in PARCEL) + ")))"
                conn.execute(
                    f"INSERT INTO {table} (fid, geom, dkmc, qlr, mj, djrq) VALUES "
                    "(7, ST_GeomFromText(%s, 4490), '北街地块', '陈大明', 1234.5, '2024-03-01')",
                    (poly,))
                publish(conn, layer=LAYER, version=1, table_name=table, feature_count=1,
                        report={}, title="瓦片测试地块", dept="gtzy", theme="land",
                        sharing_class="open", sensitive_fields={"qlr": "person_name"})
    return callers


def auth(caller) -> dict:
    return {"Authorization": f"Bearer {caller.token}"} if caller.token else {}


def merc(lon: float, lat: float) -> tuple[float, float]:
    r = 6378137.0
    return (math.radians(lon) * r,
            r * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)))


def tile_of(tms: str, z: int, lon: float, lat: float) -> tuple[int, int]:
    """(row, col) of the tile containing lon/lat."""
    if tms == "WebMercatorQuad":
        n = 2 ** z
        col = int((lon + 180) / 360 * n)
        row = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
        return row, col
    size = 180 / 2 ** z
    return int((90 - lat) / size), int((lon + 180) / size)


def to_tile_space(tms: str, z: int, row: int, col: int, lon: float, lat: float):
    """Where lon/lat lands in the tile's 0..4096 grid (y down, as encoded in MVT)."""
    if tms == "WebMercatorQuad":
        half = 20037508.3427892
        size = 2 * half / 2 ** z
        x, y = merc(lon, lat)
        return (x - (-half + col * size)) / size * EXTENT, ((half - row * size) - y) / size * EXTENT
    size = 180 / 2 ** z
    return ((lon - (-180 + col * size)) / size * EXTENT,
            ((90 - row * size) - lat) / size * EXTENT)


def fetch(client, collection, tms, z, row, col, headers=None):
    return client.get(f"/ogc/collections/{collection}/tiles/{tms}/{z}/{row}/{col}?f=mvt",
                      headers=headers or {})


def decode(content: bytes) -> dict:
    return mapbox_vector_tile.decode(content, default_options={"y_coord_down": True})


def rings(geometry: dict) -> list[list]:
    coords = geometry["coordinates"]
    if geometry["type"] == "Polygon":
        return coords
    if geometry["type"] == "MultiPolygon":
        return [ring for poly in coords for ring in poly]
    raise AssertionError(geometry["type"])


@pytest.mark.parametrize("tms", ["WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad"])
@pytest.mark.parametrize("z", [12, 13, 14, 15])
def test_tile_decodes_to_source_geometry(app_client, world, tms, z):
    """Every tile the parcel touches: properties, feature id, and geometry in tile space —
    each parcel corner in the tile (plus buffer) at its projected position (±1 unit), every
    decoded vertex on the source boundary or on the clip edge."""
    tiles = {tile_of(tms, z, lon, lat) for lon, lat in CORNERS + [WELL]}
    found = set()
    for row, col in sorted(tiles):
        r = fetch(app_client, LAYER, tms, z, row, col)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith(MVT)
        layers = decode(r.content)
        assert list(layers) == [LAYER]
        assert layers[LAYER]["extent"] == EXTENT
        (feat,) = layers[LAYER]["features"]
        assert feat["id"] == 7
        props = feat["properties"]
        assert props["dkmc"] == "北街地块"
        assert props["qlr"] == "陈*明"  # sensitive for everyone but the owner
        assert props["mj"] == pytest.approx(1234.5)
        assert props["djrq"] == "2024-03-01"
        assert "fid" not in props and "geom" not in props
        got = [tuple(p) for ring in rings(feat["geometry"]) for p in ring]
        src = LineString([to_tile_space(tms, z, row, col, x, y) for x, y in PARCEL])
        for corner in CORNERS:
            px, py = to_tile_space(tms, z, row, col, *corner)
            if -64 <= px <= EXTENT + 64 and -64 <= py <= EXTENT + 64:
                assert min(math.hypot(gx - px, gy - py) for gx, gy in got) <= 1.0, corner
                found.add(corner)
        for gx, gy in got:
            on_clip_edge = min(abs(gx + 64), abs(gx - EXTENT - 64), abs(gy + 64),
                               abs(gy - EXTENT - 64)) <= 1
            assert on_clip_edge or src.distance(Point(gx, gy)) <= 1.0, (gx, gy)
    assert found == set(CORNERS)

def test_collinear_vertex_simplified_at_low_zoom(app_client, world):
    """At z12 the mid-side vertices are collinear: simplification removes them."""
    row, col = tile_of("WebMercatorQuad", 12, *WELL)
    feat = decode(fetch(app_client, LAYER, "WebMercatorQuad", 12, row, col).content)[LAYER][
        "features"][0]
    (ring,) = rings(feat["geometry"])
    assert len(ring) <= 5  # 4 corners (+ closing point); the 2 collinear vertices are gone


def test_empty_tile_is_204(app_client, world):
    r = fetch(app_client, LAYER, "WebMercatorQuad", 12, 0, 0)
    assert r.status_code == 204
    assert r.content == b""


@pytest.mark.parametrize("tms,z,row,col,param", [
    ("WebMercatorQuad", 23, 0, 0, "tileMatrix"),
    ("WebMercatorQuad", -1, 0, 0, "tileMatrix"),
    ("WebMercatorQuad", 12, 4096, 0, "tileRow"),
    ("WebMercatorQuad", 12, 0, 4096, "tileCol"),
    ("WorldCRS84Quad", 12, 4096, 0, "tileRow"),   # 4096 rows × 8192 columns at z12
    ("CGCS2000Quad", 12, 0, 8192, "tileCol"),
    ("WebMercatorQuad", "x", 0, 0, "tileMatrix"),
    ("WebMercatorQuad", 12, "1.5", 0, "tileRow"),
    ("NoSuchQuad", 12, 0, 0, "tileMatrixSetId"),
])
def test_out_of_range_is_400_naming_the_parameter(app_client, world, tms, z, row, col, param):
    r = fetch(app_client, LAYER, tms, z, row, col)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == "InvalidParameterValue"
    assert param in body["description"]


def test_wide_crs84_columns_are_in_range(app_client, world):
    """WorldCRS84Quad has twice as many columns as rows: col 8191 at z12 is valid."""
    assert fetch(app_client, LAYER, "WorldCRS84Quad", 12, 0, 8191).status_code == 204


def test_tilesets_listing_and_metadata(app_client, world):
    r = app_client.get(f"/ogc/collections/{LAYER}/tiles?f=json")
    assert r.status_code == 200, r.text
    sets = {t["tileMatrixSetURI"]: t for t in r.json()["tilesets"]}
    assert "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad" in sets
    assert any(t["crs"].endswith("/EPSG/0/4490") for t in sets.values())
    meta = app_client.get(f"/ogc/collections/{LAYER}/tiles/WebMercatorQuad/metadata?f=json")
    assert meta.status_code == 200, meta.text
    assert meta.json()["layers"][0]["id"] == LAYER
    assert meta.json()["accessConstraints"] == "unclassified"  # an open layer
    tj = app_client.get(f"/ogc/collections/{LAYER}/tiles/WebMercatorQuad/metadata?f=tilejson")
    assert tj.status_code == 200, tj.text
    tj = tj.json()
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"][0].endswith(f"/collections/{LAYER}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}?f=mvt")
    assert set(tj["vector_layers"][0]["fields"]) == {"dkmc", "qlr", "mj", "djrq"}
    bad = app_client.get(f"/ogc/collections/{LAYER}/tiles/NoSuchQuad/metadata?f=json")
    assert bad.status_code == 400 and "tileMatrixSetId" in bad.json()["description"]
    tms = app_client.get("/ogc/TileMatrixSets/CGCS2000Quad?f=json")
    assert tms.status_code == 200
    assert tms.json()["orderedAxes"] == ["Lat", "Lon"]
    assert tms.json()["tileMatrices"][0]["pointOfOrigin"] == [90, -180]


def test_collection_links_to_tiles(app_client, world):
    r = app_client.get(f"/ogc/collections/{LAYER}?f=json")
    assert any(link["href"].endswith(f"/collections/{LAYER}/tiles?f=json")
               for link in r.json()["links"])


def test_open_layer_masks_sensitive_fields(app_client, world):
    row, col = tile_of("WebMercatorQuad", 12, 113.08, 22.58)
    r = fetch(app_client, layer_name("open"), "WebMercatorQuad", 12, row, col)
    assert r.status_code == 200
    feats = decode(r.content)[layer_name("open")]["features"]
    assert {f["id"] for f in feats} == {1}
    props = feats[0]["properties"]
    assert props["qlr"] == "陈*明"
    assert props["phone"] == "138****1234"
    assert props["sfz"] == "4407**********1234"
    assert props["name"] == "北街地块"


def test_owner_sees_clear_values(app_client, world):
    row, col = tile_of("WebMercatorQuad", 12, 113.08, 22.58)
    r = fetch(app_client, layer_name("not_shared"), "WebMercatorQuad", 12, row, col,
              auth(world["owner"]))
    assert r.status_code == 200
    props = decode(r.content)[layer_name("not_shared")]["features"][0]["properties"]
    assert props["qlr"] == "陈大明" and props["sfz"] == "440703199001011234"


def test_grant_limits_fields_and_region(app_client, world):
    cond = layer_name("conditional")
    caller = world["limited_grant"]
    # one z8 tile holds all four features: two in 蓬江区 (the grant's region), two in 台山市
    row, col = tile_of("WebMercatorQuad", 8, 113.08, 22.58)
    assert (row, col) == tile_of("WebMercatorQuad", 8, 112.79, 22.25)
    r = fetch(app_client, cond, "WebMercatorQuad", 8, row, col, auth(caller))
    assert r.status_code == 200, r.text
    feats = decode(r.content)[cond]["features"]
    assert {f["id"] for f in feats} == {1, 2}
    for f in feats:
        assert set(f["properties"]) == set(GRANT_FIELDS)  # qlr, sfz absent
        assert "*" not in f["properties"]["phone"]  # the grant names phone: clear
    r = fetch(app_client, cond, "WebMercatorQuad", 8, row, col, auth(world["owner"]))
    assert {f["id"] for f in decode(r.content)[cond]["features"]} == {1, 2, 3, 4}
    # a z12 tile holding only 台山市 features is empty for the grantee
    row, col = tile_of("WebMercatorQuad", 12, 112.79, 22.25)
    assert fetch(app_client, cond, "WebMercatorQuad", 12, row, col,
                 auth(caller)).status_code == 204
    assert fetch(app_client, cond, "WebMercatorQuad", 12, row, col,
                 auth(world["owner"])).status_code == 200

@pytest.mark.parametrize("path", [
    "tiles", "tiles/WebMercatorQuad", "tiles/WebMercatorQuad/metadata",
    "tiles/WebMercatorQuad/12/1785/3334", "tiles/WebMercatorQuad/99/0/0"])
@pytest.mark.parametrize("caller,cls", [("anonymous", "conditional"),
                                        ("anonymous", "unconditional"),
                                        ("unrelated", "not_shared"),
                                        ("expired_grant", "conditional")])
def test_hidden_layer_answers_like_nonexistent(app_client, world, path, caller, cls):
    headers = auth(world[caller])
    hidden = app_client.get(f"/ogc/collections/{layer_name(cls)}/{path}?f=mvt",
                            headers=headers)
    missing = app_client.get(f"/ogc/collections/tpol_never_existed/{path}?f=mvt",
                             headers=headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content
    assert hidden.headers["content-type"] == missing.headers["content-type"]


def test_non_open_tiles_are_audited_and_private(app_client, world, db):
    cond = layer_name("conditional")
    meta = app_client.get(f"/ogc/collections/{cond}/tiles/WebMercatorQuad/metadata?f=json",
                          headers=auth(world["limited_grant"]))
    assert meta.json()["accessConstraints"] == "restricted"
    before = db.execute("SELECT count(*) FROM audit_log WHERE layer = %s AND action = "
                        "'ogc.tiles'", (cond,)).fetchone()[0]
    row, col = tile_of("WebMercatorQuad", 10, 113.08, 22.58)
    r = fetch(app_client, cond, "WebMercatorQuad", 10, row, col, auth(world["limited_grant"]))
    assert r.status_code == 200
    assert r.headers["cache-control"] == "private, no-store"
    after = db.execute("SELECT count(*) FROM audit_log WHERE layer = %s AND action = "
                       "'ogc.tiles'", (cond,)).fetchone()[0]
    assert after == before + 1


def test_regions_collection_has_tiles(app_client, world):
    row, col = tile_of("WebMercatorQuad", 8, 112.8, 22.3)
    r = fetch(app_client, "regions", "WebMercatorQuad", 8, row, col)
    assert r.status_code == 200, r.text
    feats = decode(r.content)["regions"]["features"]
    codes = {f["properties"]["code"] for f in feats}
    assert {"440703", "440781"} <= codes
    assert all(f["properties"]["name"] for f in feats)


def test_features_per_tile_are_capped(world, database_url):
    import psycopg

    from jmgeo.ogc.tiles import PROVIDER, PolicyMVTProvider

    cond = layer_name("conditional")
    with psycopg.connect(database_url) as conn:
        table = conn.execute(
            "SELECT v.table_name FROM layer l JOIN layer_version v ON v.layer_id = l.id AND "
            "v.version = l.current_version WHERE l.name = %s", (cond,)).fetchone()[0]
    row, col = tile_of("WebMercatorQuad", 8, 113.08, 22.58)
    for cap, n in ((None, 4), (3, 3)):
        options = {"max_features": cap} if cap else {}
        p = PolicyMVTProvider({"name": PROVIDER, "type": "tile", "data": {"table": table},
                               "options": options, "jmgeo": {"layer": cond}})
        tile = p.get_tiles(tileset="WebMercatorQuad", z=8, y=row, x=col)
        assert len(decode(tile)[cond]["features"]) == n


@pytest.mark.parametrize("tms", ["WebMercatorQuad", "CGCS2000Quad"])
def test_the_tile_statement_finds_its_rows_by_the_spatial_index(world, database_url, tms):
    """A tile reads the rows of its box through the GIST index, never the whole table:
    the clipping of what is drawn (absurd vertices) must stay out of the WHERE filter."""
    import psycopg

    from jmgeo.ogc.tiles import PolicyMVTProvider, tile_provider_def
    from layers.policy import ANONYMOUS, access_row, decide

    with psycopg.connect(database_url, autocommit=True) as conn:
        from psycopg.rows import dict_row

        conn.row_factory = dict_row
        layer = access_row(conn, LAYER)
        provider = PolicyMVTProvider(tile_provider_def(layer, decide(ANONYMOUS, layer)))
        row, col = tile_of(tms, 13, *WELL)
        query, params = provider.tile_query(tms, 13, row, col)
        conn.execute("SET enable_seqscan = off")  # a plan that CAN use the index must
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(
            psycopg.sql.SQL("EXPLAIN ") + query, params).fetchall())
    assert "Index" in plan and "Seq Scan" not in plan, plan
