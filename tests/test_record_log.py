"""The record-level access log (``layers.record_log``) on its own: which records each kind
of delivery enters — a page by its ids, a whole version, the keys of one change step (a
push), of every step after a boundary (an incremental feed or copy) — only for resources
that keep one, and an unreadable page refused rather than left unlogged."""

from __future__ import annotations

import psycopg
import pytest
from baselib_fixtures import setup

from baselib.demo import publish_source
from layers import record_log
from layers.policy import Access, Caller

HB = Caller(kind="department", dept_code="hb", name="hb-user")
ACCESS = Access("trl_people", "conditional", grant_id=None)
ROWS = [{"zjhm": f"K{i:03d}", "xm": f"人{i}"} for i in range(5)]


@pytest.fixture(scope="module")
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as c:
        setup(c)
        publish_source(c, "trl_people", "gaj", ROWS, "zjhm")
        changed = [dict(r, xm="改名") if r["zjhm"] in ("K001", "K003") else r for r in ROWS]
        publish_source(c, "trl_people", "gaj", changed, "zjhm")
        publish_source(c, "trl_other", "gaj", ROWS, "zjhm")
        yield c


def _steps(conn, layer):
    return [r[0] for r in conn.execute(
        "SELECT s.id FROM layer_step s JOIN layer l ON l.id = s.layer_id WHERE l.name = %s "
        "ORDER BY s.id", (layer,))]


def _logged(conn, way):
    return sorted(r[0] for r in conn.execute(
        "SELECT key FROM baselib_access WHERE library = 'trl_people' AND way = %s", (way,)))


def test_only_marked_resources_are_logged(conn):
    assert record_log.write(conn, HB, ACCESS, record_log.Records("trl_other", whole=True),
                            "t.unmarked", None) == 0
    record_log.mark(conn, "trl_people")
    assert record_log.logged(conn, "trl_people")["key_field"] == "zjhm"
    assert record_log.logged(conn, "trl_other") is None
    # the policy's answer carries it, so a way out asks no second question
    from layers import policy

    owner = Caller(kind="department", dept_code="gaj", name="gaj-user")
    assert policy.lookup(conn, owner, "trl_people")[1].record_log is True
    assert policy.lookup(conn, owner, "trl_other")[1].record_log is False


def test_each_kind_of_delivery_enters_its_records(conn):
    first, second = _steps(conn, "trl_people")
    w = record_log.write
    assert w(conn, HB, ACCESS, record_log.Records("trl_people", whole=True), "t.whole",
             1) == 5
    assert w(conn, HB, ACCESS, record_log.Records("trl_people", step=second), "t.push",
             2) == 2
    assert w(conn, HB, ACCESS, record_log.Records("trl_people", after_step=first),
             "t.feed", 3) == 2
    # a page: its ids as the caller got them (the key here: nothing masks it)
    assert w(conn, HB, ACCESS, record_log.Records("trl_people", ids=("K002", "K004")),
             "t.page", 4) == 2
    assert w(conn, HB, ACCESS, record_log.Records("trl_people", ids=()), "t.page", 5) == 0
    assert _logged(conn, "t.whole") == [r["zjhm"] for r in ROWS]
    assert _logged(conn, "t.push") == _logged(conn, "t.feed") == ["K001", "K003"]
    assert _logged(conn, "t.page") == ["K002", "K004"]
    row = conn.execute("SELECT dept_code, version, audit_id, outcome FROM baselib_access "
                       "WHERE way = 't.push' LIMIT 1").fetchone()
    assert row == ("hb", 2, 2, "delivered")


def test_a_page_whose_records_cannot_be_read_is_refused(conn):
    with pytest.raises(record_log.PageUnreadable, match="f=json"):
        record_log.write(conn, HB, ACCESS, record_log.Records("trl_people", ids=None),
                         "t.html", None)
    assert record_log.page_ids("<html>…</html>") is None
    assert record_log.page_ids('{"type": "Feature", "id": 7}') == ("7",)


def test_plans_say_what_a_pull_hands_out():
    from layers.changes import Plan

    full = Plan(1, 3, None, "t3", None)
    inc = Plan(2, 3, "t2", "t3", 41)
    empty = Plan(3, 3, "t3", "t3", 41)
    assert record_log.for_plan("x", full) == record_log.Records("x", version=3, whole=True)
    assert record_log.for_plan("x", inc) == record_log.Records("x", version=3, after_step=41)
    assert record_log.for_plan("x", empty) is None
