"""Verification tickets reach their department: notifications in the platform's one inbox
(``exchange.notify``: ``jmgeo request inbox``, ``GET /exchange/notifications``, mail when
configured) — no second inbox.

- ``baselib_ticket_opened``: an integration that opens tickets tells each authoritative
  department once per run (how many, the first numbers, which attributes, the deadline)
  — a million-person run with 100 000 disagreements sends one notice per department, not
  100 000. The ticket keeps the notice (``opened_notice_id``).
- ``baselib_ticket_overdue``: the daily job (``baselib.tasks``) tells each authority of
  its tickets still unanswered past their deadline; a ticket is told once
  (``overdue_notice_id``), so the job may run as often as it likes.
- ``baselib_ticket_confirmed``: the authority confirmed its value — the copy's department
  is told to correct its copy (it is the one that must move).

A notice names libraries, attributes, ticket numbers and dates — never a key or a value:
an inbox row may be mailed, and a person's ID number or address must not travel by mail.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from psycopg.rows import dict_row

from baselib.libraries import LIBRARIES
from exchange import clock
from exchange.notify import notify
from jmgeo.errors import bilingual

SHOWN = 10  # ticket numbers named in one notice


def _ids(ids: list[int], n: int) -> str:
    return "、".join(map(str, ids)) + ("…" if n > len(ids) else "")


def _labels(library: str, attributes: list[str]) -> tuple[str, str]:
    labels = LIBRARIES[library].attributes
    return "、".join(labels.get(a, a) for a in attributes), ", ".join(attributes)


def notify_opened(conn, library: str, run_id: int, now: datetime) -> list[dict[str, Any]]:
    """Inside an integration: one notice per authoritative department of the tickets
    opened in run ``run_id``; returns what was sent."""
    groups = conn.cursor(row_factory=dict_row).execute(
        "SELECT d.code AS dept, d.id AS dept_id, count(*) AS n, (array_agg(t.id ORDER BY "
        "t.id))[1:%s] AS ids, array_agg(DISTINCT t.attribute) AS attributes, "
        "min(t.deadline) AS deadline FROM baselib_ticket t JOIN department d ON "
        "d.id = t.authority_dept_id WHERE t.opened_in_run = %s AND t.opened_notice_id IS "
        "NULL GROUP BY d.code, d.id ORDER BY d.code", (SHOWN, run_id)).fetchall()
    sent = []
    for g in groups:
        zh_attr, en_attr = _labels(library, g["attributes"])
        nid = notify(conn, g["dept"], "baselib_ticket_opened", bilingual(
            f"{LIBRARIES[library].title}新增校核工单 {g['n']} 件（编号 {_ids(g['ids'], g['n'])}；"
            f"属性：{zh_attr}），贵单位为权威部门，请于 {g['deadline']:%Y-%m-%d} 前核实答复"
            f"（确认或在新版本中更正）",
            f"{g['n']} new verification tickets for {library} ({en_attr}) await your answer "
            f"as the authority by {g['deadline']:%Y-%m-%d}: jmgeo baselib tickets --status "
            "open"), None, now)
        conn.execute("UPDATE baselib_ticket SET opened_notice_id = %s WHERE opened_in_run = "
                     "%s AND authority_dept_id = %s AND opened_notice_id IS NULL",
                     (nid, run_id, g["dept_id"]))
        sent.append({"dept": g["dept"], "tickets": g["n"], "notification": nid})
    return sent


def notify_overdue(conn, today: date | None = None, now: datetime | None = None
                   ) -> list[dict[str, Any]]:
    """Tell each authority of its tickets unanswered past their deadline (``deadline <
    today``, China time), each ticket once; returns what was sent."""
    now = now or datetime.now(UTC)
    today = today or clock.local_date(now)
    sent = []
    with conn.transaction():
        # one job at a time tells a ticket (the queue's lock aside: the CLI may run it too)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('baselib.ticket_overdue'))")
        groups = conn.cursor(row_factory=dict_row).execute(
            "SELECT t.library, d.code AS dept, d.id AS dept_id, count(*) AS n, (array_agg("
            "t.id ORDER BY t.id))[1:%s] AS ids, array_agg(DISTINCT t.attribute) AS "
            "attributes, min(t.deadline) AS deadline FROM baselib_ticket t JOIN department d "
            "ON d.id = t.authority_dept_id WHERE t.status = 'open' AND t.deadline < %s AND "
            "t.overdue_notice_id IS NULL GROUP BY t.library, d.code, d.id ORDER BY "
            "t.library, d.code", (SHOWN, today)).fetchall()
        for g in groups:
            zh_attr, en_attr = _labels(g["library"], g["attributes"])
            late = clock.working_days_between(g["deadline"], today)
            nid = notify(conn, g["dept"], "baselib_ticket_overdue", bilingual(
                f"{LIBRARIES[g['library']].title}校核工单 {g['n']} 件逾期未答复（编号 "
                f"{_ids(g['ids'], g['n'])}；属性：{zh_attr}；最早期限 {g['deadline']:%Y-%m-%d}，"
                f"已逾期 {late} 个工作日），逾期件数计入监督考核通报",
                f"{g['n']} verification tickets for {g['library']} ({en_attr}) are unanswered "
                f"past their deadline (earliest {g['deadline']:%Y-%m-%d}, {late} working days "
                "late); they count in the supervision report"), None, now)
            conn.execute(
                "UPDATE baselib_ticket SET overdue_notice_id = %s WHERE library = %s AND "
                "authority_dept_id = %s AND status = 'open' AND deadline < %s AND "
                "overdue_notice_id IS NULL", (nid, g["library"], g["dept_id"], today))
            sent.append({"library": g["library"], "dept": g["dept"], "tickets": g["n"],
                         "notification": nid})
    return sent


def notify_confirmed(conn, ticket: dict[str, Any], copy_dept: str, now: datetime) -> None:
    """The authority confirmed its value: the copy's department corrects its copy."""
    lib = LIBRARIES[ticket["library"]]
    label = lib.attributes.get(ticket["attribute"], ticket["attribute"])
    notify(conn, copy_dept, "baselib_ticket_confirmed", bilingual(
        f"校核工单 {ticket['id']}（{lib.title}，属性：{label}）：权威部门 {ticket['authority']} "
        f"确认其值，请更正资源 {ticket['copy_resource']} 中的副本",
        f"ticket {ticket['id']} ({ticket['library']}.{ticket['attribute']}): the authority "
        f"{ticket['authority']} confirmed its value; correct your copy in "
        f"{ticket['copy_resource']}"), None, now)
