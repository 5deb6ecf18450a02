#!/usr/bin/env python3
"""Base-library integration benchmark (issue 15): 1,000,000 persons from three sources.

Issue 15 target: under 2 minutes and 1 GB. The three person sources of
``baselib.fake.iter_persons`` — 公安 household register (``gaj_hj``: name, gender, birth
date, address), 人社 insurance (``rsj_cb``: name, insurance status, employer, phone) and
卫计 population register (``wjj_rk``: name, birth date, address, phone) — are generated
and streamed into table resources in the bench database (``jmgeo_bench``, as the other
benchmarks): about 10 % of the persons have a copy that disagrees with the authority, 1 %
of 卫计's keys carry a keying error (quarantined), some are 15-digit (upgraded).

Measured: ``jmgeo baselib integrate persons`` as a child process — wall time, the
child's peak RSS (``getrusage(RUSAGE_CHILDREN)``) and, since the set-based work runs in
PostgreSQL, the backend's peak private memory (RssAnon sampled from /proc; shared buffers
are the cluster's, not the run's) —
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
import threading
import time
from pathlib import Path

import psycopg
from benchlib import bench_dsn, ensure_bench_db

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"


class BackendMemory(threading.Thread):
    """Samples the PostgreSQL backends of the bench database (same machine: /proc) every
    0.2 s: the peak private memory (RssAnon: work_mem hashes and sorts, temp buffers) of
    any one backend — the part of the integration's memory that runs in the server."""

    def __init__(self, dsn: str, db: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.db, self.peak_kb, self.done = dsn, db, 0, threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.done.wait(0.2):
                pids = [r[0] for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> "
                    "pg_backend_pid()", (self.db,))]
                for pid in pids:
                    try:
                        status = Path(f"/proc/{pid}/status").read_text()
                    except OSError:
                        continue
                    for line in status.splitlines():
                        if line.startswith("RssAnon:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))


def integrate(env: dict[str, str], dsn: str, db: str) -> tuple[float, float, float, dict]:
    """One integration in a child process: seconds, the child's peak RSS (MB), the
    PostgreSQL backend's peak private memory (MB), report."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    sampler = BackendMemory(dsn, db)
    sampler.start()
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "jmgeo.cli", "baselib", "integrate",
                          "persons"], env=env, check=True, stdout=subprocess.PIPE, text=True)
    seconds = time.monotonic() - t0
    sampler.done.set()
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024, sampler.peak_kb / 1024, json.loads(out.stdout)


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
    first_s, first_mb, first_pg, first = integrate(env, dsn, args.db)
    print(f"first integration: {first_s:.1f} s, child peak {first_mb:.0f} MB, backend "
          f"private peak {first_pg:.0f} MB", flush=True)
    second_s, second_mb, second_pg, second = integrate(env, dsn, args.db)
    print(f"second integration (nothing changed): {second_s:.1f} s", flush=True)
    result = {
        "persons": args.persons, "sources": versions, "generate_and_load_s": round(generated, 1),
        "first": {"seconds": round(first_s, 1), "peak_rss_mb": round(first_mb),
                  "backend_private_peak_mb": round(first_pg),
                  "records": first["records"], "values": first["values"],
                  "disagreements": first["disagreements"], "tickets": first["tickets"],
                  "quarantined": first["quarantined"], "keys": first["keys"],
                  "steps": first["steps"]},
        "second": {"seconds": round(second_s, 1), "peak_rss_mb": round(second_mb),
                  "backend_private_peak_mb": round(second_pg),
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
