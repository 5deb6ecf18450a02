#!/usr/bin/env python3
"""Online query (联机查询) benchmark: one record by key, 50 concurrent clients, p50/p99.

Issue 11 target: p99 < 20 ms. A 1,000,000-row table resource ``bench_query_parcels``
(宗地代码 ``zddm`` as key, with its UNIQUE index from ``layers.registry.index_key``) is
generated in SQL in the bench database (``jmgeo_bench``, as ``serve_bench.py``), published
as *conditional* with a grant to 城乡规划局 (gh) that masks the right holder — so every
request takes the full path: key lookup, policy, masking in SQL and one audit row. wrk
(2 threads, 50 connections, ``--latency``) asks random existing keys against the server
started with 2 uvicorn workers; the per-key rate limit is raised for the run (the limit
is per process and would otherwise answer 429: ``JMGEO_QUERY_RATE``/``JMGEO_QUERY_BURST``).
Writes bench/out/query.json. Usage (from the repo root, database provisioned):

    .venv/bin/python bench/query_bench.py [--duration 30] [--rows 1000000]

Then the same 50 clients at constant offered rates (``--rates``, req/s; latency from each
request's scheduled time, as wrk2 measures — ``benchlib.run_open_loop``): closed-loop wrk
measures throughput (50 requests always in flight), the open-loop runs measure latency at
a business rate. Needs wrk (apt-get install wrk). Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psycopg
from benchlib import bench_dsn, ensure_bench_db, run_open_loop, run_wrk, stop, wait_ready

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
NAME = "bench_query_parcels"
TOKEN = "jmk_0be4c401_query-benchmark-only-token-not-a-secret-00"
PORT = 5211
CLIENTS = 50


def key_of(i: int) -> str:
    """宗地代码-like keys: 440703 + a block letter pattern + a serial (19 characters)."""
    return f"440703{i % 97:03d}GB{i:08d}"


def prepare(dsn: str, rows: int) -> None:
    ensure_bench_db(dsn)
    sys.path.insert(0, str(REPO))
    from layers.departments import ensure_departments
    from layers.grants import add_grant
    from layers.identity import create_key
    from layers.registry import Column, create_data_table, index_key, publish

    with psycopg.connect(dsn) as conn, conn.transaction():
        ensure_departments(conn)
        if conn.execute("SELECT 1 FROM layer WHERE name = %s", (NAME,)).fetchone():
            return
        print(f"generating {rows} rows in SQL ...", flush=True)
        table = create_data_table(conn, NAME, 1, None, [
            Column("zddm"), Column("qlr"), Column("tdyt"),
            Column("mj", "double precision")], title="基准测试宗地（联机查询）")
        conn.execute(
            f"INSERT INTO {table} (fid, zddm, qlr, tdyt, mj) SELECT i, "
            "'440703' || lpad((i %% 97)::text, 3, '0') || 'GB' || lpad(i::text, 8, '0'), "
            "'权利人' || i, (ARRAY['住宅','商业','工业','农用'])[1 + i %% 4], "
            "round((50 + random() * 5000)::numeric, 2) FROM generate_series(1, %s) i",
            (rows,))
        index_key(conn, table, "zddm")
        publish(conn, layer=NAME, version=1, table_name=table, feature_count=rows,
                report={}, title="基准测试宗地（联机查询）", dept="gtzy", theme="land",
                sharing_class="conditional", kind="table", geometry_type=None,
                key_field="zddm", sensitive_fields={"qlr": "person_name"})
        add_grant(conn, layer=NAME, dept="gh", purpose="联机查询基准测试 benchmark",
                  approved_by="bench")  # every field: the sensitive qlr stays masked
        create_key(conn, "bench-query-gh", dept="gh", token=TOKEN)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {table}")


def start(dsn: str, tmp: Path) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=dsn, JMGEO_PUBLIC_URL=f"http://127.0.0.1:{PORT}",
               JMGEO_QUERY_RATE="1000000", JMGEO_QUERY_BURST="1000000")
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/python"), "-m", "uvicorn", "jmgeo.app:create_app",
         "--factory", "--workers", "2", "--port", str(PORT), "--no-access-log",
         "--log-level", "warning"], env=env, cwd=tmp, start_new_session=True)
    wait_ready(proc, f"http://127.0.0.1:{PORT}/health", "the server")
    return proc


def run(paths: list[str], duration: int, tmp: Path) -> dict:
    r = run_wrk(PORT, paths, duration, tmp, TOKEN, connections=CLIENTS)
    return {k: r[k] for k in ("rps", "p50_ms", "p99_ms", "non2xx", "raw")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rates", default="50,100,150",
                    help="constant offered rates (req/s) for the open-loop runs")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    dsn = bench_dsn()
    prepare(dsn, args.rows)
    rnd = random.Random(5)
    paths = [f"/exchange/query/{NAME}/{key_of(rnd.randint(1, args.rows))}"
             for _ in range(5000)]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        proc = start(dsn, tmp)
        try:
            check = httpx.get(f"http://127.0.0.1:{PORT}{paths[0]}",
                              headers={"X-API-Key": TOKEN}, timeout=10)
            check.raise_for_status()
            run(paths[:200], 3, tmp)  # warm the pool, the caches and the index
            result = run(paths, args.duration, tmp)
            open_loop = [run_open_loop(f"http://127.0.0.1:{PORT}", paths, float(rate),
                                       args.duration, TOKEN, clients=CLIENTS)
                         for rate in args.rates.split(",")]
            for r in open_loop:
                r["meets_target"] = r["p99_ms"] < 20
                print(r, flush=True)
        finally:
            stop(proc)
    OUT.mkdir(parents=True, exist_ok=True)
    summary = {"scenario": f"online query by key, {CLIENTS} clients, {args.rows} rows, "
                           "conditional (masked, audited), 2 workers",
               **{k: v for k, v in result.items() if k != "raw"},
               "target_p99_ms": 20, "meets_target": result["p99_ms"] < 20,
               "open_loop": open_loop}
    (OUT / "query.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    print(json.dumps(summary, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
