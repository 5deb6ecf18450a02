#!/usr/bin/env python3
"""Serving benchmark: ours vs tipg vs stock pygeoapi on the 1,000,000-parcel layer.

One run, one machine, one database, same concurrency (wrk, 2 threads, 8 connections,
2 server workers each). Prints requests/s per scenario and the ratio ours / tipg, and
writes bench/out/serve.json. Usage (from the repo root, after `make run` or `make test`
provisioned the database):

    .venv/bin/python bench/serve_bench.py [--duration 20] [--parcels PATH.shp]

Needs: wrk and ogr2ogr (apt-get install wrk gdal-bin), geopandas in .venv (to generate
the parcels with ../shared/bench/make_parcels.py), tipg in bench/.venv-tipg
(`python3.12 -m venv bench/.venv-tipg && bench/.venv-tipg/bin/pip install tipg==1.6.1
uvicorn`). The parcels are loaded with ogr2ogr (serving is measured, not loading) into
`layer_data.bench_parcels_v1` and registered as layer `bench_parcels` (sharing class
open, so every server answers the same public request; ours still asks the policy).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
from benchlib import bench_dsn, ensure_bench_db, run_wrk, stop, wait_ready

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
SHARED = REPO.parent / "shared"
TIPG_PY = REPO / "bench" / ".venv-tipg" / "bin" / "python"
LAYER, TABLE = "bench_parcels", "layer_data.bench_parcels_v1"
# the same table as a conditional layer, read by a department through a grant limited to
# two counties, with the right holder masked and every request audited: the policy on
COND_LAYER = "bench_parcels_c"
BENCH_TOKEN = "jmk_0be4c400_benchmark-only-token-not-a-secret-000000000"
EXTENT = (112.0, 21.55, 113.25, 22.85)  # where make_parcels.py puts parcels
PORTS = {"ours": 5201, "tipg": 5202, "pygeoapi": 5203, "jmgeo serve": 5204}


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def prepare_database(dsn: str, parcels: Path) -> None:
    env = ensure_bench_db(dsn)
    sh([str(REPO / ".venv/bin/jmgeo"), "regions", "load"], env=env, stdout=subprocess.DEVNULL)
    with psycopg.connect(dsn) as conn:
        have = conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0]
    if not have:
        print("loading parcels with ogr2ogr ...", flush=True)
        pg = urlsplit(dsn)
        sh(["ogr2ogr", "-f", "PostgreSQL",
            f"PG:host={pg.hostname} port={pg.port} dbname=jmgeo_bench user={pg.username} "
            f"password={pg.password}", str(parcels), "-t_srs", "EPSG:4490",
            "-nlt", "PROMOTE_TO_MULTI", "-nln", TABLE, "-lco", "GEOMETRY_NAME=geom",
            "-lco", "FID=fid", "-lco", "SPATIAL_INDEX=GIST", "-lco", "LAUNDER=YES",
            "--config", "PG_USE_COPY", "YES"], env=dict(os.environ, PGCLIENTENCODING="UTF8"))
        with psycopg.connect(dsn) as conn:
            conn.execute(f"ALTER TABLE {TABLE} ALTER COLUMN fid TYPE bigint")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"VACUUM ANALYZE {TABLE}")
    with psycopg.connect(dsn, autocommit=True) as conn:  # measure the cold region index too
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}__rgn")
    sys.path.insert(0, str(REPO))
    from layers.departments import ensure_departments
    from layers.registry import publish

    with psycopg.connect(dsn) as conn, conn.transaction():
        ensure_departments(conn)
        exists = conn.execute("SELECT 1 FROM layer WHERE name = %s", (LAYER,)).fetchone()
        if not exists:
            n = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
            publish(conn, layer=LAYER, version=1, table_name=TABLE, feature_count=n,
                    report={"source": str(parcels)}, title="基准测试地块 benchmark parcels",
                    dept="gtzy", theme="land", sharing_class="open")
        if not conn.execute("SELECT 1 FROM layer WHERE name = %s", (COND_LAYER,)).fetchone():
            from layers.grants import add_grant
            from layers.identity import create_key

            n = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
            publish(conn, layer=COND_LAYER, version=1, table_name=TABLE, feature_count=n,
                    report={"source": str(parcels)}, title="基准测试地块（有条件）",
                    dept="gtzy", theme="land", sharing_class="conditional",
                    sensitive_fields={"qlr": "person_name"})
            add_grant(conn, layer=COND_LAYER, dept="gh", purpose="基准测试 benchmark",
                      approved_by="bench", regions=["440781", "440785"])
            create_key(conn, "bench-gh", dept="gh", token=BENCH_TOKEN)


def start(name: str, dsn: str, tmp: Path) -> subprocess.Popen:
    port = PORTS[name]
    env = dict(os.environ)
    if name == "ours":
        env.update(DATABASE_URL=dsn, JMGEO_PUBLIC_URL=f"http://127.0.0.1:{port}")
        cmd = [str(REPO / ".venv/bin/python"), "-m", "uvicorn", "jmgeo.app:create_app",
               "--factory", "--workers", "2", "--port", str(port), "--no-access-log",
               "--log-level", "warning"]
    elif name == "jmgeo serve":  # what users run: the CLI, with its access log
        env.update(DATABASE_URL=dsn)
        cmd = [str(REPO / ".venv/bin/jmgeo"), "serve", "--host", "127.0.0.1", "--port",
               str(port), "--workers", "2"]
    elif name == "tipg":
        env.update(DATABASE_URL=dsn, TIPG_DB_SCHEMAS='["layer_data"]',
                   TIPG_DB_TABLES=f'["{TABLE}"]', TIPG_MAX_FEATURES_PER_QUERY="10000")
        cmd = [str(TIPG_PY), "-m", "uvicorn", "tipg.main:app", "--workers", "2",
               "--port", str(port), "--no-access-log", "--log-level", "warning"]
    else:
        cfg = tmp / "pygeoapi.yml"
        pg = urlsplit(dsn)
        import yaml

        cfg.write_text(yaml.safe_dump({
            "server": {"bind": {"host": "127.0.0.1", "port": port},
                       "url": f"http://127.0.0.1:{port}", "mimetype": "application/json",
                       "encoding": "utf-8", "languages": ["en-US"], "pretty_print": False,
                       "limits": {"default_items": 10, "max_items": 10000},
                       "map": {"url": "", "attribution": ""}},
            "logging": {"level": "ERROR"},
            "metadata": {"identification": {"title": "stock", "description": "stock",
                                            "keywords": [], "terms_of_service": "",
                                            "url": ""},
                         "license": {"name": "", "url": ""}, "provider": {"name": "",
                                                                         "url": ""},
                         "contact": {"name": ""}},
            "resources": {"parcels": {
                "type": "collection", "title": "parcels", "description": "parcels",
                "keywords": [], "extents": {"spatial": {"bbox": list(EXTENT),
                                                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
                "providers": [{"type": "feature", "name": "PostgreSQL",
                               "data": {"host": pg.hostname, "port": pg.port,
                                        "dbname": "jmgeo_bench", "user": pg.username,
                                        "password": pg.password,
                                        "search_path": ["layer_data", "public"]},
                               "id_field": "fid", "table": TABLE.split(".")[1],
                               "geom_field": "geom",
                               "storage_crs": "http://www.opengis.net/def/crs/EPSG/0/4490"}]}},
        }))
        oas = tmp / "openapi.yml"
        env.update(PYGEOAPI_CONFIG=str(cfg), PYGEOAPI_OPENAPI=str(oas))
        sh([str(REPO / ".venv/bin/pygeoapi"), "openapi", "generate", str(cfg),
            "--output-file", str(oas)], env=env, stdout=subprocess.DEVNULL)
        cmd = [str(REPO / ".venv/bin/python"), "-m", "uvicorn", "pygeoapi.starlette_app:APP",
               "--workers", "2", "--port", str(port), "--no-access-log", "--log-level",
               "warning"]
    log = (tmp / f"{name.replace(' ', '-')}.log").open("w")  # the access log goes here
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, start_new_session=True, stdout=log,
                            stderr=log)
    probe = {"ours": "/health", "jmgeo serve": "/health", "tipg": "/collections",
             "pygeoapi": "/collections"}[name]
    wait_ready(proc, f"http://127.0.0.1:{port}{probe}", name)
    return proc


def wrk(port: int, paths: list[str], duration: int, tmp: Path,
        key: str | None = None) -> dict:
    r = run_wrk(port, paths, duration, tmp, key)
    return {"rps": r["rps"], "non2xx": r["non2xx"], "p50": r["p50"]}


def random_bboxes(k: int, seed: int = 7) -> list[tuple[float, float, float, float]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(k):
        lon = rnd.uniform(EXTENT[0], EXTENT[2] - 0.01)
        lat = rnd.uniform(EXTENT[1], EXTENT[3] - 0.01)
        out.append((lon, lat, lon + 0.0097, lat + 0.009))  # ~1 km x 1 km
    return out


def tiles(k: int, seed: int = 11) -> list[tuple[int, int, int]]:
    import math

    rnd = random.Random(seed)
    out = []
    for _ in range(k):
        z = rnd.randint(12, 15)
        lon = rnd.uniform(EXTENT[0], EXTENT[2])
        lat = rnd.uniform(EXTENT[1], EXTENT[3])
        x = int((lon + 180) / 360 * 2 ** z)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2 ** z)
        out.append((z, x, y))
    return out


def cursor_for_page(dsn: str, page: int, limit: int) -> str:
    with psycopg.connect(dsn) as conn:
        fid = conn.execute(f"SELECT fid FROM {TABLE} ORDER BY fid OFFSET %s LIMIT 1",
                           ((page - 1) * limit - 1,)).fetchone()[0]
    token = json.dumps({"v": 1, "k": [fid]}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def scenarios(dsn: str) -> dict[str, dict[str, list[str]]]:
    boxes = random_bboxes(500)
    tl = tiles(500)
    regions = ["440703", "440704", "440705", "440781", "440783", "440784", "440785"]
    cur = cursor_for_page(dsn, 1000, 100)
    ours_items = f"/ogc/collections/{LAYER}/items"
    tipg_items = f"/collections/{TABLE}/items"
    return {
        "bbox 1 km, limit 100": {
            "ours": [f"{ours_items}?f=json&limit=100&bbox={a:.5f},{b:.5f},{c:.5f},{d:.5f}"
                     for a, b, c, d in boxes],
            "tipg": [f"{tipg_items}?f=geojson&limit=100&bbox={a:.5f},{b:.5f},{c:.5f},{d:.5f}"
                     for a, b, c, d in boxes],
            "pygeoapi": [f"/collections/parcels/items?f=json&limit=100&"
                         f"bbox={a:.5f},{b:.5f},{c:.5f},{d:.5f}" for a, b, c, d in boxes[:50]],
        },
        "bbox 1 km, conditional layer via a grant (2 counties, masked, audited)": {
            "ours": [f"/ogc/collections/{COND_LAYER}/items?f=json&limit=100&"
                     f"bbox={a:.5f},{b:.5f},{c:.5f},{d:.5f}" for a, b, c, d in boxes],
        },
        "items by region, limit 100": {
            # ours: the region polygon (region=); tipg has no regions: attribute filter on
            # the parcel's own region code column, the closest thing it can do
            "ours": [f"{ours_items}?f=json&limit=100&region={r}" for r in regions],
            "tipg": [f"{tipg_items}?f=geojson&limit=100&filter-lang=cql2-text&"
                     f"filter=xzqdm%3D%27{r}%27" for r in regions],
        },
        "page 1": {
            "ours": [f"{ours_items}?f=json&limit=100"],
            "tipg": [f"{tipg_items}?f=geojson&limit=100"],
        },
        "page 1000": {
            "ours": [f"{ours_items}?f=json&limit=100&cursor={cur}"],
            "tipg": [f"{tipg_items}?f=geojson&limit=100&offset=99900"],
        },
        "MVT z12-z15": {
            "ours": [f"/ogc/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt"
                     for z, x, y in tl],
            "tipg": [f"/collections/{TABLE}/tiles/WebMercatorQuad/{z}/{x}/{y}"
                     for z, x, y in tl],
        },
    }


def region_stats_seconds(runs: int = 4) -> list[float]:
    """First call builds the layer version's region index (once per version); the rest
    are what users see afterwards."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = httpx.get(f"http://127.0.0.1:{PORTS['ours']}/regions/440700/stats",
                      params={"layer": LAYER}, timeout=120)
        r.raise_for_status()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--parcels", type=Path, default=OUT / "parcels.shp")
    ap.add_argument("--skip", nargs="*", default=[], help="servers to skip")
    ap.add_argument("--only", nargs="*", default=None, help="scenario names to run")
    a = ap.parse_args()
    for tool in ("wrk", "ogr2ogr"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y wrk gdal-bin")
    OUT.mkdir(parents=True, exist_ok=True)
    if not a.parcels.exists():
        print("generating 1,000,000 parcels ...", flush=True)
        sh([str(REPO / ".venv/bin/python"), str(SHARED / "bench/make_parcels.py"),
            str(a.parcels)])
    dsn = bench_dsn()
    prepare_database(dsn, a.parcels)
    results: dict[str, dict[str, dict]] = {}
    plan = scenarios(dsn)
    if a.only:
        plan = {k: v for k, v in plan.items() if any(o in k for o in a.only)}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for server in ("ours", "jmgeo serve", "tipg", "pygeoapi"):
            if server in a.skip:
                continue
            proc = start(server, dsn, tmp)
            try:
                for name, per_server in plan.items():
                    paths = per_server.get("ours" if server == "jmgeo serve" else server)
                    if not paths:
                        continue
                    key = BENCH_TOKEN if COND_LAYER in paths[0] else None
                    for p in paths[:3]:  # warm up every worker
                        r = httpx.get(f"http://127.0.0.1:{PORTS[server]}{p}", timeout=120,
                                      headers={"X-API-Key": key} if key else {})
                        r.raise_for_status()
                    dur = a.duration if server != "pygeoapi" else min(a.duration, 20)
                    results.setdefault(name, {})[server] = wrk(PORTS[server], paths, dur, tmp,
                                                               key)
                    print(f"{name:28s} {server:9s} {results[name][server]}", flush=True)
                if server == "ours" and not a.only:
                    secs = region_stats_seconds()
                    results["region stats, all parcels by county"] = {
                        "ours": {"cold_seconds": round(secs[0], 2),
                                 "seconds": [round(s, 2) for s in secs[1:]],
                                 "median": round(statistics.median(secs[1:]), 2)}}
                    print("region stats seconds", secs, flush=True)
            finally:
                stop(proc)
    print("\n| scenario | ours (uvicorn) req/s | `jmgeo serve` req/s | tipg req/s | stock "
          "pygeoapi req/s | ours / tipg | `jmgeo serve` / tipg |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, per in results.items():
        if "rps" not in per.get("ours", {}):
            continue
        o, js, tg, pg = (per.get(s, {}).get("rps")
                         for s in ("ours", "jmgeo serve", "tipg", "pygeoapi"))
        ratio = f"{o / tg:.2f}" if o and tg else "–"
        jratio = f"{js / tg:.2f}" if js and tg else "–"
        print(f"| {name} | {o} | {js or '–'} | {tg or '–'} | {pg or '–'} | {ratio} | "
              f"{jratio} |")
    stats = results.get("region stats, all parcels by county", {}).get("ours")
    if stats:
        print(f"\nregion stats (1,000,000 parcels by county): median {stats['median']} s "
              f"(first call, building the version's region index: {stats['cold_seconds']} s)")
    p1 = results.get("page 1", {}).get("ours", {}).get("rps")
    p1000 = results.get("page 1000", {}).get("ours", {}).get("rps")
    if p1 and p1000:
        print(f"ours page 1000 / page 1 throughput: {p1000 / p1:.2f}")
    (OUT / "serve.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
