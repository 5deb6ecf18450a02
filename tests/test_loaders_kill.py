"""Nothing lost: a ``jmgeo load`` killed with SIGKILL during COPY leaves the previous version
intact and readable, and the next load works (no stale lock, no half table)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
from test_loaders_files import parcels_shp, points, squares, write

from layers import registry

LAYER = "tload_killed"


def _big_file(path: Path, n: int = 400_000) -> Path:
    lon, lat = points(n, 99)
    rng = np.random.default_rng(99)
    return write(path, squares(lon, lat, 0.0002), {
        "CODE": np.array([f"P{i:09d}" for i in range(n)]),
        "NAME": rng.choice(["耕地", "林地", "住宅用地"], n),
        "AREA": rng.uniform(10, 1000, n)}, encoding="UTF-8")


def _current(dsn: str) -> tuple[int, str, int]:
    with psycopg.connect(dsn) as conn:
        version, table = conn.execute(
            "SELECT v.version, v.table_name FROM layer l JOIN layer_version v ON "
            "v.layer_id = l.id AND v.version = l.current_version WHERE l.name = %s",
            (LAYER,)).fetchone()
        n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return version, table, n


def test_sigkill_during_copy_keeps_previous_version(database_url, tmp_path):
    from layers.departments import ensure_departments
    from loaders.pipeline import LoadOptions, load

    dsn = database_url
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_departments(conn)
    small = parcels_shp(tmp_path / "v1" / "宗地.shp", 25, crs=4547)
    load(small, LoadOptions(dept="gtzy", layer=LAYER, theme="land", sharing="open"),
         dsn=dsn, progress=False)
    before_version, before_table, before_n = _current(dsn)
    with psycopg.connect(dsn) as conn:
        before_counts = registry.counts(conn)
        before_rows = conn.execute(f"SELECT fid, geom::text FROM {before_table} ORDER BY fid"
                                   ).fetchall()

    big = _big_file(tmp_path / "big" / "宗地.shp")
    env = {**os.environ, "DATABASE_URL": dsn}
    jmgeo = Path(sys.executable).with_name("jmgeo")
    proc = subprocess.Popen(
        [str(jmgeo), "load", str(big), "--dept", "gtzy", "--layer", LAYER, "--theme", "land",
         "--sharing", "open"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    saw_copy = False
    deadline = time.monotonic() + 60
    with psycopg.connect(dsn, autocommit=True) as watch:
        while time.monotonic() < deadline and proc.poll() is None:
            row = watch.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND "
                "query LIKE 'COPY %%layer_data%%' AND state = 'active'").fetchone()
            if row:
                saw_copy = True
                time.sleep(0.3)  # well inside the COPY
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    proc.wait(30)
    assert saw_copy, "the load finished before COPY could be observed: make the file bigger"
    assert proc.returncode == -signal.SIGKILL

    # the previous version is still current, whole and readable; nothing half-made remains
    deadline = time.monotonic() + 20
    while True:
        with psycopg.connect(dsn) as conn:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'COPY %%layer_data%%'").fetchone()[0]
        if not busy or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert _current(dsn) == (before_version, before_table, before_n)
    with psycopg.connect(dsn) as conn:
        assert registry.counts(conn) == before_counts
        assert conn.execute(f"SELECT fid, geom::text FROM {before_table} ORDER BY fid"
                            ).fetchall() == before_rows
        assert conn.execute("SELECT to_regclass('layer_data.tload_killed_v2')").fetchone()[0] \
            is None

    # and the next load of the same layer goes through (the advisory lock was released)
    again = parcels_shp(tmp_path / "v2" / "宗地.shp", 10, crs=4547, seed=5)
    report = load(again, LoadOptions(dept="gtzy", layer=LAYER, theme="land", sharing="open"),
                  dsn=dsn, progress=False)
    assert report["target"]["version"] == 2
    assert _current(dsn)[2] == 10
