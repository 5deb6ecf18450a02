"""Absurd coordinates (issue 16): refused at load, naming the file, the feature and the fix;
and what is already stored (loaded before the check) never answers 500 in projected
output CRSs, tiles, map images or region statistics — the geometry is clipped to the
output CRS's domain.

Before: a GeoJSON with one vertex at latitude 1e6 loaded with a warning ("outside
Jiangmen"), and ``crs=EPSG:4547`` items, WebMercatorQuad tiles and EPSG:3857 maps of such
a layer answered 500 (``transform: Invalid coordinate``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import psycopg
import pytest

from jmgeo.cli import main

LOAD = ["load", "--dept", "gtzy", "--theme", "land", "--sharing", "open", "--dry-run"]
ABSURD = "tlim_absurd"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"


@pytest.fixture(scope="module")
def departments(database_url):
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS)


def _geojson(path: Path, coords: list[list[list[float]]]) -> Path:
    feats = [{"type": "Feature", "properties": {"n": i},
              "geometry": {"type": "LineString", "coordinates": c}}
             for i, c in enumerate(coords)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}),
                    encoding="utf-8")
    return path


GOOD = [[113.08, 22.58], [113.09, 22.59]]


@pytest.mark.parametrize("bad", [[113.1, 1e6], [1e12, 22.6], [400.0, 22.6], [113.1, -91.0]])
def test_absurd_geographic_vertex_refused(departments, tmp_path, capsys, bad):
    # nine good lines and one with an absurd vertex: under the 50 % "outside" rule, so
    # before the check it loaded with a warning
    path = _geojson(tmp_path / "roads.geojson", [GOOD] * 9 + [[GOOD[0], bad]])
    code = main([*LOAD, "--layer", "tlim_roads", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "roads.geojson" in err and "feature 10" in err and "implausible" in err, err
    assert "internal" not in err


def test_absurd_projected_vertex_refused(departments, tmp_path, capsys):
    # Gauss-Kruger zone 38 (EPSG:4547) metres; one northing of 1e9 m
    e, n = 390_000.0, 2_497_000.0
    lines = [[[e, n], [e + 100, n + 100]]] * 4 + [[[e, n], [e + 100, 1e9]]]
    path = _geojson(tmp_path / "gk.geojson", lines)
    code = main([*LOAD, "--src-crs", "EPSG:4547", "--layer", "tlim_gk", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "gk.geojson" in err and "feature 5" in err and "EPSG:4547" in err, err


def test_plausible_outside_data_still_loads(departments, tmp_path, capsys):
    # data far from Jiangmen but real (Beijing) with --allow-outside is not "absurd"
    path = _geojson(tmp_path / "bj.geojson", [[[116.39, 39.9], [116.4, 39.91]]])
    code = main([*LOAD, "--allow-outside", "--layer", "tlim_bj", str(path)])
    err = capsys.readouterr().err
    assert code == 0, err


def test_csv_infinite_coordinate_refused(departments, tmp_path, capsys):
    path = tmp_path / "wells.csv"
    path.write_text("name,lon,lat\na,113.1,22.6\nb,113.2,1e400\n", encoding="utf-8")
    code = main([*LOAD, "--layer", "tlim_wells", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "wells.csv" in err and "feature 2" in err and "internal" not in err, err


# -- what is already stored ----------------------------------------------------------
@pytest.fixture(scope="module")
def absurd_layer(database_url, departments):
    """A layer written before the load check existed: one line in 蓬江 with a vertex at
    (300, 95), one at latitude 1e6, and a normal one."""
    from layers.registry import Column, create_data_table, publish

    with psycopg.connect(database_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM layer WHERE name = %s", (ABSURD,)).fetchone():
            return ABSURD
        with conn.transaction():
            table = create_data_table(conn, ABSURD, 1, "MultiLineString",
                                      [Column("mc", label="名称")])
            rows = [(1, "MULTILINESTRING((113.08 22.58, 113.09 22.59, 300 95))", "坏线"),
                    (2, "MULTILINESTRING((113.08 22.58, 113.085 1000000))", "坏线二"),
                    (3, "MULTILINESTRING((113.08 22.585, 113.09 22.585))", "好线")]
            for fid, wkt, mc in rows:
                conn.execute(f"INSERT INTO {table} (fid, geom, mc) VALUES "
                             "(%s, ST_GeomFromText(%s, 4490), %s)", (fid, wkt, mc))
            publish(conn, layer=ABSURD, version=1, table_name=table, feature_count=3,
                    report={}, title="坐标异常线", dept="gtzy", theme="transport",
                    sharing_class="open")
    return ABSURD


@pytest.mark.parametrize("epsg", [3857, 4547, 4546, 4526])
def test_stored_absurd_items_in_projected_crs(app_client, absurd_layer, epsg):
    r = app_client.get(f"/ogc/collections/{absurd_layer}/items",
                       params={"f": "json", "crs": EPSG.format(epsg)})
    assert r.status_code == 200, r.text[:500]
    feats = {f["properties"]["mc"]: f for f in r.json()["features"]}
    assert set(feats) == {"坏线", "坏线二", "好线"}
    good = feats["好线"]["geometry"]["coordinates"]
    assert all(math.isfinite(v) for line in good for pt in line for v in pt)
    one = app_client.get(f"/ogc/collections/{absurd_layer}/items/1",
                         params={"f": "json", "crs": EPSG.format(epsg)})
    assert one.status_code == 200, one.text[:500]


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    col = int((lon + 180) / 360 * n)
    row = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return row, col


@pytest.mark.parametrize("z", [0, 3, 12])
def test_stored_absurd_tiles(app_client, absurd_layer, z):
    import mapbox_vector_tile

    row, col = _tile_of(113.085, 22.585, z)
    r = app_client.get(f"/ogc/collections/{absurd_layer}/tiles/WebMercatorQuad/{z}/{row}/"
                       f"{col}?f=mvt")
    assert r.status_code == 200, r.text[:500]
    layers = mapbox_vector_tile.decode(r.content)
    names = {f["properties"]["mc"] for lyr in layers.values() for f in lyr["features"]}
    assert "坏线" in names  # drawn up to where Web Mercator ends
    if z >= 12:  # (a 1 km line is less than a pixel at z0 and z3)
        assert "好线" in names


def test_stored_absurd_map_image(app_client, absurd_layer):
    r = app_client.get(f"/ogc/collections/{absurd_layer}/map",
                       params={"bbox": "113.0,22.5,113.2,22.7", "width": 200, "height": 200,
                               "crs": EPSG.format(3857), "f": "png"})
    assert r.status_code == 200, r.text[:500]


def test_output_domain_is_transformable():
    """Every corner of every output CRS's domain transforms to finite numbers."""
    from spatial.crs import SUPPORTED_OUTPUT_CRS, get_transformer, output_domain

    for uri in SUPPORTED_OUTPUT_CRS:
        code = int(uri.rsplit("/", 1)[-1]) if uri.rsplit("/", 1)[-1].isdigit() else 4326
        x0, y0, x1, y1 = output_domain(code)
        tr = get_transformer(4490, code)
        for x in (x0, (x0 + x1) / 2, x1):
            for y in (y0, 0.0, y1):
                out = tr.transform(x, y, errcheck=True)
                assert all(math.isfinite(v) for v in out), (code, x, y, out)


def test_stored_absurd_region_stats(app_client, absurd_layer):
    r = app_client.get("/regions/440700/stats", params={"layer": absurd_layer})
    assert r.status_code == 200, r.text[:500]
