"""前置机 outbound (issue 11 §3) over real processes: a department copy in another database
on the local cluster equals the granted view (fields, masks, region scope — compared
with the department's own feed pull) after the first sync and after an update; a worker
SIGKILLed in the middle of a sync leaves the old state and the next run completes it;
reconciliation reports drift and the next full sync repairs it; a revoked grant drops the
copy's data; registration refuses what it cannot honour."""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import psycopg
import pytest
from exchange_fixtures import Api, make_callers
from test_feeds import _v1, changed, publish_version, resource
from test_job_queue import _env, _poll

from conftest import REPO, create_test_database, drop_test_database, stop_process
from exchange import fep_outbound as fo
from exchange.fep_target import FepError
from layers.grants import add_grant, revoke_grant
from layers.policy import Caller

_S = itertools.count(1)
BUREAU = Caller(kind="admin", dept_code="wxtc", name="test:bureau")


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    """The department side: another database (with PostGIS) on the same cluster."""
    dsn = create_test_database("jmgeo_fep_target")
    try:
        yield dsn
    finally:
        drop_test_database(dsn)


@pytest.fixture(scope="module")
def who(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield make_callers(conn)
        # the copies die with the target database: no later worker should try them
        conn.execute("DELETE FROM fep_copy")


@pytest.fixture
def gh(app_client, who) -> Api:
    return Api(app_client, who["applicant"])


def jmgeo(dsn: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "jmgeo.cli", *args], env=_env(dsn), cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr + r.stdout
    return r


def granted(db, kind: str) -> tuple[str, int]:
    """A conditional resource with change capture and a grant to 城乡规划局 (gh): for a
    layer every field (sensitive ones masked) in 蓬江区 only; for a table three fields."""
    name = resource(db, "conditional", kind)
    publish_version(db, name, _v1(), kind=kind)
    if kind == "table":
        g = add_grant(db, layer=name, dept="gh", purpose="企业核查", approved_by="测试",
                      fields=["name", "phone", "area"])
    else:
        g = add_grant(db, layer=name, dept="gh", purpose="规划", approved_by="测试",
                      regions=["440703"])
    return name, g


def view(api: Api, name: str) -> dict[str, tuple[dict, dict | None]]:
    """The granted view as the department pulls it (the feeds API): key → (properties,
    geometry)."""
    r = api.get(f"/exchange/feeds/{name}")
    assert r.status_code == 200, r.text
    recs = [json.loads(line) for line in r.text.splitlines() if line]
    return {x["key"]: (x["properties"], x.get("geometry")) for x in recs}


def copy_rows(dsn: str, schema: str, table: str) -> dict[str, tuple[dict, dict | None]]:
    """The copy as the department's database holds it: key (name) → (columns, geometry)."""
    with psycopg.connect(dsn) as conn:
        has_geom = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND "
            "table_name = %s AND column_name = 'geom'", (schema, table)).fetchone()
        geom = "ST_AsGeoJSON(t.geom, 7, 0)" if has_geom else "NULL"  # as the feed: RFC 7946
        rows = conn.execute(f'SELECT to_jsonb(t) - \'geom\', {geom} FROM "{schema}"."{table}" t'
                            ).fetchall()
    return {p["name"]: (p, json.loads(g) if g else None) for p, g in rows}


def meta(dsn: str, schema: str, table: str) -> dict | None:
    with psycopg.connect(dsn) as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        return cur.execute(f'SELECT * FROM "{schema}"._jmgeo_sync WHERE table_name = %s',
                           (table,)).fetchone()


def copy_state(db, copy_id: int) -> dict:
    return db.cursor(row_factory=psycopg.rows.dict_row).execute(
        "SELECT * FROM fep_copy WHERE id = %s", (copy_id,)).fetchone()


def register(db, target: str, grant: int, **kw) -> tuple[int, str, str]:
    schema = f"dept_{next(_S)}"
    c = fo.add_copy(db, BUREAU, grant_id=grant, target_url=target, schema=schema, **kw)
    return c["id"], schema, c["target_table"]


