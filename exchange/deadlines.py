"""The clock's consequences: overdue requests escalate, lapsed ones expire, reminders.

:func:`check_deadlines` runs every 10 minutes in a ``jmgeo worker`` (``exchange.tasks``) and
on ``jmgeo request check``; an answer runs it for its own request first (``request_id``),
so a late answer is counted overdue and a lapsed request cannot be approved even between
two runs. Reads never run it (a GET writes nothing). It is idempotent:
each request escalates once (``overdue`` is set then and never reset — a request answered
late stays counted as overdue), expires once, and gets one reminder on its last day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from exchange import clock, store
from exchange.notify import notify
from jmgeo.errors import bilingual
from layers import policy

CLOCK = policy.system("exchange-clock")


def _moment(today: date | None, now: datetime | None) -> tuple[date, datetime]:
    if now is None:
        now = datetime.now(UTC) if today is None else \
            datetime.combine(today, time(12), tzinfo=clock.CHINA)
    return (today or clock.local_date(now)), now


def check_deadlines(conn, today: date | None = None, *, now: datetime | None = None,
                    request_id: int | None = None) -> list[dict[str, Any]]:
    """Escalate every submitted request past its deadline (bureau and owner notified),
    expire requests whose period or grant has lapsed, remind owners on the last day —
    all requests, or only ``request_id``. Returns what it did: ``[{"id", "action"}]``."""
    today, now = _moment(today, now)
    done: list[dict[str, Any]] = []
    only = "" if request_id is None else " AND r.id = %s"
    extra = () if request_id is None else (request_id,)
    with conn.transaction():
        overdue = store.q(conn,
            "UPDATE share_request r SET overdue = true, escalated_at = %s WHERE r.status = "
            "'submitted' AND NOT r.overdue AND r.deadline < %s" + only + " RETURNING r.id",
            (now, today, *extra)).fetchall()
        for r in overdue:
            row = store.load(conn, CLOCK, r["id"])
            store.record(conn, CLOCK, row, "escalate", to_status=row["status"], now=now,
                         reason=bilingual(f"逾期未答复（期限 {row['deadline']:%Y-%m-%d}，"
                                          f"{row['rule_basis']} {row['working_days']} 个工作日）",
                                          f"not answered by the deadline {row['deadline']} "
                                          f"({row['working_days']} working days)"))
            msg = bilingual(
                f"共享申请 {row['id']}（{row['applicant']} 申请 {row['resource']}）已逾期未答复，"
                f"期限 {row['deadline']:%Y-%m-%d}，已提请市网信统筹局督办",
                f"share request {row['id']} ({row['applicant']} for {row['resource']}) is "
                f"overdue since {row['deadline']}: escalated to the bureau")
            notify(conn, store.escalate_to(conn, row["id"]), "escalate", msg, row["id"], now)
            notify(conn, row["owner"], "overdue", msg, row["id"], now)
            done.append({"id": row["id"], "action": "escalate"})
        lapsed = store.q(conn,
            "SELECT r.id FROM share_request r LEFT JOIN layer_grant g ON g.id = r.grant_id "
            "WHERE (r.status = 'submitted' AND r.period_to IS NOT NULL AND r.period_to < %s) "
            "OR (r.status IN ('approved', 'partly_approved') AND g.revoked_at IS NULL "
            "AND g.valid_to IS NOT NULL AND g.valid_to <= %s)" + (
                "" if request_id is None else " AND r.id = %s")
            + " ORDER BY r.id FOR UPDATE OF r", (today, now, *extra)).fetchall()
        for r in lapsed:
            row = store.load(conn, CLOCK, r["id"])
            conn.execute("UPDATE share_request SET status = 'expired' WHERE id = %s",
                         (row["id"],))
            store.record(conn, CLOCK, row, "expire", to_status="expired", now=now,
                         reason=bilingual("申请期限或授权有效期已过", "the period asked or the "
                                          "grant's validity has ended"))
            msg = bilingual(f"共享申请 {row['id']}（{row['resource']}）已到期",
                            f"share request {row['id']} ({row['resource']}) has expired")
            notify(conn, row["applicant"], "expire", msg, row["id"], now)
            notify(conn, row["owner"], "expire", msg, row["id"], now)
            done.append({"id": row["id"], "action": "expire"})
        due = store.q(conn,
            "SELECT r.id FROM share_request r WHERE r.status = 'submitted' AND r.deadline = %s "
            "AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.request_id = r.id "
            "AND n.kind = 'reminder')" + only, (today, *extra)).fetchall()
        for r in due:
            row = store.load(conn, CLOCK, r["id"])
            notify(conn, row["owner"], "reminder", bilingual(
                f"今天是共享申请 {row['id']}（{row['applicant']} 申请 {row['resource']}）的答复期限",
                f"today is the deadline of share request {row['id']} ({row['applicant']} "
                f"for {row['resource']})"), row["id"], now)
            done.append({"id": row["id"], "action": "remind"})
    return done
