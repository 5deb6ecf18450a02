"""Raster layers as OGC API Coverages, through the policy.

A small COG in EPSG:4490 (0.01° cells over 蓬江区 and 台山市, value = 1000·row + col) is
registered by hand following the contract in ``jmgeo.ogc.coverages`` (``layer.kind =
'raster'``, ``layer_version.table_name = 'file:<path>'``), once as an open layer and once
as a conditional one granted to 规划局 (gh) for 蓬江区 only.
"""

from __future__ import annotations

import numpy as np
import pytest
from policy_fixtures import create_callers, create_layers
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy
from rasterio.transform import from_origin

OPEN = "tcov_dem"
COND = "tcov_dem_cond"
WEST, NORTH, RES, SIZE = 112.60, 22.70, 0.01, 60  # 112.6–113.2 E, 22.1–22.7 N
NODATA = -9999.0
VALUES = (np.arange(SIZE)[:, None] * 1000 + np.arange(SIZE)[None, :]).astype("float32")


def make_cog(path) -> None:
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="float32",
                   crs="EPSG:4490", transform=from_origin(WEST, NORTH, RES, RES),
                   nodata=NODATA)
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(VALUES, 1)
            ds.set_band_description(1, "高程 elevation (m)")
        with mem.open() as src:
            rio_copy(src, str(path), driver="COG")


@pytest.fixture(scope="module")
def world(database_url, tmp_path_factory):
    import psycopg

    from layers.grants import add_grant, list_grants
    from layers.registry import publish

    with psycopg.connect(database_url, autocommit=True) as conn:
        create_layers(conn)
        callers = create_callers(conn)  # departments, gtzy owner, gh/hb/jy keys
        for name, cls in ((OPEN, "open"), (COND, "conditional")):
            if conn.execute("SELECT 1 FROM layer WHERE name = %s", (name,)).fetchone():
                continue
            path = tmp_path_factory.mktemp("cog") / f"{name}_v1.tif"
            make_cog(path)
            publish(conn, layer=name, version=1, table_name=f"file:{path}", feature_count=0,
                    report={"kind": "raster"}, title=f"数字高程 {cls}", dept="gtzy",
                    theme="land", sharing_class=cls, kind="raster")
        if not list_grants(conn, layer=COND):
            add_grant(conn, layer=COND, dept="gh", purpose="规划高程分析",
                      approved_by="测试审批人", regions=["440703"], notes="tcov")
    yield callers
    # the session database stays free of rasters other test modules don't expect
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM layer WHERE name = ANY(%s)", ([OPEN, COND],))


def auth(caller) -> dict:
    return {"Authorization": f"Bearer {caller.token}"} if caller.token else {}


def source_window(lon0, lat0, lon1, lat1) -> np.ndarray:
    r0, r1 = round((NORTH - lat1) / RES), round((NORTH - lat0) / RES)
    c0, c1 = round((lon0 - WEST) / RES), round((lon1 - WEST) / RES)
    return VALUES[r0:r1, c0:c1]


def read_tiff(content: bytes):
    with MemoryFile(content) as mem, mem.open() as ds:
        return ds.read(1), ds.bounds, ds.crs, ds.nodata


def test_raster_layer_is_a_coverage_collection(app_client, world):
    r = app_client.get("/ogc/collections?f=json")
    ids = {c["id"] for c in r.json()["collections"]}
    assert OPEN in ids and COND not in ids
    c = app_client.get(f"/ogc/collections/{OPEN}?f=json").json()
    assert any(link["href"].endswith(f"/collections/{OPEN}/coverage?f=json")
               for link in c["links"])
    assert c["extent"]["spatial"]["bbox"][0] == pytest.approx([112.6, 22.1, 113.2, 22.7])


def test_bbox_subset_coveragejson(app_client, world):
    r = app_client.get(f"/ogc/collections/{OPEN}/coverage",
                       params={"bbox": "112.9,22.3,113.0,22.4", "f": "json"})
    assert r.status_code == 200, r.text
    cj = r.json()
    assert cj["type"] == "Coverage"
    rng = cj["ranges"]["1"]
    assert rng["shape"] == [10, 10]
    got = np.array(rng["values"], dtype="float64").reshape(10, 10)
    np.testing.assert_array_equal(got, source_window(112.9, 22.3, 113.0, 22.4))
    assert cj["parameters"]["1"]["description"]["zh"] == "高程 elevation (m)"
    assert cj["domain"]["axes"]["x"]["start"] == pytest.approx(112.9)


