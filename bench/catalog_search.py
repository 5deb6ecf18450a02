"""Benchmark: Chinese catalog search over N synthetic entries (default 10,000).

    .venv/bin/python bench/catalog_search.py [N]

Creates a throwaway database on the configured server (DATABASE_URL or the local
cluster), migrates it, loads N entries by COPY, then times ranked searches (the API's
``store.list_entries``: count + top 20 with items) and prints percentiles. Drops the
database at the end.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row


def main(n: int = 10_000) -> None:
    from alembic import command

    from catalog import samples, store
    from jmgeo.cli import alembic_config
    from jmgeo.settings import database_url, sqlalchemy_url
    from layers.departments import ensure_departments
    from layers.policy import Caller

    base = database_url()
    name = f"jmgeo_bench_catalog_{uuid.uuid4().hex[:6]}"
    admin = urlsplit(base)._replace(path="/postgres").geturl()
    dsn = urlsplit(base)._replace(path=f"/{name}").geturl()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        cfg = alembic_config()
        cfg.attributes["url"] = sqlalchemy_url(dsn)
        command.upgrade(cfg, "head")
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
            ensure_departments(conn)
            t0 = time.perf_counter()
            samples.bulk_entries(conn, n)
            print(f"loaded {n} entries in {time.perf_counter() - t0:.2f} s")
            caller = Caller(kind="department", dept_code="jt", name="bench")
            for q in ("道路", "道路中心", "人口", "河道水库", "所在", "登记信息", "路",
                      "xyz不存在"):
                times, total = [], 0
                for _ in range(30):
                    t = time.perf_counter()
                    _, total = store.list_entries(conn, caller, q=q, limit=20)
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                print(f"q={q!r:<12} matched={total:>6}  p50={statistics.median(times):6.1f} ms"
                      f"  p95={times[int(len(times) * .95) - 1]:6.1f} ms")
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
