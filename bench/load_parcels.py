#!/usr/bin/env python3
"""Loading benchmark: ``jmgeo load`` against ``ogr2ogr`` on the same 1,000,000 parcels.

    .venv/bin/python bench/load_parcels.py [--count 1000000] [--repeat 3]

1. Makes the parcel file with ``../shared/bench/make_parcels.py`` (GBK Shapefile in
   CGCS2000 GK CM 114E; needs geopandas — installed into this venv if missing, for the
   benchmark only) unless it is already in ``var/bench/``.
2. Creates a scratch database next to the platform's (PostGIS, migrated, departments,
   the city's regions — so each load also computes the version's region index).
3. Runs, alternately, ``repeat`` times each:
   ``ogr2ogr -f PostgreSQL -t_srs EPSG:4490 -nlt PROMOTE_TO_MULTI -lco SPATIAL_INDEX=GIST
   --config PG_USE_COPY YES`` and ``jmgeo load`` (validation on: encoding check, CRS
   decision, validity check/repair, Multi promotion, extent check, GIST index, ANALYZE,
   region index, versioned publish), each under ``/usr/bin/time -v`` for wall time and peak RSS.
4. Prints both and the ratio (ogr2ogr wall / jmgeo wall: > 1 means jmgeo is faster),
   best and median of the runs, then times the first region statistics call on the
   version just loaded, and drops the scratch database.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MAKE_PARCELS = ROOT.parent / "shared" / "bench" / "make_parcels.py"


def ensure_tools() -> None:
    try:
        import geopandas  # noqa: F401
    except ImportError:
        print("installing geopandas into the venv (benchmark only) …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "geopandas"],
                       check=True)
    if shutil.which("ogr2ogr") is None:
        print("installing gdal-bin (ogr2ogr) …", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "gdal-bin"], check=True)
    if not Path("/usr/bin/time").exists():
        subprocess.run(["apt-get", "install", "-y", "time"], check=True)


def make_file(workdir: Path, count: int) -> Path:
    out = workdir / f"parcels_{count}.shp"
    if not out.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"generating {count:,} parcels → {out}", file=sys.stderr)
        subprocess.run([sys.executable, str(MAKE_PARCELS), str(out), "--count", str(count)],
                       check=True)
    return out


def scratch_db(name: str) -> str:
    import psycopg

    from jmgeo.settings import owner_database_url

    base = owner_database_url()  # the schema's owner creates and migrates databases
    admin = urlsplit(base)._replace(path="/postgres").geturl()
    dsn = urlsplit(base)._replace(path=f"/{name}").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    from alembic import command

    from jmgeo.cli import alembic_config
    from jmgeo.settings import sqlalchemy_url

    cfg = alembic_config()
    cfg.attributes["url"] = sqlalchemy_url(dsn)
    os.environ["DATABASE_URL"] = dsn
    command.upgrade(cfg, "head")
    from layers.departments import ensure_departments

    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_departments(conn)
    from spatial.regions import load_framework

    load_framework(dsn)  # the city's regions: a load computes the version's region index
    return dsn


def first_region_stats(dsn: str) -> tuple[float, int]:
    """(seconds, features counted) of the first region statistics call on the version
    just loaded — what ``GET /regions/440700/stats?layer=bench_parcels`` runs, in-process —
    checked against the same count computed by PostGIS."""
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row

    from spatial.regions import region_stats

    with psycopg.connect(dsn, row_factory=dict_row, autocommit=True) as conn:
        table = conn.execute("SELECT v.table_name FROM layer l JOIN layer_version v ON "
                             "v.layer_id = l.id AND v.version = l.current_version "
                             "WHERE l.name = 'bench_parcels'").fetchone()["table_name"]
        t0 = time.monotonic()
        out = region_stats(conn, "440700", table)
        secs = time.monotonic() - t0
        # the same count straight from PostGIS: each feature in the county holding its
        # point on surface — the loader-built index must agree with it exactly
        direct = conn.execute(sql.SQL(
            "SELECT count(DISTINCT t.fid) AS n FROM {} t JOIN region_part p ON "
            "ST_Intersects(p.geom, ST_PointOnSurface(t.geom)) JOIN region r ON "
            "r.id = p.region_id AND r.parent_code = '440700' AND r.valid_to IS NULL").format(
                sql.Identifier(*table.split(".", 1)))).fetchone()["n"]
        if direct != out["totals"]["count"]:
            sys.exit(f"region index disagrees with PostGIS: {out['totals']['count']:,} "
                     f"counted, {direct:,} by ST_PointOnSurface")
        return secs, out["totals"]["count"]


def drop_db(dsn: str) -> None:
    import psycopg

    admin = urlsplit(dsn)._replace(path="/postgres").geturl()
    name = urlsplit(dsn).path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of cmd under /usr/bin/time -v."""
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    return wall, (int(rss.group(1)) / 1024 if rss else float("nan")), p.stdout


def ogr_conn(dsn: str) -> str:
    u = urlsplit(dsn)
    return (f"PG:host={u.hostname} port={u.port or 5432} dbname={u.path.lstrip('/')} "
            f"user={u.username} password={u.password}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench")
    a = ap.parse_args()
    ensure_tools()
    shp = make_file(a.workdir, a.count)
    dsn = scratch_db("jmgeo_bench_load")
    env = {**os.environ, "DATABASE_URL": dsn, "PGAPPNAME": "bench"}
    jmgeo = str(Path(sys.executable).with_name("jmgeo"))
    ogr: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    try:
        for i in range(a.repeat):
            ogr.append(timed(["ogr2ogr", "-f", "PostgreSQL", ogr_conn(dsn), str(shp),
                              "-nln", f"ogr_parcels_{i}", "-overwrite", "-t_srs", "EPSG:4490",
                              "-nlt", "PROMOTE_TO_MULTI", "-lco", "SPATIAL_INDEX=GIST",
                              "--config", "PG_USE_COPY", "YES"], env)[:2])
            wall, rss, out = timed([jmgeo, "load", str(shp), "--dept", "gtzy", "--layer",
                                    "bench_parcels", "--theme", "land", "--sharing",
                                    "conditional", "--no-progress"], env)
            ours.append((wall, rss))
            print(f"run {i + 1}: ogr2ogr {ogr[-1][0]:.1f} s {ogr[-1][1]:.0f} MB | jmgeo load "
                  f"{wall:.1f} s {rss:.0f} MB", file=sys.stderr)
        print(out)
        secs, counted = first_region_stats(dsn)
        print(f"first region statistics call on the new version (city by county): "
              f"{secs:.2f} s, {counted:,} features counted")
    finally:
        drop_db(dsn)
    best_ogr, best_ours = min(w for w, _ in ogr), min(w for w, _ in ours)
    med_ogr = statistics.median(w for w, _ in ogr)
    med_ours = statistics.median(w for w, _ in ours)
    print("| tool | best wall (s) | median wall (s) | features/s (best) | peak RSS (MB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| ogr2ogr | {best_ogr:.1f} | {med_ogr:.1f} | {a.count / best_ogr:,.0f} | "
          f"{max(r for _, r in ogr):.0f} |")
    print(f"| jmgeo load | {best_ours:.1f} | {med_ours:.1f} | {a.count / best_ours:,.0f} | "
          f"{max(r for _, r in ours):.0f} |")
    print(f"\nthroughput ratio jmgeo/ogr2ogr: best {best_ogr / best_ours:.2f}×, median "
          f"{med_ogr / med_ours:.2f}× (> 1 = jmgeo faster); {a.count:,} parcels, "
          f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
