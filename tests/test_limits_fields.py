"""Field names and counts (issue 16): a DBF whose header names one field twice (written by
hand here: GDAL reads both under one name and the second one's values shadow the
first's — data lost), and files with thousands of properties (PostgreSQL tables hold at
most 1600 columns) get the loader's clear message naming the file and the fix, through
the CLI and ``POST /layers/upload``, never an internal error."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import psycopg
import pytest

from jmgeo.cli import main

LOAD = ["load", "--dept", "gtzy", "--theme", "land", "--sharing", "open", "--dry-run"]


@pytest.fixture(scope="module")
def departments(database_url):
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS)


def write_dbf(path: Path, fields: list[tuple[bytes, int]], rows: list[tuple[str, ...]]) -> Path:
    """A dBASE III file of character fields, header written byte by byte (no library
    would write two fields of one name)."""
    hlen = 32 + 32 * len(fields) + 1
    rlen = 1 + sum(n for _, n in fields)
    out = bytearray(struct.pack("<BBBBIHH20x", 3, 126, 1, 1, len(rows), hlen, rlen))
    for name, size in fields:
        out += struct.pack("<11sc4xBB14x", name, b"C", size, 0)
    out += b"\r"
    for row in rows:
        out += b" " + b"".join(v.encode().ljust(n)[:n] for v, (_, n) in zip(row, fields,
                                                                          strict=True))
    path.write_bytes(bytes(out + b"\x1a"))
    return path


def write_points_shp(stem: Path, points: list[tuple[float, float]]) -> None:
    """The .shp/.shx of point records (the .dbf is written by :func:`write_dbf`)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    bbox = (min(xs), min(ys), max(xs), max(ys))
    recs = b"".join(struct.pack(">ii", i + 1, 10) + struct.pack("<idd", 1, x, y)
                    for i, (x, y) in enumerate(points))

    def header(length_bytes: int) -> bytes:
        return (struct.pack(">i20xi", 9994, length_bytes // 2) +
                struct.pack("<ii4d32x", 1000, 1, *bbox))
    stem.with_suffix(".shp").write_bytes(header(100 + len(recs)) + recs)
    shx = b"".join(struct.pack(">ii", (100 + i * 28) // 2, 10) for i in range(len(points)))
    stem.with_suffix(".shx").write_bytes(header(100 + len(shx)) + shx)


@pytest.mark.parametrize("second", [b"NAME", b"name", b"NAME\x00junk"])
def test_dbf_duplicate_field_names_refused(departments, tmp_path, capsys, second):
    dbf = write_dbf(tmp_path / "owners.dbf", [(b"NAME", 10), (second, 10), (b"CODE", 5)],
                    [("alpha", "beta", "1"), ("gamma", "delta", "2")])
    code = main([*LOAD, "--layer", "tlim_owners", "--kind", "table", "--key", "CODE",
                 str(dbf)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "owners.dbf" in err and "duplicate field names" in err, err
    assert "internal" not in err


def test_shapefile_duplicate_field_names_refused(departments, tmp_path, capsys):
    stem = tmp_path / "wells"
    write_points_shp(stem, [(113.08, 22.58), (113.09, 22.59)])
    write_dbf(stem.with_suffix(".dbf"), [(b"MC", 10), (b"MC", 10)], [("a", "b"), ("c", "d")])
    stem.with_suffix(".prj").write_text(
        'GEOGCS["China Geodetic Coordinate System 2000",DATUM["China_2000",'
        'SPHEROID["CGCS2000",6378137,298.257222101]],PRIMEM["Greenwich",0],'
        'UNIT["degree",0.0174532925199433]]')
    code = main([*LOAD, "--layer", "tlim_wells", str(stem.with_suffix(".shp"))])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "wells" in err and "duplicate field names" in err and "MC" in err, err


def test_dbf_distinct_fields_still_load(departments, tmp_path, capsys):
    dbf = write_dbf(tmp_path / "ok.dbf", [(b"NAME", 10), (b"CODE", 5)],
                    [("alpha", "1"), ("gamma", "2")])
    code = main([*LOAD, "--layer", "tlim_ok", "--kind", "table", "--key", "CODE", str(dbf)])
    assert code == 0, capsys.readouterr().err


def _wide_geojson(path: Path, n: int) -> Path:
    props = {f"p{i}": i for i in range(n)}
    feat = {"type": "Feature", "properties": props,
            "geometry": {"type": "Point", "coordinates": [113.08, 22.58]}}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
    return path


def _wide_csv(path: Path, n: int) -> Path:
    cols = [f"c{i}" for i in range(n)]
    path.write_text(",".join(["lon", "lat", *cols]) + "\n" +
                    ",".join(["113.08", "22.58", *("1" for _ in cols)]) + "\n")
    return path


@pytest.mark.parametrize("make,name", [(_wide_geojson, "wide.geojson"),
                                       (_wide_csv, "wide.csv")])
def test_very_many_properties_refused(departments, tmp_path, capsys, make, name):
    path = make(tmp_path / name, 3000)
    code = main([*LOAD, "--layer", "tlim_wide", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert name in err and "3000" in err and "JMGEO_LOAD_MAX_PROPERTIES" in err, err
    assert "internal" not in err


def test_many_properties_under_the_limit_load(departments, tmp_path, capsys):
    path = _wide_csv(tmp_path / "fine.csv", 300)
    code = main([*LOAD, "--layer", "tlim_fine", str(path)])
    assert code == 0, capsys.readouterr().err


def test_very_many_properties_upload_answers_422(app_client, database_url, departments,
                                                 tmp_path):
    from layers.identity import create_key

    with psycopg.connect(database_url, autocommit=True) as conn:
        token = create_key(conn, "tlim-uploader", dept="gtzy")["token"]
    path = _wide_csv(tmp_path / "wide_up.csv", 2000)
    r = app_client.post("/layers/upload", headers={"Authorization": f"Bearer {token}"},
                        data={"dept": "gtzy", "layer": "tlim_wide_up", "theme": "land",
                              "sharing": "open", "dry_run": "true"},
                        files={"file": ("wide_up.csv", path.read_bytes(), "text/csv")})
    assert r.status_code == 422, r.text[:500]
    assert r.json()["code"] == "too_many_properties"
    assert "JMGEO_LOAD_MAX_PROPERTIES" in r.json()["description"]
