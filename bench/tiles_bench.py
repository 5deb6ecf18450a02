#!/usr/bin/env python3
"""Vector-tile benchmark: MVT z12–z15 on the 1,000,000-parcel layer, ours vs tipg, with
our tile cache off (cold: every tile made in PostGIS) and warm (every tile asked once
before the run, so the run reads the cache).

Same machine, database, tiles (500 random z12–z15 tiles over the parcels, seed 11 — the
serve benchmark's), concurrency (wrk, 2 threads, 8 connections) and 2 server workers
each. Prints requests/s and the ratios ours / tipg; writes bench/out/tiles.json.

    .venv/bin/python bench/tiles_bench.py [--duration 20]

Needs what bench/serve_bench.py needs, and its database: run serve_bench.py once first
(it loads the parcels into ``jmgeo_bench`` and registers layer ``bench_parcels``, open).
tipg runs from bench/.venv-tipg (see serve_bench.py); our server runs this checkout
(``PYTHONPATH`` = the repository) with ``--python`` (default: .venv/bin/python, else
this interpreter). The warm cache lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psycopg
from benchlib import bench_dsn, run_wrk, stop, wait_ready
from serve_bench import LAYER, TABLE, TIPG_PY, tiles

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
PORTS = {"ours": 5211, "tipg": 5212}


def start(name: str, dsn: str, tmp: Path, python: str, cache_mb: float,
          tipg_python: str = str(TIPG_PY)) -> subprocess.Popen:
    port = PORTS[name]
    env = dict(os.environ, DATABASE_URL=dsn)
    if name == "ours":
        env.update(JMGEO_PUBLIC_URL=f"http://127.0.0.1:{port}", PYTHONPATH=str(REPO),
                   JMGEO_TILE_CACHE_MB=str(cache_mb),
                   JMGEO_TILE_CACHE_DIR=str(tmp / "tile-cache"))
        cmd = [python, "-m", "uvicorn", "jmgeo.app:create_app", "--factory", "--workers",
               "2", "--port", str(port), "--no-access-log", "--log-level", "warning"]
        probe = "/health"
    else:
        env.update(TIPG_DB_SCHEMAS='["layer_data"]', TIPG_DB_TABLES=f'["{TABLE}"]',
                   TIPG_MAX_FEATURES_PER_QUERY="10000")
        cmd = [tipg_python, "-m", "uvicorn", "tipg.main:app", "--workers", "2", "--port",
               str(port), "--no-access-log", "--log-level", "warning"]
        probe = "/collections"
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, start_new_session=True)
    wait_ready(proc, f"http://127.0.0.1:{port}{probe}", name)
    return proc


def paths(server: str) -> list[str]:
    if server == "ours":
        return [f"/ogc/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt"
                for z, x, y in tiles(500)]
    return [f"/collections/{TABLE}/tiles/WebMercatorQuad/{z}/{x}/{y}" for z, x, y in tiles(500)]


def ask_all(port: int, todo: list[str]) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for p in todo:
            client.get(p).raise_for_status()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=20)
    default_py = REPO / ".venv" / "bin" / "python"
    ap.add_argument("--python", default=str(default_py) if default_py.exists()
                    else sys.executable, help="the interpreter with the platform installed")
    ap.add_argument("--tipg-python", default=str(TIPG_PY), help="tipg's interpreter")
    a = ap.parse_args()
    dsn = bench_dsn()
    with psycopg.connect(dsn) as conn:
        if not conn.execute("SELECT 1 FROM layer WHERE name = %s", (LAYER,)).fetchone():
            sys.exit(f"layer {LAYER} missing in {dsn}: run bench/serve_bench.py once first")
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        runs = [("tipg", "tipg", 0.0, False), ("ours cold (cache off)", "ours", 0.0, False),
                ("ours warm (cache filled)", "ours", 1024.0, True)]
        for label, server, cache_mb, fill in runs:
            proc = start(server, dsn, tmp, a.python, cache_mb, a.tipg_python)
            try:
                todo = paths(server)
                ask_all(PORTS[server], todo[:3] if not fill else todo)  # warm up / fill
                r = run_wrk(PORTS[server], todo, a.duration, tmp)
                results[label] = {k: r[k] for k in ("rps", "non2xx", "p50", "p99")}
                print(f"{label:28s} {results[label]}", flush=True)
            finally:
                stop(proc)
    tipg = results["tipg"]["rps"]
    for label in ("ours cold (cache off)", "ours warm (cache filled)"):
        results[label]["vs_tipg"] = round(results[label]["rps"] / tipg, 2) if tipg else None
    (OUT / "tiles.json").write_text(json.dumps(results, indent=2))
    print("\n| MVT z12-z15, 500 random tiles | req/s | p50 | p99 | vs tipg |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, r in results.items():
        print(f"| {label} | {r['rps']:.0f} | {r['p50']} | {r['p99']} | "
              f"{r.get('vs_tipg', 1.0)}× |")


if __name__ == "__main__":
    main()
