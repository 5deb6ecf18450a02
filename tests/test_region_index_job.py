"""A version without its region index (the boundaries were reloaded while it loaded, or
after: ``spatial.tasks``) gets it from a worker, so the first region statistics call does
not wait for the build; without a worker it is built on first use."""

from __future__ import annotations

import time

import psycopg
import pytest

from conftest import start_worker, stop_process
from loaders.pipeline import LoadOptions, load
from spatial.regionindex import region_index_name
from spatial.tasks import defer_region_index

CSV = "name,lon,lat\n" + "".join(f"r{i},113.{i:03d}1,22.5{i % 10}\n" for i in range(30))


def _exists(conn, table: str) -> bool:
    schema, name = region_index_name(table)
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{name}",)
                        ).fetchone()[0]


@pytest.fixture
def worker(database_url):
    proc = start_worker(database_url)
    yield proc
    stop_process(proc)


def test_a_worker_builds_the_region_index_after_publish(database_url, tmp_path, worker,
                                                      app_client):
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS)
    f = tmp_path / "points.csv"
    f.write_text(CSV, encoding="utf-8")
    report = load(f, LoadOptions(dept="gtzy", layer="trij_points", theme="land",
                                 sharing="open"), dsn=database_url, progress=False)
    assert report["region_index"] == "built"   # published with the version
    table = report["target"]["table"]
    schema, name = region_index_name(table)
    with psycopg.connect(database_url, autocommit=True) as conn:  # as a boundary reload
        conn.execute(f'DROP TABLE "{schema}"."{name}"')
    assert defer_region_index(table)
    deadline = time.monotonic() + 60
    with psycopg.connect(database_url, autocommit=True) as conn:
        while not _exists(conn, table):  # built by the worker: no statistics call made
            assert time.monotonic() < deadline, "the worker did not build the region index"
            time.sleep(0.3)
    r = app_client.get("/regions/440700/stats", params={"layer": "trij_points"})
    assert r.status_code == 200, r.text
    assert sum(x["count"] for x in r.json()["rows"]) == 30, r.json()
