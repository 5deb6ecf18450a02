#!/usr/bin/env python3
"""Compression benchmark: what gzip saves on items and what it costs in throughput.

One server (this checkout, 2 workers, default ``JMGEO_GZIP_LEVEL`` unless ``--level``),
the same data and the same requests, asked twice: ``Accept-Encoding: gzip`` and
``Accept-Encoding: identity``. Scenarios on the 1,000,000-parcel layer of the serve
benchmark: items in random 1 km boxes (``limit=100``, seed 7 — serve_bench's boxes) and
full pages of ``limit=1000`` (keyset cursors spread over the table).

* ratio: the bytes on the wire of every scenario path fetched once each way (the raw
  body, before any decoding), identity / gzip;
* throughput: wrk (2 threads, 8 connections) per scenario and encoding — req/s, p50/p99
  and bytes/s on the wire; the cost is gzip req/s / identity req/s.

Prints a table and writes bench/out/gzip.json.

    .venv/bin/python bench/gzip_bench.py [--duration 20] [--level 6]

Needs what bench/serve_bench.py needs, and its database: run serve_bench.py once first
(it loads the parcels into ``jmgeo_bench`` and registers layer ``bench_parcels``, open).
Our server runs this checkout (``PYTHONPATH`` = the repository) with ``--python``
(default: .venv/bin/python, else this interpreter).
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
from serve_bench import LAYER, TABLE, cursor_for_page, random_bboxes

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
PORT = 5221
ENCODINGS = ("identity", "gzip")


def start(dsn: str, tmp: Path, python: str, level: int | None) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=dsn, JMGEO_PUBLIC_URL=f"http://127.0.0.1:{PORT}",
               PYTHONPATH=str(REPO))
    if level is not None:
        env["JMGEO_GZIP_LEVEL"] = str(level)
    cmd = [python, "-m", "uvicorn", "jmgeo.app:create_app", "--factory", "--workers", "2",
           "--port", str(PORT), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, start_new_session=True)
    wait_ready(proc, f"http://127.0.0.1:{PORT}/health", "ours")
    return proc


def scenarios(dsn: str) -> dict[str, list[str]]:
    items = f"/ogc/collections/{LAYER}/items"
    with psycopg.connect(dsn) as conn:
        total = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    pages = max(2, total // 1000)
    cursors = [cursor_for_page(dsn, 2 + i * (pages - 2) // 20, 1000) for i in range(20)]
    return {
        "items bbox 1 km, limit 100": [
            f"{items}?f=json&limit=100&bbox={a:.5f},{b:.5f},{c:.5f},{d:.5f}"
            for a, b, c, d in random_bboxes(500)],
        "items page, limit 1000": [f"{items}?f=json&limit=1000&cursor={c}" for c in cursors],
    }


def wire_bytes(client: httpx.Client, path: str, encoding: str) -> tuple[int, str]:
    """Bytes of the body as sent (not decoded) and the Content-Encoding it came with."""
    with client.stream("GET", path, headers={"Accept-Encoding": encoding}) as r:
        r.raise_for_status()
        return sum(len(chunk) for chunk in r.iter_raw()), r.headers.get(
            "content-encoding", "identity")


def ratio(paths: list[str]) -> dict:
    sent = {e: 0 for e in ENCODINGS}
    gzipped = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=120) as client:
        for path in paths:
            for encoding in ENCODINGS:
                n, got = wire_bytes(client, path, encoding)
                sent[encoding] += n
                gzipped += encoding == "gzip" and got == "gzip"
    return {"identity_bytes": sent["identity"], "gzip_bytes": sent["gzip"],
            "ratio": round(sent["identity"] / sent["gzip"], 2) if sent["gzip"] else None,
            "responses_gzipped": f"{gzipped}/{len(paths)}"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--level", type=int, default=None, help="JMGEO_GZIP_LEVEL (default: "
                    "the platform's)")
    default_py = REPO / ".venv" / "bin" / "python"
    ap.add_argument("--python", default=str(default_py) if default_py.exists()
                    else sys.executable, help="the interpreter with the platform installed")
    a = ap.parse_args()
    dsn = bench_dsn()
    with psycopg.connect(dsn) as conn:
        if not conn.execute("SELECT 1 FROM layer WHERE name = %s", (LAYER,)).fetchone():
            sys.exit(f"layer {LAYER} missing in {dsn}: run bench/serve_bench.py once first")
    OUT.mkdir(parents=True, exist_ok=True)
    plan = scenarios(dsn)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        proc = start(dsn, tmp, a.python, a.level)
        try:
            for name, paths in plan.items():
                results[name] = {"size": ratio(paths)}  # also warms every worker
                print(f"{name:28s} {results[name]['size']}", flush=True)
                for encoding in ENCODINGS:
                    r = run_wrk(PORT, paths, a.duration, tmp, accept_encoding=encoding)
                    results[name][encoding] = {k: r[k] for k in (
                        "rps", "non2xx", "p50", "p99", "transfer_per_s")}
                    print(f"{name:28s} {encoding:9s} {results[name][encoding]}", flush=True)
                ident, gz = results[name]["identity"]["rps"], results[name]["gzip"]["rps"]
                results[name]["gzip_vs_identity_rps"] = round(gz / ident, 2) if ident else None
        finally:
            stop(proc)
    (OUT / "gzip.json").write_text(json.dumps(results, indent=2))
    print(f"\n| items, gzip level {a.level if a.level is not None else 'default'} | bytes "
          "identity / gzip | identity req/s | gzip req/s | gzip / identity req/s | "
          "p50 identity / gzip |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['size']['ratio']}× | {r['identity']['rps']:.0f} | "
              f"{r['gzip']['rps']:.0f} | {r['gzip_vs_identity_rps']} | "
              f"{r['identity']['p50']} / {r['gzip']['p50']} |")


if __name__ == "__main__":
    main()