@pytest.mark.parametrize("kind", ["vector", "table"])
def test_copy_equals_the_granted_view_after_first_sync_and_update(db, database_url, target,
                                                                   gh, kind):
    name, grant = granted(db, kind)
    schema = f"dept_{next(_S)}"
    out = jmgeo(database_url, "fep", "copy", "add", "--grant", str(grant), "--target-url",
                target, "--schema", schema, "--every-minutes", "5").stdout
    copy_id = int(re.search(r"copy (\d+) registered", out).group(1))
    out = jmgeo(database_url, "fep", "sync", "--copy", str(copy_id)).stdout
    assert f"副本 {copy_id}: full" in out and "in_sync" in out, out
    got, want = copy_rows(target, schema, name), view(gh, name)
    assert got == want
    if kind == "vector":  # region scope: 蓬江区 only; every field, sensitive ones masked
        assert set(got) == {"北街地块", "白沙地块"}
        props = got["北街地块"][0]
        assert set(props) == {"fid", "name", "qlr", "phone", "sfz", "area", "county"} - {"fid"}
        assert props["phone"] == "138****1234" and "*" in props["sfz"] and "*" in props["qlr"]
        assert got["北街地块"][1]["type"] == "MultiPoint"
    else:  # fields: exactly the granted ones; a named sensitive field comes in clear
        assert set(got) == {"北街地块", "白沙地块", "台城地块", "水步地块"}
        assert set(got["北街地块"][0]) == {"name", "phone", "area"}
        assert got["北街地块"][0]["phone"] == "13812341234"
        assert got["北街地块"][1] is None
    m = meta(target, schema, name)
    state = copy_state(db, copy_id)
    assert state["status"] == "in_sync" and state["row_count"] == len(want)
    assert (m["version"], m["row_count"], m["content_hash"], m["status"]) == \
        (state["synced_version"], state["row_count"], state["content_hash"], "synced")

    v = publish_version(db, name, changed(_v1()), kind=kind)
    out = jmgeo(database_url, "fep", "sync", "--copy", str(copy_id)).stdout
    assert f"副本 {copy_id}: incremental v{v - 1}→v{v}" in out and "in_sync" in out, out
    assert copy_rows(target, schema, name) == view(gh, name)
    assert copy_state(db, copy_id)["synced_version"] == v == meta(target, schema, name)["version"]
    listed = jmgeo(database_url, "fep", "copy", "list").stdout
    assert any(line.startswith(f"副本 {copy_id:>3}  in_sync") for line in listed.splitlines())
    # counted as deliveries to gh (mode fep) and audited before the data left
    counted = db.execute(
        "SELECT e.rows FROM exchange_delivery e JOIN layer l ON l.id = e.layer_id JOIN "
        "department d ON d.id = e.dept_id WHERE l.name = %s AND e.mode = 'fep' AND "
        "d.code = 'gh' ORDER BY e.id", (name,)).fetchall()
    assert [r[0] for r in counted][0] == len(want) and len(counted) == 2
    audited = db.execute("SELECT count(*) FROM audit_log WHERE layer = %s AND action = "
                         "'fep_sync' AND dept_code = 'gh'", (name,)).fetchone()[0]
    assert audited == 2


