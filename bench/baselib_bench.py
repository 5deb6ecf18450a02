#!/usr/bin/env python3
"""Base-library integration benchmark (issue 15): 1,000,000 persons from three sources.

Issue 15 target: under 2 minutes and 1 GB. The three person sources of
``baselib.fake.iter_persons`` — 公安 household register (``gaj_hj``: name, gender, birth
date, address), 人社 insurance (``rsj_cb``: name, insurance status, employer, phone) and
卫计 population register (``wjj_rk``: name, birth date, address, phone) — are generated
and streamed into table resources in the bench database (``jmgeo_bench``, as the other
benchmarks): about 10 % of the persons have a copy that disagrees with the authority, 1 %
of 卫计's keys carry a keying error (quarantined), some are 15-digit (upgraded).

Measured: ``jmgeo baselib integrate persons`` as a child process — wall time and the
child's peak RSS (``getrusage(RUSAGE_CHILDREN)``; the set-based work runs in PostgreSQL,
whose backend memory is bounded by ``work_mem``/temp files and is not in this figure) —
first run (every value new, ~100,000 tickets) and a second run with nothing changed.
Writes bench/out/baselib.json. Usage (from the repo root, database provisioned):

    .venv/bin/python bench/baselib_bench.py [--persons 1000000]

Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from benchlib import bench_dsn, ensure_bench_db

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"


def integrate(env: dict[str, str]) -> tuple[float, float, dict]:
    """One integration in a child process: seconds, the child's peak RSS (MB), report."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "jmgeo.cli", "baselib", "integrate",
                          "persons"], env=env, check=True, stdout=subprocess.PIPE, text=True)
    seconds = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024, json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=2017)
    ap.add_argument("--db", default="jmgeo_bench",
                    help="scratch database (another name keeps a trial run apart)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from baselib import libraries
    from baselib.demo import ensure_baselib_departments, publish_person_streams

    dsn = bench_dsn(args.db)
    env = ensure_bench_db(dsn)
    env["PYTHONPATH"] = str(REPO)
    from spatial.regions import load_framework

    load_framework(dsn)  # the spatial link locates addresses in the framework's towns
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_baselib_departments(conn)
        libraries.ensure_default_authorities(conn, "persons")
    t0 = time.monotonic()
    versions = publish_person_streams(dsn, args.persons, args.seed)
    generated = time.monotonic() - t0
    print(f"sources {versions} generated and loaded in {generated:.1f} s", flush=True)
    first_s, first_mb, first = integrate(env)
    print(f"first integration: {first_s:.1f} s, child peak {first_mb:.0f} MB", flush=True)
    second_s, second_mb, second = integrate(env)
    print(f"second integration (nothing changed): {second_s:.1f} s", flush=True)
    result = {
        "persons": args.persons, "sources": versions, "generate_and_load_s": round(generated, 1),
        "first": {"seconds": round(first_s, 1), "peak_rss_mb": round(first_mb),
                  "records": first["records"], "values": first["values"],
                  "disagreements": first["disagreements"], "tickets": first["tickets"],
                  "quarantined": first["quarantined"], "keys": first["keys"],
                  "steps": first["steps"]},
        "second": {"seconds": round(second_s, 1), "peak_rss_mb": round(second_mb),
                   "tickets": second["tickets"], "records_added": second["records_added"],
                   "steps": second["steps"]},
        "target": {"seconds": 120, "peak_rss_mb": 1024},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "baselib.json").write_text(json.dumps(result, ensure_ascii=False, indent=2))
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
