"""The demo's share requests: every state, one overdue across National Day, idempotent."""

from __future__ import annotations

import os

import psycopg
import pytest

from conftest import create_test_database, drop_test_database, migrate
from exchange.demo import load_demo_requests
from layers import policy
from layers.departments import DEMO_DEPARTMENTS, ensure_departments
from layers.identity import DEMO_EXTRA_DEPARTMENTS, ensure_demo_identities
from loaders.demo import load_demo_layers


@pytest.fixture(scope="module")
def demo_db():
    """A database of its own: loading the demo layers here must not make the session's
    demo load (tests/test_loaders.py) find them already loaded."""
    from jmgeo import settings
    from spatial.regions import load_framework

    dsn = create_test_database("jmgeo_test_xdemo")
    old = os.environ.get("DATABASE_URL")
    try:
        migrate(dsn)
        load_framework(dsn, log=lambda *_: None)
        yield dsn
    finally:
        if old is not None:
            os.environ["DATABASE_URL"] = old
        settings.reset_settings()
        drop_test_database(dsn)


def test_demo_requests_in_every_state(demo_db, tmp_path):
    database_url = demo_db
    load_demo_layers(database_url, log=lambda *_: None, out=tmp_path / "demo")
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
        ensure_demo_identities(conn, tmp_path / "keys.txt")
    assert load_demo_requests(database_url, log=lambda *_: None) == 10
    assert load_demo_requests(database_url, log=lambda *_: None) == 0  # idempotent
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT r.status, r.overdue, r.deadline, r.escalated_at, r.submitted_at "
            "FROM share_request r JOIN layer l ON l.id = r.layer_id WHERE l.name = ANY(%s)",
            (["land_parcels", "enterprises", "civil_shelters"],)).fetchall()
        assert {r[0] for r in rows} == {"submitted", "approved", "partly_approved", "refused",
                                        "withdrawn", "expired", "appealed"}
        national_day = [r for r in rows if r[4].date().isoformat() == "2025-09-26"]
        assert len(national_day) == 1
        status, overdue, deadline, escalated, _ = national_day[0]
        assert status == "submitted" and overdue and deadline.isoformat() == "2025-10-16"
        assert escalated.date().isoformat() == "2025-10-17"
        # hb's demo key still has no grant; sw got land_parcels by approval
        hb = policy.Caller(kind="department", dept_code="hb")
        sw = policy.Caller(kind="department", dept_code="sw")
        assert policy.access_for(conn, hb, "land_parcels") is None
        access = policy.access_for(conn, sw, "land_parcels")[1]
        assert access.request_id is not None and access.regions == ("440705",)


def test_demo_exchange_modes_work_and_are_idempotent(demo_db, tmp_path, monkeypatch,
                                                     fresh_settings):
    """The demo's subscription, drop-folder file and fep copy — then what the worker does
    with them: the harvest publishes the December 企业名录 (a receipt beside it), the
    dispatch makes a push delivery for gh, the copy syncs in sync."""
    from exchange import fep_inbound, fep_outbound, push
    from exchange.demo_modes import DROP_NAME, FEP_SCHEMA, load_demo_modes

    inbox = tmp_path / "inbox"
    monkeypatch.setenv("JMGEO_FEP_INBOX", str(inbox))
    # the demo subscribes the platform's own receiver at its public URL: a resolvable one
    # (the in-process client's http://testserver is not a host name)
    monkeypatch.setenv("JMGEO_PUBLIC_URL", "http://127.0.0.1:5000")
    fresh_settings()
    with psycopg.connect(demo_db, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM layer WHERE name = 'enterprises'").fetchone():
            ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
            load_demo_layers(demo_db, log=lambda *_: None, out=tmp_path / "demo")
            ensure_demo_identities(conn)
            load_demo_requests(demo_db, log=lambda *_: None)
    said: list[str] = []
    load_demo_modes(demo_db, log=said.append)
    drop = inbox / "scjg" / "enterprises" / DROP_NAME
    assert drop.exists() and any("webhook-test" in s for s in said), said
    with psycopg.connect(demo_db, autocommit=True) as conn:
        sub = conn.execute("SELECT s.id, s.with_changes, s.resources FROM subscription s "
                           "JOIN department d ON d.id = s.dept_id WHERE d.code = 'gh'"
                           ).fetchall()
        assert [(w, sorted(r)) for _, w, r in sub] == [(True, ["enterprises", "land_parcels"])]
        copy_id, mode = conn.execute(
            "SELECT c.id, q.mode FROM fep_copy c JOIN layer_grant g ON g.id = c.grant_id "
            "JOIN share_request q ON q.id = g.request_id WHERE c.target_schema = %s",
            (FEP_SCHEMA,)).fetchone()
        assert mode == "fep"
        before = conn.execute("SELECT current_version FROM layer WHERE name = 'enterprises'"
                              ).fetchone()[0]
    # what the worker does
    result = fep_inbound.harvest(root=inbox, settle=0, dsn=demo_db)
    assert [r["status"] for r in result["receipts"]] == ["accepted"], result
    assert list((inbox / "scjg" / "enterprises" / "accepted").glob("*.receipt.json"))
    with psycopg.connect(demo_db, autocommit=True) as conn:
        now = conn.execute("SELECT current_version FROM layer WHERE name = 'enterprises'"
                           ).fetchone()[0]
        assert now == before + 1
        assert push.dispatch(conn), "the harvest's publish makes a delivery for gh"
        synced = fep_outbound.sync_copy(conn, copy_id)
        assert synced["status"] == "in_sync" and synced["row_count"] > 0
    # a second demo load adds nothing: the drop is not made again once harvested
    said.clear()
    load_demo_modes(demo_db, log=said.append)
    assert not drop.exists()
    assert all("present" in s or "already harvested" in s for s in said), said
