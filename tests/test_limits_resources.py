"""Resource limits of loads (issue 16): a sparse GeoTIFF declaring an enormous raster is
refused from its header (before, warping it kept a core busy for minutes); a zip of many
members each under the per-member ratio check is refused on the archive's total; feature
count and wall-clock are limited per load; a stopping server stops its loads. All are
settings, and every refusal names the setting to raise."""

from __future__ import annotations

import json
import os
import time
import zipfile

import psycopg
import pytest

from jmgeo import settings
from jmgeo.cli import main

LOAD = ["load", "--dept", "gtzy", "--theme", "land", "--sharing", "open", "--dry-run"]


@pytest.fixture(scope="module")
def departments(database_url):
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS)


@pytest.fixture
def limits(monkeypatch):
    """Set JMGEO_* limits for one test."""
    def set_(**env):
        for k, v in env.items():
            monkeypatch.setenv(k, str(v))
        settings.reset_settings()
    yield set_
    monkeypatch.undo()
    settings.reset_settings()


def _load(path, capsys, *extra) -> tuple[int, str]:
    code = main([*LOAD, "--layer", "tlim_res", *extra, str(path)])
    return code, capsys.readouterr().err


def test_sparse_enormous_geotiff_refused_from_its_header(departments, tmp_path, capsys):
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "huge.tif"
    with rasterio.open(path, "w", driver="GTiff", width=400_000, height=400_000, count=1,
                       dtype="uint8", crs="EPSG:4490", tiled=True, blockxsize=256,
                       blockysize=256, sparse_ok=True, bigtiff="YES",
                       transform=from_origin(112.9, 22.7, 1e-6, 1e-6)):
        pass  # no block written: a few MB of tile offsets declaring 1.6e11 pixels
    assert path.stat().st_size < 50 * 1024 ** 2
    t0 = time.monotonic()
    code, err = _load(path, capsys)
    assert code == 2, err
    assert "huge.tif" in err and "too large" in err, err
    assert "JMGEO_RASTER_MAX_PIXELS" in err
    assert time.monotonic() - t0 < 20


def test_raster_pixel_limit_is_a_setting(departments, tmp_path, capsys, limits):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "small.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100, height=100, count=1,
                       dtype="uint8", crs="EPSG:4490",
                       transform=from_origin(112.9, 22.7, 1e-4, 1e-4)) as ds:
        ds.write(np.ones((1, 100, 100), dtype="uint8"))
    assert _load(path, capsys)[0] == 0
    limits(JMGEO_RASTER_MAX_PIXELS=5000)
    code, err = _load(path, capsys)
    assert code == 2 and "too large" in err, err


def test_zip_of_many_small_members_refused_on_its_total(departments, tmp_path, capsys):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i in range(24):  # 24 x 1 MB of zeros: each member far under the 16 MB check
            zf.writestr(f"pad/part{i:02d}.bin", b"\0" * (1 << 20))
        zf.writestr("pad/wells.csv", "name,lon,lat\na,113.1,22.6\n")
    code, err = _load(path, capsys)
    assert code == 2, err
    assert "many.zip" in err and "zip bomb" in err, err


def _points_csv(path, n: int):
    path.write_text("name,lon,lat\n" + "".join(f"p{i},113.{i:04d},22.6\n" for i in range(n)))
    return path


def _points_geojson(path, n: int):
    feats = [{"type": "Feature", "properties": {"i": i},
              "geometry": {"type": "Point", "coordinates": [113.1, 22.6]}} for i in range(n)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


@pytest.mark.parametrize("make,name", [(_points_csv, "pts.csv"),
                                       (_points_geojson, "pts.geojson")])
def test_feature_limit(departments, tmp_path, capsys, limits, make, name):
    path = make(tmp_path / name, 20)
    assert _load(path, capsys)[0] == 0
    limits(JMGEO_LOAD_MAX_FEATURES=10, JMGEO_LOAD_BATCH=5)
    code, err = _load(path, capsys)
    assert code == 2, err
    assert name in err and "JMGEO_LOAD_MAX_FEATURES" in err, err


def test_wall_clock_limit(departments, tmp_path, capsys, limits):
    path = _points_csv(tmp_path / "slow.csv", 50)
    limits(JMGEO_LOAD_MAX_SECONDS=1e-6, JMGEO_LOAD_BATCH=5)
    code, err = _load(path, capsys)
    assert code == 2, err
    assert "slow.csv" in err and "JMGEO_LOAD_MAX_SECONDS" in err, err


def test_stopping_process_stops_loads(departments, tmp_path, capsys, database_url):
    from layers.registry import counts
    from loaders.limits import resume, stop_all

    path = _points_csv(tmp_path / "stopped.csv", 10)
    with psycopg.connect(database_url, autocommit=True) as conn:
        before = counts(conn)
    stop_all()
    try:
        code = main([*LOAD[:-1], "--layer", "tlim_stopped", str(path)])
        err = capsys.readouterr().err
    finally:
        resume()
    assert code == 143 and "shutting down" in err, err  # 128 + SIGTERM
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert counts(conn)["versions"] == before["versions"]


def test_sigterm_stops_a_cli_load(departments, tmp_path, database_url):
    """`jmgeo load` killed politely (SIGTERM) stops at its next batch: exit 143, the
    reason in Chinese and English, nothing published, the layer's lock released."""
    import signal
    import subprocess
    import sys

    from conftest import REPO

    path = _points_csv(tmp_path / "sigterm.csv", 40_000)
    env = dict(os.environ, DATABASE_URL=database_url, JMGEO_LOAD_BATCH="1")
    proc = subprocess.Popen([sys.executable, "-m", "jmgeo.cli", *LOAD[:-1], "--layer",
                             "tlim_sigterm", "--no-progress", str(path)], env=env, cwd=REPO,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    with psycopg.connect(database_url, autocommit=True) as conn:
        while not conn.execute(  # the load's lock on its layer, in this database
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = "
                "current_database()").fetchone()[0]:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
        assert proc.returncode == 143, err
        assert "SIGTERM" in err and "收到停止信号" in err
        assert conn.execute("SELECT 1 FROM layer WHERE name = 'tlim_sigterm'").fetchone() is None


def test_memory_limit_ends_the_load_not_the_process(departments, tmp_path, database_url):
    """A load whose batches grow the process past JMGEO_LOAD_MAX_MEMORY_MB is stopped at
    its next batch with the usual clear refusal (exit 2), nothing published; the same
    file loads under the default limit."""
    import subprocess
    import sys

    from conftest import REPO

    path = tmp_path / "wide.csv"                # 60,000 rows of 1 kB text: ~60 MB
    path.write_text("name,note,lon,lat\n" + "".join(
        f"p{i},{'备注' * 170},113.{i:05d},22.6\n" for i in range(60_000)))
    cmd = [sys.executable, "-m", "jmgeo.cli", *LOAD[:-1], "--layer", "tlim_memory",
           "--no-progress", str(path)]
    env = dict(os.environ, DATABASE_URL=database_url, JMGEO_LOAD_BATCH="20000")
    refused = subprocess.run(cmd, env={**env, "JMGEO_LOAD_MAX_MEMORY_MB": "8"}, cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2, refused.stderr
    assert "wide.csv" in refused.stderr and "JMGEO_LOAD_MAX_MEMORY_MB" in refused.stderr
    assert "内存" in refused.stderr and "memory" in refused.stderr
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM layer WHERE name = 'tlim_memory'").fetchone() is None
    loaded = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM layer WHERE name = 'tlim_memory'").fetchone()
