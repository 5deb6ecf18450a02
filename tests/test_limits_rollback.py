"""Rollback exactness (issue 16): rolling back restores the version's kind, geometry
type, source CRS, key, labels, style, and its catalog entry (fields, format, extent) —
across every kind transition the registry allows (vector ↔ raster), and the ones it
refuses (vector/raster ↔ table) change nothing.

Before: ``jmgeo layer rollback`` across a vector → raster change only moved
``current_version``: the registry kept ``kind = 'raster'`` with a vector table current.
"""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row

from jmgeo.cli import main

LOAD = ["load", "--dept", "gtzy", "--theme", "land", "--sharing", "open"]
STYLE = {"version": 8, "sources": {"x": {"type": "vector", "tiles": ["http://t/{z}/{x}/{y}"]}},
         "layers": [
    {"id": "fill", "type": "fill", "source": "x", "paint": {"fill-color": "#123456"}}]}


@pytest.fixture(scope="module")
def departments(database_url):
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS)


def geojson(path, lon=113.08):
    feats = [{"type": "Feature", "properties": {"mc": f"地块{i}", "dh": f"138{i:08d}"},
              "geometry": {"type": "Polygon", "coordinates": [[
                  [lon + i * 0.01, 22.58], [lon + i * 0.01 + 0.005, 22.58],
                  [lon + i * 0.01 + 0.005, 22.585], [lon + i * 0.01, 22.58]]]}}
             for i in range(3)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def geotiff(path):
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1,
                       dtype="float32", crs="EPSG:4490",
                       transform=from_origin(112.9, 22.7, 0.001, 0.001)) as ds:
        ds.write(np.arange(64 * 64, dtype="float32").reshape(1, 64, 64))
    return path


def csv_table(path):
    path.write_text("uscc,mc\n91440700MA0000001X,甲\n91440700MA0000002X,乙\n",
                    encoding="utf-8")
    return path


def load(path, layer, *extra) -> None:
    assert main([*LOAD, "--layer", layer, *extra, str(path)]) == 0


def state(db, layer) -> dict:
    row = db.cursor(row_factory=dict_row).execute(
        "SELECT l.kind, l.geometry_type, l.source_crs, l.key_field, l.style, "
        "l.sensitive_fields, l.field_labels, l.current_version, e.layer_version AS "
        "catalog_version, e.extent, e.format FROM layer l LEFT JOIN catalog_entry e ON "
        "e.layer_name = l.name WHERE l.name = %s", (layer,)).fetchone()
    return dict(row)


def rollback(layer, to) -> None:
    assert main(["layer", "rollback", layer, "--to", str(to)]) == 0


def set_style(layer, tmp_path) -> None:
    f = tmp_path / "style.json"
    f.write_text(json.dumps(STYLE))
    assert main(["layer", "style", layer, str(f)]) == 0


@pytest.fixture
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def test_vector_raster_vector(departments, conn, tmp_path, app_client):
    name = "tlim_rb_vr"
    load(geojson(tmp_path / "a.geojson"), name, "--sensitive", "dh=phone")
    set_style(name, tmp_path)
    v1 = state(conn, name)
    assert v1["kind"] == "vector" and v1["style"] == STYLE and v1["extent"]
    load(geotiff(tmp_path / "b.tif"), name)
    v2 = state(conn, name)
    assert v2["kind"] == "raster" and v2["geometry_type"] is None

    rollback(name, 1)
    back = state(conn, name)
    assert back == v1, (back, v1)
    r = app_client.get(f"/ogc/collections/{name}/items", params={"f": "json"})
    assert r.status_code == 200 and len(r.json()["features"]) == 3, r.text[:300]
    # the phone stays masked (the version's sensitive field)
    assert all("*" in f["properties"]["dh"] for f in r.json()["features"]), r.text[:300]

    rollback(name, 2)
    again = state(conn, name)
    assert again == v2, (again, v2)
    cov = app_client.get(f"/ogc/collections/{name}/coverage", params={"f": "json"})
    assert cov.status_code == 200, cov.text[:300]


def test_raster_vector_raster(departments, conn, tmp_path):
    name = "tlim_rb_rv"
    load(geotiff(tmp_path / "a.tif"), name)
    v1 = state(conn, name)
    load(geojson(tmp_path / "b.geojson", lon=113.1), name)
    set_style(name, tmp_path)  # the vector version's own style
    v2 = state(conn, name)
    assert v2["kind"] == "vector" and v2["style"] == STYLE
    rollback(name, 1)
    assert state(conn, name) == v1
    rollback(name, 2)
    assert state(conn, name) == v2


def test_vector_versions_restore_schema_and_extent(departments, conn, tmp_path):
    name = "tlim_rb_vv"
    load(geojson(tmp_path / "a.geojson"), name)
    v1 = state(conn, name)
    load(geojson(tmp_path / "b.geojson", lon=112.5), name, "--allow-outside")
    v2 = state(conn, name)
    assert v2["extent"] != v1["extent"]
    rollback(name, 1)
    assert state(conn, name) == v1


@pytest.mark.parametrize("first,second", [("vector", "table"), ("table", "vector"),
                                          ("raster", "table"), ("table", "raster")])
def test_table_transitions_refused_and_nothing_changes(departments, conn, tmp_path, capsys,
                                                       first, second):
    from layers.registry import counts

    name = f"tlim_rb_{first[0]}{second[0]}"
    make = {"vector": lambda p: (geojson(p / "v.geojson"), ()),
            "raster": lambda p: (geotiff(p / "r.tif"), ()),
            "table": lambda p: (csv_table(p / "t.csv"), ("--kind", "table", "--key", "uscc"))}
    path, extra = make[first](tmp_path)
    load(path, name, *extra)
    before, n = state(conn, name), counts(conn)
    path, extra = make[second](tmp_path)
    assert main([*LOAD, "--layer", name, *extra, str(path)]) == 2
    assert "choose another name" in capsys.readouterr().err
    assert state(conn, name) == before
    after = counts(conn)
    assert (after["layers"], after["versions"]) == (n["layers"], n["versions"])


def test_rollback_of_versions_from_before_the_snapshot(departments, conn, tmp_path):
    """A version published before migration 0022 (no ``registry`` snapshot) still comes
    back with its kind, from its load report."""
    name = "tlim_rb_old"
    load(geojson(tmp_path / "a.geojson"), name)
    v1 = state(conn, name)
    load(geotiff(tmp_path / "b.tif"), name)
    conn.execute("UPDATE layer_version SET registry = NULL WHERE layer_id = (SELECT id FROM "
                 "layer WHERE name = %s)", (name,))
    rollback(name, 1)
    back = state(conn, name)
    assert (back["kind"], back["geometry_type"], back["current_version"]) == \
        ("vector", v1["geometry_type"], 1)
