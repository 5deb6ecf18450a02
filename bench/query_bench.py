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

``--resource persons`` (issue 15: online query by ID p99 < 20 ms at 50 clients) asks the
population base library instead: ``GET /exchange/query/persons/{ID number}`` as 城乡规划局
(gh) holding an unmasking grant that names ``id_number`` and ``name`` (a department
without one is refused: the key it would look up is masked for it) — the path adds the
person-level access log (``baselib_access``) to the audit row, and phone and address
stay masked. The library is the one ``bench/baselib_bench.py`` integrated when it holds
``--rows`` persons already; otherwise ``--rows`` persons (``baselib.fake``, three sources)
are generated and integrated first (about two minutes for 1,000,000). Keys are a random
sample of the library's ID numbers. Writes bench/out/query_persons.json:

    .venv/bin/python bench/query_bench.py --resource persons [--rows 1000000]

A trial at a tiny scale, kept out of the recorded data: ``--database jmgeo_bench_trial
--rows 2000 --duration 10 --clients 2 --rates 20``.
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
from urllib.parse import urlsplit

import httpx
import psycopg
from benchlib import bench_dsn, ensure_bench_db, run_open_loop, run_wrk, stop, wait_ready

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
NAME = "bench_query_parcels"
TOKEN = "jmk_0be4c401_query-benchmark-only-token-not-a-secret-00"
PERSONS_TOKEN = "jmk_0be4c402_persons-query-benchmark-only-token-not-secret"
PORT = 5211
CLIENTS = 50
SAMPLE = 5000


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


def prepare_persons(dsn: str, rows: int) -> list[str]:
    """The persons library (reused, or generated and integrated), gh's unmasking grant
    and key; returns a random sample of existing ID numbers."""
    ensure_bench_db(dsn)
    sys.path.insert(0, str(REPO))
    from baselib import libraries
    from baselib.demo import ensure_baselib_departments, publish_person_streams
    from baselib.integrate import integrate
    from layers.grants import add_grant, live_grants
    from layers.identity import create_key, lookup, parse_token

    def table(conn) -> tuple[str, int] | None:
        return conn.execute("SELECT v.table_name, v.feature_count FROM layer l JOIN "
                            "layer_version v ON v.layer_id = l.id AND v.version = "
                            "l.current_version WHERE l.name = 'persons'").fetchone()

    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_baselib_departments(conn)
        libraries.ensure_default_authorities(conn, "persons")
        have = table(conn)
    if have is None or have[1] < rows:
        print(f"generating and integrating {rows} persons ...", flush=True)
        publish_person_streams(dsn, rows)
        with psycopg.connect(dsn, autocommit=True) as conn:
            integrate(conn, "persons", by="bench")
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not any("id_number" in (g.get("fields") or [])
                   for g in live_grants(conn, "gh", "persons")):
            add_grant(conn, layer="persons", dept="gh", purpose="联机查询基准测试 benchmark",
                      approved_by="bench", fields=["id_number", "name"])
        if lookup(conn, parse_token(PERSONS_TOKEN) or "") is None:
            create_key(conn, "bench-query-persons-gh", dept="gh", token=PERSONS_TOKEN)
        name, count = table(conn)
        conn.execute(f"ANALYZE {name}")
        print(f"persons: {count} records in {name}", flush=True)
        return [k for (k,) in conn.execute(
            f"SELECT id_number FROM {name} ORDER BY random() LIMIT %s", (SAMPLE,))]


def start(dsn: str, tmp: Path) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=dsn, JMGEO_PUBLIC_URL=f"http://127.0.0.1:{PORT}",
               JMGEO_QUERY_RATE="1000000", JMGEO_QUERY_BURST="1000000")
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/python"), "-m", "uvicorn", "jmgeo.app:create_app",
         "--factory", "--workers", "2", "--port", str(PORT), "--no-access-log",
         "--log-level", "warning"], env=env, cwd=tmp, start_new_session=True)
    wait_ready(proc, f"http://127.0.0.1:{PORT}/health", "the server")
    return proc


def run(paths: list[str], duration: int, tmp: Path, token: str = TOKEN,
        clients: int = CLIENTS) -> dict:
    r = run_wrk(PORT, paths, duration, tmp, token, connections=clients)
    return {k: r[k] for k in ("rps", "p50_ms", "p99_ms", "non2xx", "raw")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rates", default="50,100,150",
                    help="constant offered rates (req/s) for the open-loop runs")
    ap.add_argument("--resource", choices=["parcels", "persons"], default="parcels",
                    help="parcels: the 1,000,000-parcel table (issue 11); persons: the "
                         "population base library by ID number (issue 15)")
    ap.add_argument("--clients", type=int, default=CLIENTS)
    ap.add_argument("--database", default=None,
                    help="the scratch database (default jmgeo_bench; another for a trial)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    dsn = bench_dsn(args.database) if args.database else bench_dsn()
    rnd = random.Random(5)
    if args.resource == "persons":
        token = PERSONS_TOKEN
        keys = prepare_persons(dsn, args.rows)
        paths = [f"/exchange/query/persons/{k}" for k in keys]
    else:
        token = TOKEN
        prepare(dsn, args.rows)
        paths = [f"/exchange/query/{NAME}/{key_of(rnd.randint(1, args.rows))}"
                 for _ in range(SAMPLE)]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        proc = start(dsn, tmp)
        try:
            check = httpx.get(f"http://127.0.0.1:{PORT}{paths[0]}",
                              headers={"X-API-Key": token}, timeout=10)
            check.raise_for_status()
            if args.resource == "persons":  # the grant unmasks the key; the rest masked
                props = check.json()["properties"]
                assert props["id_number"] == paths[0].rsplit("/", 1)[-1], props
                assert props["address"] in (None, "****"), "address not masked"
            run(paths[:200], 3, tmp, token, args.clients)  # warm pool, caches, index
            result = run(paths, args.duration, tmp, token, args.clients)
            open_loop = [run_open_loop(f"http://127.0.0.1:{PORT}", paths, float(rate),
                                       args.duration, token, clients=args.clients)
                         for rate in args.rates.split(",")]
            for r in open_loop:
                r["meets_target"] = r["p99_ms"] < 20
                print(r, flush=True)
        finally:
            stop(proc)
    OUT.mkdir(parents=True, exist_ok=True)
    what = ("persons library by ID number (unconditional, unmasking grant; masked, "
            "audited, person-level access log)" if args.resource == "persons"
            else "conditional (masked, audited)")
    summary = {"scenario": f"online query by key, {args.clients} clients, {args.rows} rows, "
                           f"{what}, 2 workers", "resource": args.resource,
               "database": urlsplit(dsn).path.lstrip("/"),
               **{k: v for k, v in result.items() if k != "raw"},
               "target_p99_ms": 20, "meets_target": result["p99_ms"] < 20,
               "open_loop": open_loop}
    out = "query_persons.json" if args.resource == "persons" else "query.json"
    (OUT / out).write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    print(json.dumps(summary, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
