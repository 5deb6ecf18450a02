#!/usr/bin/env python3
"""前置机 outbound benchmark: initial and incremental sync of a 1,000,000-row grant.

A conditional parcel layer ``bench_fep_parcels_<rows>`` (MultiPolygon in CGCS2000, key
宗地代码 ``zddm``, the right holder ``qlr`` sensitive) is generated in SQL in the bench
database (``jmgeo_bench``, as the other benches), with a grant to 城乡规划局 (gh) for every
field — so ``qlr`` is masked in the copy — and no region limit (every row granted). The
department side is another database on the same cluster (``jmgeo_bench_fep``). Then:

1. **initial sync** (``exchange.fep_outbound.sync_copy``): the full view piped by COPY
   into a new table, primary key and GIST index built, swapped in, metadata row — one
   target transaction; then the reconciliation (count + content hash on both sides);
2. a new version with 1 % of the rows changed (nine in ten updated, one in ten deleted)
   and 0.1 % new ones is published (its change capture at publish is timed apart, it is the loader's cost);
3. **incremental sync**: the change set since the copy's version, applied by key in one
   target transaction, then the reconciliation.

Each sync prints its transfer time (``sync_s``), reconciliation time (``reconcile_s``),
rows and bytes. Writes bench/out/fep.json. Rerunnable: every run publishes the next
version and rebuilds the copy from scratch first. Usage (database provisioned):

    .venv/bin/python bench/fep_bench.py [--rows 1000000] [--dsn postgresql://…]

Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from benchlib import bench_dsn, ensure_bench_db

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO))

COLUMNS = (("zddm", "text"), ("qlr", "text"), ("tdyt", "text"), ("mj", "double precision"),
           ("county", "text"))
# parcels scattered over Jiangmen's extent, 15–120 m across; deterministic per fid
GENERATE = (
    "INSERT INTO {table} (fid, geom, zddm, qlr, tdyt, mj, county) SELECT i, ST_Multi("
    "ST_MakeEnvelope(x, y, x + 0.00015 + (i %% 7) * 0.00015, y + 0.00015 + (i %% 5) * 0.0002, "
    "4490)), '440703' || lpad((i %% 97)::text, 3, '0') || 'GB' || lpad(i::text, 8, '0'), "
    "(ARRAY['陈','李','黄','梁','张'])[1 + i %% 5] || '权利人' || (i %% 1000), "
    "(ARRAY['住宅用地','商服用地','工矿仓储用地','耕地'])[1 + i %% 4], 50 + (i %% 5000) * 1.5, "
    "(ARRAY['440703','440704','440705','440781','440783','440784','440785'])[1 + i %% 7] "
    "FROM (SELECT i, 112.0 + ((i::bigint * 7919) %% 125000) / 100000.0 AS x, "
    "21.55 + ((i::bigint * 104729) %% 130000) / 100000.0 AS y FROM generate_series(1, %s) i) s")


def _name(rows: int) -> str:
    return f"bench_fep_parcels_{rows}"


def target_dsn(dsn: str) -> str:
    """The department side: ``<platform database>_fep`` on the same cluster, emptied."""
    parts = urlsplit(dsn)
    name = f"{parts.path.lstrip('/')}_fep"
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    out = parts._replace(path=f"/{name}").geturl()
    with psycopg.connect(out, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")  # every run starts empty
    return out


def publish_next(conn: psycopg.Connection, name: str, rows: int) -> dict:
    """Version 1 generated, or the next version with 1 % of the rows changed."""
    from layers.registry import (
        Column,
        create_data_table,
        finish_data_table,
        index_key,
        next_version,
        publish,
    )

    version = next_version(conn, name)
    cols = [Column(c, t) for c, t in COLUMNS]
    with conn.transaction():
        table = create_data_table(conn, name, version, "MultiPolygon", cols,
                                  title="基准测试宗地（前置机）", with_index=False)
        if version == 1:
            conn.execute(GENERATE.format(table=table), (rows,))
        else:
            prev = conn.execute(
                "SELECT v.table_name FROM layer l JOIN layer_version v ON v.layer_id = l.id "
                "AND v.version = l.current_version WHERE l.name = %s", (name,)).fetchone()[0]
            n = max(rows // 100, 10)  # 1 % touched: 9/10 updated, 1/10 deleted; n/10 new
            step = rows // n
            conn.execute(
                f"INSERT INTO {table} SELECT * FROM {prev} p WHERE NOT (p.fid %% %s = 1 AND "
                "(p.fid / %s) %% 10 = 0)", (step, step))
            conn.execute(f"UPDATE {table} SET mj = mj + %s WHERE fid %% %s = 1",
                         (version, step))
            top = conn.execute(f"SELECT max(fid) FROM {prev}").fetchone()[0]
            conn.execute(GENERATE.format(table=table).replace(
                "generate_series(1, %s)", "generate_series(%s, %s)"),
                (top + 1, top + n // 10))
        index_key(conn, table, "zddm")
        finish_data_table(conn, table)
        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        t0 = time.monotonic()
        out = publish(conn, layer=name, version=version, table_name=table,
                      feature_count=count, report={}, title="基准测试宗地（前置机）", dept="gtzy",
                      theme="land", sharing_class="conditional", key_field="zddm",
                      geometry_type="MultiPolygon", sensitive_fields={"qlr": "person_name"})
        out["publish_seconds"] = round(time.monotonic() - t0, 2)
        out["rows"] = count
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dsn", help="a migrated platform database to use instead of "
                    "jmgeo_bench (not migrated here)")
    args = ap.parse_args()
    dsn = args.dsn or bench_dsn()
    if not args.dsn:
        ensure_bench_db(dsn)
    from exchange import fep_outbound as fo
    from layers.departments import ensure_departments
    from layers.grants import add_grant, list_grants

    name = _name(args.rows)
    target = target_dsn(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_departments(conn)
        if conn.execute("SELECT 1 FROM layer WHERE name = %s", (name,)).fetchone() is None:
            print(f"generating {args.rows} parcels in SQL …", flush=True)
            publish_next(conn, name, args.rows)
            add_grant(conn, layer=name, dept="gh", purpose="前置机基准测试 benchmark",
                      approved_by="bench")  # every field: qlr stays masked; no regions
        grant = next(g["id"] for g in list_grants(conn, layer=name, dept="gh")
                     if g["status"] == "live")
        conn.execute("DELETE FROM fep_copy WHERE grant_id = %s", (grant,))
        copy = fo.add_copy(conn, fo.cli_caller(), grant_id=grant, target_url=target,
                           schema="bench", table="parcels")
        t0 = time.monotonic()
        initial = fo.sync_copy(conn, copy["id"])
        initial["total_s"] = round(time.monotonic() - t0, 2)
        print(f"initial sync: {initial['rows']} rows, {initial['bytes'] / 1e6:.0f} MB in "
              f"{initial['sync_seconds']} s + reconcile {initial['reconcile_seconds']} s "
              f"({initial['status']})", flush=True)
        print("publishing a version with 1 % changed …", flush=True)
        pub = publish_next(conn, name, args.rows)
        t0 = time.monotonic()
        incr = fo.sync_copy(conn, copy["id"])
        incr["total_s"] = round(time.monotonic() - t0, 2)
        print(f"incremental sync: {incr['rows']} changed rows, {incr['bytes'] / 1e6:.1f} MB in "
              f"{incr['sync_seconds']} s + reconcile {incr['reconcile_seconds']} s "
              f"({incr['status']})", flush=True)
    keep = ("mode", "from_version", "to_version", "rows", "bytes", "sync_seconds",
            "reconcile_seconds", "total_s", "status", "row_count")
    summary = {"scenario": f"fep copy of a {args.rows}-row conditional parcel grant "
                           "(every field, qlr masked) into another database on the cluster",
               "initial": {k: initial.get(k) for k in keep},
               "publish_with_change_capture_s": pub["publish_seconds"],
               "incremental": {k: incr.get(k) for k in keep},
               "incremental_vs_initial_sync": round(initial["sync_seconds"] /
                                                    max(incr["sync_seconds"], 1e-3), 1)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fep.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    print(json.dumps(summary, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
