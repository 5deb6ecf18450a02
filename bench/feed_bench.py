#!/usr/bin/env python3
"""Feed benchmark (系统对接): incremental pull of 10,000 changed parcels from a
1,000,000-parcel layer vs a full export of the same layer.

Issue 11 target: the incremental pull takes ≥ 50× less time than a full export. In the
bench database (``jmgeo_bench``) the 1,000,000 parcels ``serve_bench.py`` loaded
(``layer_data.bench_parcels_v1``) are copied into layer ``bench_feed_parcels`` keyed by
宗地代码 ``zddm`` (version 1), then version 2 is the same table with 10,000 changes (6,000
areas changed, 2,000 parcels deleted, 2,000 new) published through ``registry.publish`` —
which records the change set once (timed and printed: the price of change capture, paid
at publish). The layer is *unconditional* with the right holder (``qlr``) sensitive, read
by 城乡规划局 (gh) with its key: masked, audited — the path a department system takes.

Timed, each ``--repeat`` times against one uvicorn worker, median reported:

* ``incremental``: ``GET /exchange/feeds/bench_feed_parcels?since=1`` (NDJSON, 10,000 records);
* ``full feed``: ``GET /exchange/feeds/bench_feed_parcels`` (NDJSON, every record);
* ``full export``: ``GET /downloads/bench_feed_parcels?format=geojson`` (the batch download).

Usage (repo root; ``serve_bench.py`` has made the parcels table once):

    .venv/bin/python bench/feed_bench.py [--repeat 3]

Writes bench/out/feed.json. Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from benchlib import bench_dsn, ensure_bench_db, stop, wait_ready

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
NAME = "bench_feed_parcels"
SOURCE = "layer_data.bench_parcels_v1"
TOKEN = "jmk_0fe3d1a2_feed-benchmark-only-token-not-a-secret-000"
PORT = 5212
CHANGES = {"update": 6000, "delete": 2000, "insert": 2000}


def _table(conn: psycopg.Connection, version: int) -> str:
    from layers.registry import table_name_for

    return f"layer_data.{table_name_for(NAME, version)}"


def _publish(conn: psycopg.Connection, version: int, table: str, n: int) -> dict:
    from layers.registry import publish

    return publish(conn, layer=NAME, version=version, table_name=table, feature_count=n,
                   report={}, title="基准测试地块（数据订阅）", dept="gtzy", theme="land",
                   sharing_class="unconditional", kind="vector",
                   geometry_type="MultiPolygon", key_field="zddm",
                   sensitive_fields={"qlr": "person_name"})


def prepare(dsn: str) -> dict:
    ensure_bench_db(dsn)
    sys.path.insert(0, str(REPO))
    from layers.departments import ensure_departments
    from layers.identity import create_key
    from layers.registry import finish_data_table, index_key

    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (SOURCE,)).fetchone()[0] is None:
            sys.exit(f"{SOURCE} is missing: run bench/serve_bench.py once first")
        row = conn.execute(
            "SELECT l.current_version FROM layer l JOIN layer_step s ON s.layer_id = l.id "
            "AND s.to_version = 2 AND s.added IS NOT NULL WHERE l.name = %s",
            (NAME,)).fetchone()
        if row is not None and row[0] == 2:  # made by an earlier run, change set recorded
            return {"publish_v2_seconds": None}
        ensure_departments(conn)
        if not conn.execute("SELECT 1 FROM api_key WHERE prefix = %s",
                            (TOKEN.split("_")[1],)).fetchone():
            create_key(conn, "bench-feed-gh", dept="gh", token=TOKEN)
        v1, v2 = _table(conn, 1), _table(conn, 2)
        for t in (v2, v1):
            conn.execute(f"DROP TABLE IF EXISTS {t}")
        conn.execute("DELETE FROM layer WHERE name = %s", (NAME,))
        print("copying 1,000,000 parcels into version 1 ...", flush=True)
        conn.execute(f"CREATE TABLE {v1} AS SELECT fid, geom, zddm::text, qlr::text, "
                     f"dlmc::text, xzqdm::text, zdmj::double precision, djrq::text, bz::text "
                     f"FROM {SOURCE}")
        conn.execute(f"ALTER TABLE {v1} ADD PRIMARY KEY (fid)")
        n = conn.execute(f"SELECT count(*) FROM {v1}").fetchone()[0]
        index_key(conn, v1, "zddm")
        finish_data_table(conn, v1)
        with conn.transaction():
            _publish(conn, 1, v1, n)
        print("version 2: 10,000 changes ...", flush=True)
        conn.execute(f"CREATE TABLE {v2} AS SELECT * FROM {v1}")
        conn.execute(f"ALTER TABLE {v2} ADD PRIMARY KEY (fid)")
        conn.execute(f"UPDATE {v2} SET zdmj = zdmj + 1 WHERE fid IN (SELECT fid FROM {v2} "
                     f"ORDER BY fid LIMIT {CHANGES['update']})")
        conn.execute(f"DELETE FROM {v2} WHERE fid IN (SELECT fid FROM {v2} ORDER BY fid DESC "
                     f"LIMIT {CHANGES['delete']})")
        conn.execute(f"INSERT INTO {v2} SELECT fid + 10000000, ST_Translate(geom, 0.001, 0), "
                     f"'NEW' || zddm, qlr, dlmc, xzqdm, zdmj, djrq, bz FROM {v2} ORDER BY fid "
                     f"LIMIT {CHANGES['insert']} OFFSET 100000")
        index_key(conn, v2, "zddm")
        finish_data_table(conn, v2)
        n2 = conn.execute(f"SELECT count(*) FROM {v2}").fetchone()[0]
        t0 = time.perf_counter()
        with conn.transaction():
            step = _publish(conn, 2, v2, n2)["step"]
        took = time.perf_counter() - t0
        print(f"publish of version 2 (change capture included): {took:.1f} s, {step}")
        conn.execute(f"VACUUM ANALYZE {v2}")
        return {"publish_v2_seconds": round(took, 2), "step": step}


def fetch(path: str) -> tuple[float, int, int]:
    """Seconds to read the whole answer, its bytes and lines."""
    t0 = time.perf_counter()
    size = lines = 0
    with httpx.stream("GET", f"http://127.0.0.1:{PORT}{path}", headers={"X-API-Key": TOKEN},
                      timeout=3600) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
    return time.perf_counter() - t0, size, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    dsn = bench_dsn()
    prep = prepare(dsn)
    cases = {"incremental": f"/exchange/feeds/{NAME}?since=1",
             "full_feed": f"/exchange/feeds/{NAME}",
             "full_export": f"/downloads/{NAME}?format=geojson"}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        # the full export is measured as the synchronous download it is for a caller who
        # waits (above JMGEO_EXPORT_SYNC_MAX_ROWS it would be a 202 export job)
        env = dict(os.environ, DATABASE_URL=dsn, JMGEO_PUBLIC_URL=f"http://127.0.0.1:{PORT}",
                   JMGEO_EXPORT_SYNC_MAX_ROWS="10000000")
        proc = subprocess.Popen(
            [str(REPO / ".venv/bin/python"), "-m", "uvicorn", "jmgeo.app:create_app",
             "--factory", "--port", str(PORT), "--no-access-log", "--log-level", "warning"],
            env=env, cwd=tmpdir, start_new_session=True)
        wait_ready(proc, f"http://127.0.0.1:{PORT}/health", "the server")
        try:
            fetch(cases["incremental"])  # warm
            for label, path in cases.items():
                runs = [fetch(path) for _ in range(args.repeat)]
                if runs[0][2] < 10_000:
                    sys.exit(f"{label}: {runs[0][2]} lines — not the data (a job? an error?)")
                results[label] = {"seconds": round(statistics.median(r[0] for r in runs), 3),
                                  "runs": [round(r[0], 3) for r in runs],
                                  "bytes": runs[0][1], "lines": runs[0][2]}
                print(label, results[label], flush=True)
        finally:
            stop(proc)
    inc = results["incremental"]["seconds"]
    summary = {
        "scenario": "1,000,000 parcels, 10,000 changed (6,000 updates, 2,000 deletes, 2,000 "
                    "inserts); unconditional, masked, audited; 1 uvicorn worker",
        **prep, **results,
        "ratio_full_export_over_incremental": round(results["full_export"]["seconds"] / inc, 1),
        "ratio_full_feed_over_incremental": round(results["full_feed"]["seconds"] / inc, 1),
        "target_ratio": 50}
    summary["meets_target"] = summary["ratio_full_export_over_incremental"] >= 50
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "feed.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2,
                                              default=str))
    print(json.dumps(summary, ensure_ascii=False, indent=2, default=str))


if __name__ == "__main__":
    main()