def test_registration_refuses_what_it_cannot_honour(db, target):
    name, grant = granted(db, "vector")
    with pytest.raises(FepError, match="only the bureau"):
        fo.add_copy(db, Caller(kind="department", dept_code="gh"), grant_id=grant,
                    target_url=target)
    with pytest.raises(FepError, match="invalid schema name 'Bad-Schema'"):
        fo.add_copy(db, BUREAU, grant_id=grant, target_url=target, schema="Bad-Schema")
    with pytest.raises(FepError, match="cannot reach the target database") as exc:
        fo.add_copy(db, BUREAU, grant_id=grant,
                    target_url="postgresql://jm:secret@127.0.0.1:1/nowhere")
    assert "secret" not in str(exc.value) and "***" in str(exc.value)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS theirs")
        conn.execute(f"CREATE TABLE IF NOT EXISTS theirs.{name} (x int)")
    with pytest.raises(FepError, match="not a platform copy"):
        fo.add_copy(db, BUREAU, grant_id=grant, target_url=target, schema="theirs")
    revoked = add_grant(db, layer=name, dept="jy", purpose="规划", approved_by="测试")
    revoke_grant(db, revoked)
    with pytest.raises(FepError, match=f"grant {revoked} is revoked, not live"):
        fo.add_copy(db, BUREAU, grant_id=revoked, target_url=target)
    with pytest.raises(FepError, match="no grant 999999"):
        fo.add_copy(db, BUREAU, grant_id=999999, target_url=target)
    withheld = resource(db, "conditional", "table")  # the grant leaves the key out
    g = add_grant(db, layer=withheld, dept="gh", purpose="规划", approved_by="测试",
                  fields=["area"])
    with pytest.raises(Exception, match="key field name"):
        fo.add_copy(db, BUREAU, grant_id=g, target_url=target)
    copy_id, schema, table = register(db, target, grant)
    with pytest.raises(FepError, match="already another copy"):
        fo.add_copy(db, BUREAU, grant_id=grant, target_url=target, schema=schema)
    del copy_id, table


def test_drift_is_reported_and_the_next_sync_rebuilds(db, target, gh):
    name, grant = granted(db, "vector")
    copy_id, schema, table = register(db, target, grant)
    assert fo.sync_copy(db, copy_id)["status"] == "in_sync"
    with psycopg.connect(target, autocommit=True) as conn:  # someone edits the copy
        conn.execute(f'UPDATE "{schema}"."{table}" SET area = 1 WHERE name = %s', ("北街地块",))
    info = fo.sync_copy(db, copy_id)
    assert info["mode"] == "none" and info["status"] == "drift"
    state = copy_state(db, copy_id)
    assert state["status"] == "drift" and "hash differs" in state["detail"]
    assert state["row_count"] == 2
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(f'DELETE FROM "{schema}"."{table}" WHERE name = %s', ("白沙地块",))
    again = fo.sync_copy(db, copy_id)  # a drifted copy is rebuilt in full
    assert again["mode"] == "full" and again["status"] == "in_sync"
    assert copy_rows(target, schema, table) == view(gh, name)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(f'DELETE FROM "{schema}"."{table}" WHERE name = %s', ("白沙地块",))
    fo.sync_copy(db, copy_id)
    assert "the copy has 1 rows, the granted view 2" in copy_state(db, copy_id)["detail"]


def test_a_revoked_grant_drops_the_copy(db, target):
    name, grant = granted(db, "vector")
    copy_id, schema, table = register(db, target, grant)
    assert copy_id in fo.due_copies(db)  # never synced
    fo.sync_copy(db, copy_id)
    assert copy_id not in fo.due_copies(db)  # in sync, interval not passed
    revoke_grant(db, grant, by="测试")
    assert copy_id in fo.due_copies(db)  # the grant ended: due to be emptied
    info = fo.sync_copy(db, copy_id)
    assert info["mode"] == "revoked" and info["dropped"] is True
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"{schema}.{table}",)).fetchone()[0] \
            is None
    m = meta(target, schema, table)
    assert (m["status"], m["version"], m["row_count"]) == ("revoked", None, 0)
    state = copy_state(db, copy_id)
    assert state["status"] == "revoked" and "revoked" in state["detail"]
    assert copy_id not in fo.due_copies(db)


def test_a_changed_access_rebuilds_the_copy_in_its_new_shape(db, target, gh):
    name, grant = granted(db, "table")
    copy_id, schema, table = register(db, target, grant)
    fo.sync_copy(db, copy_id)
    # an amended answer: a newer grant applies (the policy's rule), with fewer fields
    add_grant(db, layer=name, dept="gh", purpose="企业核查（修改）", approved_by="测试",
              fields=["name", "area"])
    info = fo.sync_copy(db, copy_id)
    assert info["mode"] == "full" and info["status"] == "in_sync"
    got = copy_rows(target, schema, table)
    assert got == view(gh, name) and set(got["北街地块"][0]) == {"name", "area"}


