"""Malformed files get the loader's clear message, never an internal error (issue 16):
duplicate field names (Arrow: ``Field "name" exists 2 times``) and a truncated GeoTIFF
(GDAL's ``TIFFReadEncodedStrip() failed``) both answered ``内部错误 / internal error``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jmgeo.cli import main

LOAD = ["load", "--dept", "gtzy", "--theme", "land", "--sharing", "open", "--dry-run"]


@pytest.fixture(scope="module")
def departments(database_url):
    import psycopg

    from layers.departments import DEMO_DEPARTMENTS, ensure_departments

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS)


def _load(path: Path, capsys) -> tuple[int, str]:
    code = main([*LOAD, "--layer", "thd_bad", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("header", ["name,name,lon,lat", "Name,name,lon,lat"])
def test_duplicate_csv_fields_are_named(departments, tmp_path, capsys, header):
    path = tmp_path / "dup.csv"
    path.write_text(f"{header}\na,b,113.1,22.6\n", encoding="utf-8")
    code, err = _load(path, capsys)
    assert code == 2, err
    assert "duplicate field names" in err and "dup.csv" in err and "internal" not in err


def test_truncated_geotiff_is_named(departments, tmp_path, capsys):
    import rasterio
    from rasterio.transform import from_origin

    full = tmp_path / "full.tif"
    with rasterio.open(full, "w", driver="GTiff", width=512, height=512, count=1,
                       dtype="float32", crs="EPSG:4490",
                       transform=from_origin(113, 22.6, 0.0001, 0.0001)) as ds:
        ds.write(np.random.default_rng(1).random((1, 512, 512), dtype="float32"))
    data = full.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[:len(data) // 3])
    code, err = _load(cut, capsys)
    assert code == 2, err
    assert "cut.tif" in err and "truncated or damaged" in err and "internal" not in err
