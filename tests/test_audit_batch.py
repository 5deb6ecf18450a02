"""Group commit of the audit log (``layers.audit_batch``): rows of concurrent requests are
appended in one transaction, every request still returns only once its own row is
committed, the chain stays whole and in id order, and one bad row fails only its own
request."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from baselib_fixtures import setup
from psycopg.rows import dict_row

from baselib.demo import publish_source
from layers import audit, record_log
from layers.audit_batch import WRITER
from layers.policy import Access, Caller

HB = Caller(kind="department", dept_code="hb", name="hb-batch")
ACCESS = Access("tab_people", "conditional", record_log=True)  # as decide gives it, marked


@pytest.fixture(scope="module")
def marked(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup(conn)
        publish_source(conn, "tab_people", "gaj", [{"zjhm": "B001", "xm": "甲"}], "zjhm")
        record_log.mark(conn, "tab_people")
    return "tab_people"


def _submit(out: dict, i: int, records=None) -> None:
    try:
        out[i] = audit.record_access(HB, ACCESS, "test.batch", f"/t/{i}", records=records)
    except Exception as exc:  # noqa: BLE001 — what the request would answer with
        out[i] = exc


def test_concurrent_rows_share_a_transaction_and_the_chain_holds(database_url, marked):
    out: dict[int, object] = {}
    with psycopg.connect(database_url, autocommit=True) as blocker:
        # hold the chain's lock: the writer's first batch waits, the rest queue behind it
        blocker.execute("SELECT pg_advisory_lock(%s)", (audit._LOCK_KEY,))
        before = WRITER.batches
        threads = [threading.Thread(target=_submit, args=(out, i)) for i in range(24)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        assert not out  # nothing answered before its row is committed
        blocker.execute("SELECT pg_advisory_unlock(%s)", (audit._LOCK_KEY,))
        for t in threads:
            t.join(timeout=30)
    ids = [out[i] for i in range(24)]
    assert all(isinstance(x, int) for x in ids) and len(set(ids)) == 24, ids
    assert WRITER.batches - before <= 3  # 24 rows in at most three transactions
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT id, request->>'path' AS path FROM audit_log WHERE id = "
                            "ANY(%s)", (ids,)).fetchall()
        assert {r["id"]: r["path"] for r in rows} == {out[i]: f"/t/{i}" for i in range(24)}
        assert audit.verify(conn) is None  # whole, in id order


def test_one_bad_row_fails_alone(database_url, marked):
    out: dict[int, object] = {}
    bad = record_log.Records(marked, ids=None)  # a page whose records cannot be read
    with psycopg.connect(database_url, autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(%s)", (audit._LOCK_KEY,))
        threads = [threading.Thread(target=_submit, args=(out, i, bad if i == 3 else None))
                   for i in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        blocker.execute("SELECT pg_advisory_unlock(%s)", (audit._LOCK_KEY,))
        for t in threads:
            t.join(timeout=30)
    assert isinstance(out[3], record_log.PageUnreadable)
    assert all(isinstance(out[i], int) for i in (0, 1, 2, 4, 5)), out
    with psycopg.connect(database_url) as conn:
        assert audit.verify(conn) is None