# -- a worker killed in the middle of a sync ---------------------------------------------

@pytest.fixture
def worker(database_url: str) -> Iterator[Callable[[], subprocess.Popen]]:
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "jmgeo.cli", "worker"],
                                env=_env(database_url), cwd=REPO)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop_process(proc)


def _blocked_writer(conn: psycopg.Connection, schema: str, table: str) -> bool:
    """A sync's backend waiting on a lock *after* writing the copy table in its
    transaction (it holds RowExclusiveLock on it): killed there, it is mid-sync."""
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
        "WHERE a.datname = current_database() AND a.application_name = 'jmgeo-fep' AND "
        "a.wait_event_type = 'Lock' AND l.relation = to_regclass(%s) AND "
        "l.mode = 'RowExclusiveLock' AND l.granted)", (f'"{schema}"."{table}"',)
    ).fetchone()[0]


def test_a_killed_sync_leaves_the_old_state_and_the_next_run_completes_it(
        db, database_url, target, gh, worker):
    from exchange.fep_outbound_tasks import defer_sync

    name, grant = granted(db, "vector")
    copy_id, schema, table = register(db, target, grant)
    fo.sync_copy(db, copy_id)
    before = copy_rows(target, schema, table)
    assert before == view(gh, name)
    old_version = meta(target, schema, table)["version"]
    new_version = publish_version(db, name, changed(_v1()), kind="vector")
    with psycopg.connect(target, autocommit=True) as watch, \
            psycopg.connect(target) as holder:
        # hold the copy's metadata row: the sync writes its changes, then waits here
        holder.execute(f'SELECT 1 FROM "{schema}"._jmgeo_sync WHERE table_name = %s '
                       "FOR UPDATE", (table,))
        defer_sync(copy_id)
        first = worker()
        _poll(lambda: _blocked_writer(watch, schema, table), timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait()
        holder.rollback()
        # the dead sync's backend notices its client is gone and rolls back
        _poll(lambda: not watch.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
            "application_name = 'jmgeo-fep'").fetchone()[0], timeout=30)
    assert copy_rows(target, schema, table) == before  # the old state, whole
    assert meta(target, schema, table)["version"] == old_version
    # the next run: the killed job, put back when its worker's heartbeat went stale
    with psycopg.connect(database_url, autocommit=True) as conn:
        _poll(lambda: not conn.execute(
            "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - "
            "interval '2 seconds'").fetchone()[0], timeout=15)
    worker()
    _poll(lambda: copy_state(db, copy_id)["synced_version"] == new_version, timeout=90)
    assert copy_state(db, copy_id)["status"] == "in_sync"
    assert meta(target, schema, table)["version"] == new_version
    assert copy_rows(target, schema, table) == view(gh, name) != before


def test_an_unreachable_target_fails_the_sync_and_waits_its_interval(db, target):
    name, grant = granted(db, "table")
    copy_id, schema, table = register(db, target, grant, every_minutes=30)
    fo.sync_copy(db, copy_id)
    publish_version(db, name, changed(_v1()), kind="table")
    assert copy_id in fo.due_copies(db)  # a newer version is waiting
    db.execute("UPDATE fep_copy SET target_url = 'postgresql://jm:pw@127.0.0.1:1/gone' "
               "WHERE id = %s", (copy_id,))
    with pytest.raises(FepError, match="cannot reach the target database"):
        fo.sync_copy(db, copy_id)
    state = copy_state(db, copy_id)
    assert state["status"] == "failed" and "127.0.0.1:1" in state["last_error"]
    assert "pw" not in state["last_error"]
    assert copy_id not in fo.due_copies(db)  # a failing target waits its 30 minutes
    db.execute("UPDATE fep_copy SET target_url = %s WHERE id = %s", (target, copy_id))
    info = fo.sync_copy(db, copy_id)  # after a failure: rebuilt in full, whatever failed
    assert info["mode"] == "full" and info["status"] == "in_sync"