def test_bbox_subset_geotiff(app_client, world):
    r = app_client.get(f"/ogc/collections/{OPEN}/coverage",
                       params={"bbox": "112.9,22.3,113.0,22.4", "f": "GTiff"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/tiff"
    assert f'filename="{OPEN}.tif"' in r.headers["content-disposition"]
    data, bounds, crs, _ = read_tiff(r.content)
    assert crs.to_epsg() == 4490
    assert tuple(bounds) == pytest.approx((112.9, 22.3, 113.0, 22.4))
    np.testing.assert_array_equal(data, source_window(112.9, 22.3, 113.0, 22.4))


def test_bbox_crs_4490_is_lat_lon_and_projected_works(app_client, world):
    base = app_client.get(f"/ogc/collections/{OPEN}/coverage",
                          params={"bbox": "112.9,22.3,113.0,22.4", "f": "json"}).json()
    r = app_client.get(f"/ogc/collections/{OPEN}/coverage", params={
        "bbox": "22.3,112.9,22.4,113.0", "f": "json",
        "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4490"})
    assert r.status_code == 200, r.text
    assert r.json()["ranges"] == base["ranges"]
    # CGCS2000 / 3-degree GK CM 114E (4547), northing/easting authority order
    r = app_client.get(f"/ogc/collections/{OPEN}/coverage", params={
        "bbox": "2470000,387000,2480000,397000", "f": "json",
        "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4547"})
    assert r.status_code == 200, r.text
    x = r.json()["domain"]["axes"]["x"]
    assert 112.8 < x["start"] < x["stop"] < 113.1


def test_whole_coverage_native(app_client, world):
    r = app_client.get(f"/ogc/collections/{OPEN}/coverage", params={"f": "GTiff"})
    assert r.status_code == 200
    data, bounds, _, _ = read_tiff(r.content)
    np.testing.assert_array_equal(data, VALUES)


def test_malformed_bbox_is_400(app_client, world):
    r = app_client.get(f"/ogc/collections/{OPEN}/coverage", params={"bbox": "1,2,x"})
    assert r.status_code == 400
    assert "bbox" in r.json()["description"]


def test_region_stats_of_a_raster_is_a_clear_400(app_client, world):
    r = app_client.get("/regions/440700/stats", params={"layer": OPEN})
    assert r.status_code == 400
    assert "raster" in r.json()["description"]


@pytest.mark.parametrize("caller", ["anonymous", "unrelated", "expired_grant"])
def test_no_rights_answers_like_nonexistent(app_client, world, caller):
    h = auth(world[caller])
    for query in ({"f": "json"}, {"f": "GTiff", "bbox": "112.9,22.3,113.0,22.4"}):
        hidden = app_client.get(f"/ogc/collections/{COND}/coverage", params=query, headers=h)
        missing = app_client.get("/ogc/collections/tcov_never_existed/coverage",
                                 params=query, headers=h)
        assert hidden.status_code == missing.status_code == 404
        assert hidden.content == missing.content
    assert app_client.get(f"/ogc/collections/{COND}", headers=h).status_code == 404


def test_grant_region_masks_pixels(app_client, world, db):
    gh = auth(world["limited_grant"])
    r = app_client.get(f"/ogc/collections/{COND}/coverage", params={"f": "GTiff"}, headers=gh)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, no-store"
    data, bounds, _, nodata = read_tiff(r.content)
    # cut to 蓬江区's extent, every pixel outside 蓬江区 masked
    (minx, miny, maxx, maxy), = db.execute(
        "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM region "
        "WHERE code = '440703' AND valid_to IS NULL").fetchall()
    assert bounds.left >= minx - RES and bounds.right <= maxx + RES
    assert bounds.bottom >= min(miny, 22.1) - RES and bounds.top <= maxy + RES
    inside = data != nodata
    assert inside.any() and (~inside).any()
    # unmasked pixels carry the source values of the same cells
    r0 = round((NORTH - bounds.top) / RES)
    c0 = round((bounds.left - WEST) / RES)
    src = VALUES[r0:r0 + data.shape[0], c0:c0 + data.shape[1]]
    np.testing.assert_array_equal(data[inside], src[inside])
    # pixel centres well inside 台山市 are never handed out
    r = app_client.get(f"/ogc/collections/{COND}/coverage",
                       params={"f": "json", "bbox": "112.70,22.15,112.80,22.25"}, headers=gh)
    assert r.status_code == 204
    # the owner gets the same request unmasked
    owner = auth(world["owner"])
    r = app_client.get(f"/ogc/collections/{COND}/coverage",
                       params={"f": "json", "bbox": "112.70,22.15,112.80,22.25"}, headers=owner)
    assert r.status_code == 200
    assert None not in r.json()["ranges"]["1"]["values"]


def test_coverage_access_is_audited(app_client, world, db):
    def count():
        return db.execute("SELECT count(*) FROM audit_log WHERE layer = %s AND action = "
                          "'ogc.coverage'", (COND,)).fetchone()[0]

    before = count()
    r = app_client.get(f"/ogc/collections/{COND}/coverage",
                       params={"f": "json", "bbox": "113.0,22.55,113.05,22.6"},
                       headers=auth(world["limited_grant"]))
    assert r.status_code == 200, r.text
    assert count() == before + 1


def test_loaded_geotiff_is_served(app_client, world, db, tmp_path, capsys):
    """End to end with the loader: a GK-zone GeoTIFF → ``jmgeo load`` → COG → coverage."""
    from pathlib import Path

    from rasterio.transform import from_origin

    from jmgeo.cli import main

    dem = (np.arange(120 * 100, dtype="float32").reshape(100, 120) % 50) + 5
    path = tmp_path / "dem.tif"
    profile = dict(driver="GTiff", width=120, height=100, count=1, dtype="float32",
                   crs="EPSG:4547", nodata=-9999, transform=from_origin(390_000, 2_500_000,
                                                                        30, 30))
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(dem, 1)
        path.write_bytes(mem.read())
    assert main(["load", str(path), "--dept", "gtzy", "--layer", "tcov_loaded", "--theme",
                 "land", "--sharing", "open", "--no-progress"]) == 0
    capsys.readouterr()
    table = db.execute("SELECT v.table_name FROM layer l JOIN layer_version v ON v.layer_id "
                       "= l.id AND v.version = l.current_version WHERE l.name = "
                       "'tcov_loaded'").fetchone()[0]
    try:
        r = app_client.get("/ogc/collections/tcov_loaded/coverage", params={"f": "json"})
        assert r.status_code == 200, r.text
        values = [v for v in r.json()["ranges"]["1"]["values"] if v is not None]
        assert values and 5 <= min(values) and max(values) <= 55
    finally:  # the session database stays free of rasters other tests don't expect
        db.execute("DELETE FROM layer WHERE name = 'tcov_loaded'")
        Path(table).unlink(missing_ok=True)


def test_band_selection_and_unknown_band(app_client, world):
    r = app_client.get(f"/ogc/collections/{OPEN}/coverage",
                       params={"f": "json", "properties": "1", "bbox": "112.9,22.3,112.95,22.35"})
    assert r.status_code == 200 and list(r.json()["ranges"]) == ["1"]
    r = app_client.get(f"/ogc/collections/{OPEN}/coverage",
                       params={"f": "json", "properties": "7"})
    assert r.status_code == 400


def test_coverage_etag_304_and_access(app_client, world, db):
    """A coverage is tagged by its version and the caller's access (issue 12 §2): the
    same request is the same bytes under the same strong ETag, If-None-Match answers 304
    (audited for non-open data, 0 rows), and another access gets another tag."""
    params = {"f": "GTiff", "bbox": "113.0,22.55,113.05,22.6"}  # in 蓬江区, the grant's
    url = f"/ogc/collections/{OPEN}/coverage"
    first, again = app_client.get(url, params=params), app_client.get(url, params=params)
    assert first.status_code == 200 and first.content == again.content
    tag = first.headers["etag"]
    assert again.headers["etag"] == tag and not tag.startswith("W/")
    r = app_client.get(url, params=params, headers={"If-None-Match": tag})
    assert r.status_code == 304 and r.content == b""
    cond = f"/ogc/collections/{COND}/coverage"
    gh, owner = auth(world["limited_grant"]), auth(world["owner"])
    mine = app_client.get(cond, params=params, headers=gh)
    theirs = app_client.get(cond, params=params, headers=owner)
    assert mine.headers["etag"] != theirs.headers["etag"]
    r = app_client.get(cond, params=params,
                       headers={**gh, "If-None-Match": theirs.headers["etag"]})
    assert r.status_code == 200 and r.content == mine.content
    r = app_client.get(cond, params=params, headers={**gh, "If-None-Match": mine.headers["etag"]})
    assert r.status_code == 304
    rows, request = db.execute(
        "SELECT rows, request FROM audit_log WHERE layer = %s AND action = 'ogc.coverage' "
        "ORDER BY id DESC LIMIT 1", (COND,)).fetchone()
    assert rows == 0 and request["status"] == 304
