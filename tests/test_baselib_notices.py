"""Verification tickets reach their department (issue 15 §3): a notice in the platform's
one inbox when tickets are opened (one per authority and run), when they become overdue
(the daily job; each ticket once), and to the copy's department when the authority
confirms its value — none carrying a key or a value."""

from __future__ import annotations

from datetime import date, datetime

import psycopg
import pytest
from baselib_fixtures import reset_sources, ric, setup
from psycopg.rows import dict_row

from baselib import libraries, notices, tickets
from baselib.demo import publish_source
from baselib.integrate import integrate
from exchange import clock
from exchange.clock import CHINA
from exchange.notify import notifications
from layers.policy import Caller

OPENED = datetime(2026, 11, 2, 10, tzinfo=CHINA)  # a Monday: due 10 working days on, 11-16
KEYS = [ric(i, born=date(1979, 3, 3)) for i in (21, 23, 25)]
GAJ = [{"sfzh": k, "xm": n, "zz": a} for k, n, a in zip(
    KEYS, ("周一", "周二", "周三"), ("江门市蓬江区棠下镇建设路1号", "江门市江海区礼乐街道港口路2号",
                                 "江门市新会区会城街道胜利路3号"), strict=True)]
# 人社's copy: two names wrong (→ two tickets to 公安), one address wrong (→ a third)
RSJ = [{"sfzh": KEYS[0], "xm": "周壹", "zz": GAJ[0]["zz"]},
       {"sfzh": KEYS[1], "xm": "周贰", "zz": GAJ[1]["zz"]},
       {"sfzh": KEYS[2], "xm": "周三", "zz": "江门市新会区会城街道胜利路33号"}]
GAJ_CALLER = Caller(kind="department", dept_code="gaj", name="gaj-user")
RSJ_CALLER = Caller(kind="department", dept_code="rsj", name="rsj-user")


@pytest.fixture(scope="module")
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as c:
        setup(c)
        reset_sources(c, "persons")
        publish_source(c, "tbn_gaj", "gaj", GAJ, "sfzh")
        publish_source(c, "tbn_rsj", "rsj", RSJ, "sfzh")
        libraries.add_source(c, "persons", "tbn_gaj", "sfzh", {"name": "xm", "address": "zz"})
        libraries.add_source(c, "persons", "tbn_rsj", "sfzh", {"name": "xm", "address": "zz"})
        yield c
        # the session's other modules count the tickets of the shared database as of
        # today: this module's back-dated ones (overdue by now) leave with it
        c.execute("DELETE FROM baselib_ticket WHERE copy_resource = 'tbn_rsj'")


def _mine(conn) -> list[dict]:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT * FROM baselib_ticket WHERE copy_resource = 'tbn_rsj' ORDER BY id").fetchall()


def _notice(conn, nid: int) -> dict:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT n.*, d.code AS dept FROM notification n JOIN department d ON d.id = n.dept_id "
        "WHERE n.id = %s", (nid,)).fetchone()


def _no_values(message: str) -> None:
    for secret in [*KEYS, "周壹", "周贰", "周一", "周二", "胜利路33号", "建设路"]:
        assert secret not in message


def test_opening_tickets_tells_the_authority_once_per_run(conn):
    report = integrate(conn, "persons", by="test", now=OPENED)
    assert report["tickets"]["opened"] == 3 and report["tickets"]["notified"] == 1
    mine = _mine(conn)
    assert len(mine) == 3 and {t["opened_notice_id"] for t in mine} != {None}
    [nid] = {t["opened_notice_id"] for t in mine}
    n = _notice(conn, nid)
    assert n["dept"] == "gaj" and n["kind"] == "baselib_ticket_opened"
    assert "3 件" in n["message"] and "姓名" in n["message"] and "住址" in n["message"]
    assert clock.deadline(OPENED, 10) == date(2026, 11, 16) and "2026-11-16" in n["message"]
    assert all(t["deadline"] == date(2026, 11, 16) for t in mine)
    _no_values(n["message"])
    # the authority reads it in its inbox — the exchange's one inbox
    inbox = notifications(conn, GAJ_CALLER)
    assert nid in [m["id"] for m in inbox]
    # nothing new opened: no second notice
    again = integrate(conn, "persons", by="test", now=OPENED)
    assert again["tickets"]["opened"] == 0 and again["tickets"]["notified"] == 0


def test_confirming_tells_the_copy_department(conn):
    first = _mine(conn)[0]
    tickets.answer(conn, GAJ_CALLER, first["id"], "confirmed", now=OPENED)
    n = conn.cursor(row_factory=dict_row).execute(
        "SELECT n.message FROM notification n JOIN department d ON d.id = n.dept_id WHERE "
        "d.code = 'rsj' AND n.kind = 'baselib_ticket_confirmed' AND n.message LIKE %s",
        (f"校核工单 {first['id']}（%",)).fetchone()
    assert n is not None and "tbn_rsj" in n["message"]
    _no_values(n["message"])


def test_overdue_tickets_told_once_by_the_daily_job(conn):
    mine = _mine(conn)
    notices.notify_overdue(conn, today=date(2026, 11, 16))  # due today: not yet overdue
    assert all(t["overdue_notice_id"] is None for t in _mine(conn))
    sent = notices.notify_overdue(conn, today=date(2026, 11, 17))
    to_gaj = [s for s in sent if s["dept"] == "gaj" and s["library"] == "persons"]
    assert len(to_gaj) == 1 and to_gaj[0]["tickets"] >= 2
    after = {t["id"]: t for t in _mine(conn)}
    # the two unanswered are told; the confirmed one (answered in time) is not
    assert after[mine[0]["id"]]["overdue_notice_id"] is None
    told = {after[t["id"]]["overdue_notice_id"] for t in mine[1:]}
    assert told == {to_gaj[0]["notification"]}
    n = _notice(conn, to_gaj[0]["notification"])
    assert n["kind"] == "baselib_ticket_overdue" and "逾期未答复" in n["message"]
    assert "已逾期 1 个工作日" in n["message"]  # deadline 11-16, today 11-17
    _no_values(n["message"])
    # the job runs again (or daily): nobody is told twice
    assert notices.notify_overdue(conn, today=date(2026, 11, 18)) == []


def test_the_daily_job_is_declared_on_the_platform_queue():
    from baselib import tasks
    from jmgeo.queue import TASK_MODULES, app

    assert "baselib.tasks" in TASK_MODULES
    assert tasks.ticket_overdue_job.name == "baselib.ticket_overdue"
    periodic = {p.periodic_id: p.cron for p in app.periodic_registry.periodic_tasks.values()}
    assert periodic["baselib_ticket_overdue"] == "10 0 * * *"
