"""Verification tickets (校核工单): a copy that disagrees with the authority.

A ticket goes to the attribute's authoritative department with both values and both
sources side by side and a deadline in working days — the exchange's legal clock
(``exchange.clock``: the official holiday table) under a rule that is data
(``baselib_ticket_rule``, as ``answer_rule`` is for share requests; the newest active
rule applies to tickets opened after it).

Life of a ticket: ``open`` → the authority answers ``confirmed`` (its value stands: the
copy's department must correct its copy) or ``corrected`` in version N of its resource →
``closed`` by the first integration in which the copy and the authority agree (the
resolution says which side moved). An integration that finds the disagreement gone
closes an unanswered ticket as well. One live ticket per key, attribute and copy.

Who sees what: the authority, the copy's department, the bureau and the auditor see the
ticket (``layers.policy.request_filter``, the share-request rule: the two parties and
the supervisors); a value of a sensitive attribute, and the key of a person, come masked
in SQL (``layers.masking``) unless the caller holds that value already
(``layers.policy.holds_value``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from baselib import notices
from baselib.errors import BaselibError, NotAllowed
from baselib.libraries import LIBRARIES, OWNER
from exchange import clock
from layers import audit, policy
from layers.masking import mask_expression
from layers.policy import Caller

ANSWERS = ("confirmed", "corrected")


def _q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


def active_rule(conn) -> dict[str, Any]:
    row = _q(conn, "SELECT id, code, basis, working_days FROM baselib_ticket_rule WHERE "
                   "active ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        raise BaselibError("没有有效的校核时限规则", "no active ticket rule",
                           "jmgeo baselib rule set --working-days N --basis TEXT")
    return row


def set_rule(conn, caller: Caller, working_days: int, basis: str, code: str) -> dict:
    """A new rule (the bureau only); tickets opened from now on follow it."""
    if not caller.can_manage:
        raise NotAllowed("只有市网信统筹局可以设定校核时限", "only the bureau sets the rule")
    if not (basis or "").strip() or not 1 <= working_days <= 60:
        raise BaselibError("规则需写明依据，工作日为 1–60", "a rule needs a basis and "
                           "1–60 working days", "--basis TEXT --working-days N")
    row = _q(conn, "INSERT INTO baselib_ticket_rule (code, basis, working_days) VALUES "
                   "(%s, %s, %s) RETURNING id", (code, basis.strip(), working_days)).fetchone()
    return {"id": row["id"], "code": code, "basis": basis.strip(), "working_days": working_days}


def sync(conn, library: str, run_id: int, now: datetime) -> dict[str, int]:
    """Inside an integration (its temp tables ``_bl_dis`` and ``_bl_src``): close the
    tickets whose disagreement is gone, refresh the values of the rest, open new ones."""
    closed = conn.execute(
        "UPDATE baselib_ticket t SET status = 'closed', closed_at = %s, closed_in_run = %s, "
        "resolution = CASE WHEN (SELECT g.value FROM _bl_golden g WHERE g.key = t.key AND "
        "g.attribute = t.attribute) IS DISTINCT FROM t.authority_value THEN "
        "'权威部门已更正 / the authority corrected its value' ELSE '副本已更正 / the copy was "
        "corrected' END FROM _bl_src s WHERE t.library = %s AND t.status <> 'closed' AND "
        "s.resource = t.copy_resource AND NOT EXISTS (SELECT 1 FROM _bl_dis d WHERE "
        "d.copy_src = s.src AND d.key = t.key AND d.attribute = t.attribute)",
        (now, run_id, library)).rowcount
    conn.execute(
        "UPDATE baselib_ticket t SET authority_value = d.auth_value, copy_value = "
        "d.copy_value, authority_version = sa.version, copy_version = sc.version FROM _bl_dis d "
        "JOIN _bl_src sa ON sa.src = d.auth_src JOIN _bl_src sc ON sc.src = d.copy_src WHERE "
        "t.library = %s AND t.status <> 'closed' AND t.key = d.key AND t.attribute = "
        "d.attribute AND t.copy_resource = sc.resource", (library,))
    rule = active_rule(conn)
    due = clock.deadline(now, rule["working_days"])
    opened = conn.execute(
        "INSERT INTO baselib_ticket (library, key, attribute, authority_dept_id, "
        "authority_resource, authority_version, authority_value, copy_dept_id, copy_resource, "
        "copy_version, copy_value, rule_id, working_days, opened_at, opened_in_run, deadline) "
        "SELECT %s, d.key, d.attribute, da.id, sa.resource, sa.version, d.auth_value, dc.id, "
        "sc.resource, sc.version, d.copy_value, %s, %s, %s, %s, %s FROM _bl_dis d "
        "JOIN _bl_src sa ON sa.src = d.auth_src JOIN _bl_src sc ON sc.src = d.copy_src "
        "JOIN department da ON da.code = sa.dept JOIN department dc ON dc.code = sc.dept "
        "WHERE NOT EXISTS (SELECT 1 FROM baselib_ticket t WHERE t.library = %s AND "
        "t.status <> 'closed' AND t.key = d.key AND t.attribute = d.attribute AND "
        "t.copy_resource = sc.resource)",
        (library, rule["id"], rule["working_days"], now, run_id, due, library)).rowcount
    notified = notices.notify_opened(conn, library, run_id, now) if opened else []
    return {"opened": opened, "closed": closed, "notified": len(notified)}


def _value(column: str, holders: tuple[str, ...], caller: Caller, kinds: dict[str, str]
           ) -> sql.Composable:
    """``column`` as the caller gets it: in clear when the policy says the caller holds
    the value (``layers.policy.value_filter`` over each holder column), else masked in
    SQL by its attribute's mask kind (``kinds``: attribute → kind; ``"*"``: one kind for
    every row, as for the key)."""
    col = sql.SQL(column)
    filters = [policy.value_filter(caller, h, OWNER) for h in holders]
    if not kinds or any(f.sql == "TRUE" for f in filters):
        return col
    cond = sql.SQL(" OR ").join(sql.SQL(f.sql.replace("%s", "{}")).format(
        *map(sql.Literal, f.params)) for f in filters)
    if "*" in kinds:
        masked: sql.Composable = mask_expression(kinds["*"], col)
    else:
        masked = sql.SQL("CASE t.attribute {} ELSE {} END").format(
            sql.SQL(" ").join(sql.SQL("WHEN {} THEN {}").format(
                sql.Literal(a), mask_expression(k, col)) for a, k in kinds.items()), col)
    return sql.SQL("CASE WHEN {} THEN {} ELSE {} END").format(cond, col, masked)


def list_tickets(conn, caller: Caller, *, library: str | None = None,
                 status: str | None = None, ticket_id: int | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    """The tickets the caller may read (newest first), sensitive values masked: both
    parties and the supervisors read a ticket (``request_filter``). The authority sees
    both values (it is asked to check them), the copy's department its own value and the
    authority's masked, the auditor every sensitive value masked, the library's owner all;
    the key (a person's ID number) is clear to both parties, who hold the record."""
    where = policy.request_filter(caller, applicant="dc.code", owner="da.code")
    rows: list[dict[str, Any]] = []
    for lib in [LIBRARIES[library]] if library else list(LIBRARIES.values()):
        key_kind = lib.sensitive.get(lib.key)
        values = {a: k for a, k in lib.sensitive.items() if a in lib.attributes}
        key_col = _value("t.key", ("da.code", "dc.code"), caller, {"*": key_kind}) \
            if key_kind else sql.SQL("t.key")
        q = sql.SQL(
            "SELECT t.id, t.library, {k} AS key, t.attribute, da.code AS authority, "
            "{av} AS authority_value, t.authority_resource, t.authority_version, "
            "dc.code AS copy_dept, {cv} AS copy_value, t.copy_resource, t.copy_version, "
            "t.status, t.opened_at, t.deadline, t.working_days, t.answered_at, "
            "t.answered_by, t.answer_note, t.corrected_version, t.closed_at, t.resolution "
            "FROM baselib_ticket t JOIN department da ON da.id = t.authority_dept_id "
            "JOIN department dc ON dc.id = t.copy_dept_id WHERE t.library = %s AND "
            + where.sql).format(k=key_col, av=_value("t.authority_value", ("da.code",), caller,
                                                      values),
                                cv=_value("t.copy_value", ("dc.code", "da.code"), caller,
                                          values))
        params: list[Any] = [lib.name, *where.params]
        if status:
            q += sql.SQL(" AND t.status = %s")
            params.append(status)
        if ticket_id is not None:
            q += sql.SQL(" AND t.id = %s")
            params.append(ticket_id)
        rows += _q(conn, q + sql.SQL(" ORDER BY t.id DESC LIMIT %s"), [*params, limit]
                   ).fetchall()
    return sorted(rows, key=lambda r: -r["id"])[:limit]


def answer(conn, caller: Caller, ticket_id: int, verdict: str, *,
           version: int | None = None, note: str | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """The authority's answer: ``confirmed`` (its value stands) or ``corrected`` in
    version N of its resource. Only the authority (or the bureau for it) answers."""
    if verdict not in ANSWERS:
        raise BaselibError(f"答复无效：{verdict}", f"unknown answer {verdict!r}",
                           "answer confirmed or corrected --version N")
    if verdict == "corrected" and (version is None or version < 1):
        raise BaselibError("“已更正”须写明更正后的版本号", "'corrected' needs the version "
                           "that corrects it", "--version N")
    now = now or datetime.now(UTC)
    with conn.transaction():
        t = _q(conn, "SELECT t.*, da.code AS authority, dc.code AS copy_dept FROM "
                     "baselib_ticket t JOIN department da ON da.id = t.authority_dept_id JOIN "
                     "department dc ON dc.id = t.copy_dept_id WHERE t.id = %s FOR UPDATE OF t",
               (ticket_id,)).fetchone()
        if t is None or not list_tickets(conn, caller, library=t["library"],
                                         ticket_id=ticket_id):
            raise BaselibError(f"校核工单 {ticket_id} 不存在", f"no ticket {ticket_id}",
                               "see jmgeo baselib tickets", status=404)
        if not policy.may_answer(caller, t["authority"]):
            raise NotAllowed("只有权威部门可以答复校核工单", "only the authoritative department "
                             f"({t['authority']}) answers this ticket")
        if t["status"] == "closed":
            raise BaselibError(f"校核工单 {ticket_id} 已关闭", f"ticket {ticket_id} is closed",
                               status=409)
        _q(conn, "UPDATE baselib_ticket SET status = %s, answered_at = %s, answered_by = %s, "
                 "answer_note = %s, corrected_version = %s WHERE id = %s",
           (verdict, now, caller.name, note, version, ticket_id))
        if verdict == "confirmed":  # the copy must move: its department is told
            notices.notify_confirmed(conn, t, t["copy_dept"], now)
        audit.record(conn, action="baselib.ticket", caller=caller, layer=t["library"],
                     request={"ticket": ticket_id, "answer": verdict, "version": version})
    return {"id": ticket_id, "status": verdict, "corrected_version": version}


def report(conn, caller: Caller, today: date | None = None, *,
           since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """The supervision figures (通报) per authoritative department — the one source of the
    ticket counts (``GET /baselib/tickets/report`` and ``supervision.figures`` both read
    it). For the bureau, the auditor and the platform.

    Without a period: every ticket, as it stands ``today``. With ``[since, until)`` (a
    supervision period; ``today`` its judging day): the tickets of the period — opened in
    it, or still unsettled when it began — each as it stood at ``until``:

    - ``opened`` in the period; ``open`` neither answered nor closed by ``until``;
      ``answered`` (confirmed / corrected) and not yet closed; ``closed``;
    - ``overdue``: settled (answered, or closed because the disagreement went away) after
      the deadline, or unsettled with the deadline before ``today``;
    - ``mean_answer_working_days``: opening to answer (``exchange.clock``).

    ``rows`` are the tickets counted (number, library, attribute, departments, dates) —
    never a key or a value, so the report may travel as a file."""
    if not policy.sees_every_request(caller):
        raise NotAllowed("校核工单通报仅供市网信统筹局和审计员", "the ticket report is for the "
                         "bureau and the auditor")
    today = today or clock.local_date(datetime.now(UTC))
    where, params = "", []
    if until is not None:
        where = "WHERE t.opened_at < %s"
        params.append(until)
    if since is not None:
        where += (" AND " if where else "WHERE ") + (
            "(t.opened_at >= %s OR coalesce(least(t.answered_at, t.closed_at), 'infinity') "
            ">= %s)")
        params += [since, since]
    tickets = _q(conn, "SELECT t.id, t.library, t.attribute, da.code AS dept, dc.code AS "
                       "copy_dept, t.opened_at, t.deadline, t.answered_at, t.closed_at, "
                       "t.status FROM baselib_ticket t JOIN department da ON da.id = "
                       "t.authority_dept_id JOIN department dc ON dc.id = t.copy_dept_id "
                       f"{where} ORDER BY t.id", params).fetchall()
    def by_end(at: datetime | None) -> date | None:  # the day of an event before ``until``
        return clock.local_date(at) if at is not None and (until is None or at < until) \
            else None

    rows, out = [], {}
    for t in tickets:
        answered, closed = by_end(t["answered_at"]), by_end(t["closed_at"])
        settled = min(d for d in (answered, closed, date.max) if d is not None)
        settled = None if settled == date.max else settled
        state = "closed" if closed else "answered" if answered else "open"
        days = clock.working_days_between(t["opened_at"], t["answered_at"]) \
            if answered else None
        rows.append({"dept": t["dept"], "id": t["id"], "library": t["library"],
                     "attribute": t["attribute"], "copy_dept": t["copy_dept"],
                     "opened": clock.local_date(t["opened_at"]), "deadline": t["deadline"],
                     "answered": answered, "closed": closed, "state": state,
                     "in_period": since is None or t["opened_at"] >= since,
                     "answer_working_days": days,
                     "overdue": (settled is not None and settled > t["deadline"]) or
                                (settled is None and t["deadline"] < today)})
    for r in rows:
        d = out.setdefault(r["dept"], {"opened": 0, "open": 0, "answered": 0, "closed": 0,
                                       "overdue": 0, "answer_days": []})
        d["opened"] += r["in_period"]
        d[r["state"]] += 1
        d["overdue"] += r["overdue"]
        if r["answer_working_days"] is not None:
            d["answer_days"].append(r["answer_working_days"])
    for d in out.values():
        days = d.pop("answer_days")
        d["mean_answer_working_days"] = round(sum(days) / len(days), 1) if days else None
    return {"by_authority": out, "total": len(rows), "as_of": today.isoformat(),
            "rows": rows}
