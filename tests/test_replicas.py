"""Scale-out on one machine (issue 16 §8): an API worker reading from a streaming replica.

Real PostgreSQL processes, no mocks: a primary and its ``pg_basebackup`` replica of the
test's own (``replica_fixtures``), a server started with ``JMGEO_REPLICA_URLS``, layers
published on the primary with ``jmgeo load``. The test walks one story:

1. a publish on the primary is served by the replica-backed worker within the lag;
2. its reads come from the replica (with replay paused, it still serves the replica's
   version) while every audit row of those reads is written on the primary;
3. the lag bound holds: a replica stuck behind is dropped once it may be more than
   ``JMGEO_REPLICA_MAX_LAG`` behind, so the publish is served anyway (from the primary);
4. nothing is lost when the replica is stopped: every request is answered from the
   primary, a publish meanwhile is served at once, and the restarted replica catches up
   with all of it (the audit rows included) and is used again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from replica_fixtures import make_pair

from conftest import REPO, serve

LAYER = "trep_shelters"
MAX_LAG = 5.0  # JMGEO_REPLICA_MAX_LAG of the test's server
CHECK = 0.2  # JMGEO_REPLICA_CHECK_SECONDS
ITEMS_ROWS = "SELECT count(*) FROM audit_log WHERE action = 'ogc.items'"


@pytest.fixture(scope="module")
def pair():
    from jmgeo.provision import LocalCluster
    from jmgeo.settings import Settings

    if not LocalCluster(Settings()).postgis_installed():
        pytest.skip("PostgreSQL 15 + PostGIS are not installed here (make test installs "
                    "them): the replica test runs its own clusters")
    made = make_pair()
    try:
        yield made
    finally:
        made.close()


def _features(n: int) -> dict:
    """``n`` points in 蓬江区, numbered: version k of the layer has a distinct count."""
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": f"避难场所{i}", "capacity": 100 + i},
         "geometry": {"type": "Point", "coordinates": [113.05 + i * 0.001, 22.6]}}
        for i in range(n)]}


def publish(pair, tmp_path, n: int) -> None:
    """``jmgeo load`` of an ``n``-feature file on the primary (a new version)."""
    path = tmp_path / f"shelters_{n}.geojson"
    path.write_text(json.dumps(_features(n), ensure_ascii=False), encoding="utf-8")
    env = dict(os.environ, DATABASE_URL=pair.app_dsn, JMGEO_VAR_DIR=str(pair.root / "var"),
               JMGEO_AUDIT_KEY_FILE=str(pair.root / "audit" / "keys.json"))
    env.pop("JMGEO_REPLICA_URLS", None)
    res = subprocess.run(
        [sys.executable, "-m", "jmgeo.cli", "load", str(path), "--dept", "rf", "--layer",
         LAYER, "--theme", "civil_defence", "--sharing", "unconditional", "--no-progress",
         "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def _key(pair) -> str:
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.identity import create_key

    with psycopg.connect(pair.app_dsn, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS)
        stamp = datetime.now(UTC).timestamp()
        return create_key(conn, f"trep-reader-{stamp}", dept="gtzy")["token"]


def _health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=5).json()["replicas"]


def _wait(what: str, probe, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_replica_serves_publishes_and_nothing_is_lost(pair, tmp_path):
    key = _key(pair)
    headers = {"X-API-Key": key}
    audited = 0  # answered 200 to the key: each wrote one audit row (an unconditional layer)

    with serve(pair.app_dsn, JMGEO_REPLICA_URLS=pair.replica_app_dsn,
               JMGEO_REPLICA_MAX_LAG=str(MAX_LAG), JMGEO_REPLICA_CHECK_SECONDS=str(CHECK),
               JMGEO_VAR_DIR=str(pair.root / "var"),
               JMGEO_AUDIT_KEY_FILE=str(pair.root / "audit" / "keys.json")) as url:
        items = f"{url}/ogc/collections/{LAYER}/items?f=json&limit=100"

        def count() -> int | None:
            nonlocal audited
            r = httpx.get(items, headers=headers, timeout=10)
            assert r.status_code in (200, 404), (r.status_code, r.text[:300])
            if r.status_code != 200:
                return None
            audited += 1
            return r.json()["numberReturned"]

        _wait("the replica in use", lambda: _health(url)["in_use"] == 1, 15)
        audit_before = pair.primary_query(ITEMS_ROWS)[0]

        # 1. published on the primary, served by the replica-backed worker within the lag
        publish(pair, tmp_path, 3)
        published = time.monotonic()
        _wait("version 1 served", lambda: count() == 3, MAX_LAG + 5)
        assert time.monotonic() - published < MAX_LAG
        assert _health(url)["in_use"] == 1

        # 2. reads from the replica, writes to the primary: with its replay paused the
        # worker still serves the replica's version 1 of a layer the primary has at 2
        pair.replica_query("SELECT pg_wal_replay_pause()")
        publish(pair, tmp_path, 5)
        assert count() == 3
        assert _health(url)["in_use"] == 1  # so the answer above was the replica's
        assert pair.primary_query(
            "SELECT current_version FROM layer WHERE name = %s", (LAYER,))[0] == 2

        # 3. the lag bound: stuck, the replica is dropped once it may be MAX_LAG behind
        # and the publish is served from the primary, replay still paused
        paused_publish = time.monotonic()
        _wait("version 2 served by the primary", lambda: count() == 5, MAX_LAG + 5)
        assert time.monotonic() - paused_publish <= MAX_LAG + 2
        assert _health(url)["in_use"] == 0
        assert pair.replica_query("SELECT pg_is_wal_replay_paused()")[0]
        pair.replica_query("SELECT pg_wal_replay_resume()")
        _wait("the replica in use again", lambda: _health(url)["in_use"] == 1, 10)
        assert count() == 5

        # 4. the replica stopped: every request is answered (from the primary), a publish
        # meanwhile is served at once, the audit rows go on being written
        pair.stop_replica()
        regions = [httpx.get(f"{url}/ogc/collections/regions/items?f=json&limit=1",
                             timeout=10).status_code for _ in range(5)]
        assert regions == [200] * 5
        assert [count() for _ in range(5)] == [5] * 5
        publish(pair, tmp_path, 7)
        assert count() == 7
        assert _health(url)["in_use"] == 0

        # ... and restarted, it catches up with all of it and is used again
        pair.start_replica()
        _wait("the restarted replica in use", lambda: _health(url)["in_use"] == 1, 20)
        pair.wait_caught_up()
        assert count() == 7
        primary_audit = pair.primary_query(ITEMS_ROWS)[0]

    # every audited read wrote its row on the primary (none went to the read-only
    # replica: the request would have failed), and the replica has every one of them
    assert primary_audit - audit_before == audited
    # a layer the replica had not replayed yet was absent, not refused (the refusal is
    # decided on the audience's source, not on the primary's newer registry)
    assert pair.primary_query("SELECT count(*) FROM audit_log WHERE action = 'refused'")[0] == 0
    pair.wait_caught_up()
    assert pair.replica_query(ITEMS_ROWS)[0] == primary_audit
    assert pair.replica_query("SELECT count(*) FROM audit_log")[0] == \
        pair.primary_query("SELECT count(*) FROM audit_log")[0]
    assert pair.replica_query("SELECT current_version FROM layer WHERE name = %s",
                              (LAYER,))[0] == 3


def test_only_get_and_head_read_through_a_read_scope(monkeypatch, fresh_settings):
    """A read scope (a replica's reads) opens for GET and HEAD only: every other method's
    reads stay on the primary with its writes."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from jmgeo import replicas

    monkeypatch.setenv("JMGEO_REPLICA_URLS", "postgresql://r:x@127.0.0.1:1/jmgeo")
    fresh_settings()
    seen = {}

    async def app(scope, receive, send):
        seen[scope["method"]] = replicas._ROUTE.get() is not None

    try:
        # a loop of its own in a thread of its own: a browser test earlier in the session
        # (Playwright's sync API) may leave this thread's event loop running
        with ThreadPoolExecutor(1) as pool:
            for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
                pool.submit(asyncio.run, replicas.ReadScope(app)(
                    {"type": "http", "method": method}, None, None)).result()
    finally:
        replicas.close_replicas()
    assert seen == {"GET": True, "HEAD": True, "POST": False, "PUT": False,
                    "PATCH": False, "DELETE": False, "OPTIONS": False}
    assert replicas._ROUTE.get() is None  # reset after the request


def test_a_primary_named_as_replica_is_not_read_and_replica_sessions_refuse_writes(
        database_url, monkeypatch, fresh_settings):
    """JMGEO_REPLICA_URLS naming a database that is not a standby (a promoted replica, a
    slip of the pen) is never read: its data may have left the primary's. And a replica's
    session is read-only whatever it points at: a write sent there fails, never lands."""
    from jmgeo import replicas

    monkeypatch.setenv("JMGEO_REPLICA_URLS", database_url)
    fresh_settings()
    try:
        found = replicas.replica_set()
        replica = found.replicas[0]
        replica.check(time.monotonic(), 1.0)
        assert not replica.up and found.pick() is None
        assert found.status()["in_use"] == 0
        with replicas.read_scope(), replicas.read_connection() as conn:  # the primary
            assert conn.execute("SELECT pg_is_in_recovery() AS r").fetchone()["r"] is False
        replica.up, replica.fresh_as_of = True, time.monotonic()  # as if it were a standby
        pool, conn = replica.borrow()
        try:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("UPDATE registry_state SET epoch = epoch WHERE false")
        finally:
            pool.putconn(conn)
    finally:
        replicas.close_replicas()
