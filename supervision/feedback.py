"""Evaluation (评议) and corrections (纠错) by the departments that received data.

A department rates a delivery it received (``exchange_delivery``: score 1–5 and a
comment), and raises a correction ticket on a resource it received — a record (by its
key), a field, a region — which goes to the owner's inbox with a deadline in working
days (the newest active ``correction_rule``; the ticket keeps the rule it was raised
under). Only the owner answers: *fixed in version N* (a version of the resource) or
*not an error* with the reason; the raiser is told. Whether a department "received" a
resource is the delivery count's answer, asked through ``layers.policy.may_rate``.
Ratings, tickets and answers are written to the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row

from exchange import clock
from exchange.notify import notify
from jmgeo.errors import bilingual
from layers import audit, policy
from layers.access_sql import AccessSQL
from layers.policy import Caller
from layers.registry import table_columns
from supervision.periods import Conflict, Forbidden, Invalid, NotFound


def _q(conn, sql: str, params: Any = None):
    return conn.cursor(row_factory=dict_row).execute(sql, params)


def received(conn, dept: str | None, resource: str) -> bool:
    """Has ``dept`` received any delivery of ``resource`` (any mode)?"""
    if not dept:
        return False
    return _q(conn, "SELECT 1 FROM exchange_delivery x JOIN layer l ON l.id = x.layer_id "
                    "JOIN department d ON d.id = x.dept_id WHERE l.name = %s AND d.code = %s "
                    "LIMIT 1", (resource, dept)).fetchone() is not None


def _never_received(what: str) -> Forbidden:
    return Forbidden(bilingual(f"本部门未收到过{what}，不能评议或纠错",
                               f"your department never received {what}: only a department "
                               "that received the data rates it or raises a correction"))


def rate_delivery(conn, caller: Caller, delivery_id: int, *, score: int,
                  comment: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Rate one delivery (score 1–5) as the department that received it."""
    row = _q(conn, "SELECT x.id, l.name AS resource, d.code AS dept, o.code AS owner "
                   "FROM exchange_delivery x JOIN layer l ON l.id = x.layer_id JOIN department "
                   "o ON o.id = l.owner_dept_id LEFT JOIN department d ON d.id = x.dept_id "
                   "WHERE x.id = %s", (delivery_id,)).fetchone()
    if not policy.may_rate(caller, row is not None and row["dept"] == caller.dept_code):
        # one answer whether the delivery is missing or another department's
        raise _never_received(f"交付 {delivery_id}")
    if not isinstance(score, int) or not 1 <= score <= 5:
        raise Invalid(bilingual(f"评分 {score!r} 无效，应为 1–5 的整数",
                                f"score {score!r} must be a whole number from 1 to 5"))
    with conn.transaction():
        new = _q(conn, "INSERT INTO delivery_rating (delivery_id, dept_id, score, comment, "
                       "rated_by, at) SELECT %s, id, %s, %s, %s, %s FROM department WHERE "
                       "code = %s ON CONFLICT (delivery_id) DO NOTHING RETURNING id",
                 (delivery_id, score, (comment or "").strip() or None, caller.name,
                  now or datetime.now(UTC), caller.dept_code)).fetchone()
        if new is None:
            raise Conflict(bilingual(f"交付 {delivery_id} 已评议过",
                                     f"delivery {delivery_id} is already rated"))
        audit.record(conn, action="supervision.rating", caller=caller, layer=row["resource"],
                     request={"delivery": delivery_id, "score": score})
    return {"id": new["id"], "delivery_id": delivery_id, "resource": row["resource"],
            "score": score, "comment": comment}


def received_deliveries(conn, caller: Caller, limit: int = 200) -> list[dict[str, Any]]:
    """The deliveries the caller's department received (newest first), each with its
    rating if it has one — what a department may rate (评议) and raise corrections on.
    Nothing for a caller that rates nothing (``layers.policy.may_rate``)."""
    if not policy.may_rate(caller, True):
        return []
    return _q(conn, "SELECT x.id, l.name AS resource, l.title, o.code AS owner, x.mode, "
                    "x.rows, x.deliveries, x.at, r.score, r.comment FROM exchange_delivery x "
                    "JOIN layer l ON l.id = x.layer_id JOIN department o ON o.id = "
                    "l.owner_dept_id JOIN department d ON d.id = x.dept_id LEFT JOIN "
                    "delivery_rating r ON r.delivery_id = x.id WHERE d.code = %s ORDER BY "
                    "x.at DESC, x.id DESC LIMIT %s", (caller.dept_code, limit)).fetchall()


def correction_rule(conn) -> dict[str, Any]:
    """The rule new tickets are raised under (the newest active one)."""
    return _q(conn, "SELECT id, basis, working_days FROM correction_rule WHERE active "
                    "ORDER BY id DESC LIMIT 1").fetchone()


def set_correction_rule(conn, caller: Caller, *, working_days: int, basis: str
                        ) -> dict[str, Any]:
    """A new active answer rule for correction tickets (the bureau's)."""
    if not policy.may_file_reports(caller):
        raise Forbidden(bilingual("只有市网信统筹局可以设定纠错答复期限",
                                  "only the bureau sets the correction deadline"))
    if not (basis or "").strip() or not 1 <= working_days <= 60:
        raise Invalid(bilingual("规则须写明依据，工作日数为 1–60",
                                "a rule needs its basis and 1–60 working days"))
    with conn.transaction():
        row = _q(conn, "INSERT INTO correction_rule (basis, working_days) VALUES (%s, %s) "
                       "RETURNING id, basis, working_days", (basis.strip(), working_days)
                 ).fetchone()
        audit.record(conn, action="supervision.rule", caller=caller,
                     request={"correction_working_days": working_days, "basis": basis})
    return row


def raise_correction(conn, caller: Caller, *, resource: str, description: str,
                     record_key: str | None = None, field: str | None = None,
                     region: str | None = None, now: datetime | None = None
                     ) -> dict[str, Any]:
    """Raise a correction ticket on a resource the caller's department received."""
    now = now or datetime.now(UTC)
    # the resource as the caller's access sees it (in service, its fields): a retired,
    # hidden or missing one gets the same answer as one never received
    layer, access = policy.lookup(conn, caller, resource)
    if access is None or not policy.may_rate(caller, received(conn, caller.dept_code,
                                                              resource)):
        raise _never_received(f"资源 {resource}")
    if not (description or "").strip():
        raise Invalid(bilingual("纠错须说明问题", "a correction needs its description: what "
                                "is wrong"))
    if field and not (layer["table_name"] and AccessSQL(
            access, table_columns(conn, layer["table_name"])).visible(field)):
        raise Invalid(bilingual(f"资源 {resource} 没有字段 {field!r}",
                                f"resource {resource!r} has no field {field!r}"))
    if region and _q(conn, "SELECT 1 FROM region WHERE code = %s", (region,)).fetchone() is None:
        raise Invalid(bilingual(f"区划代码 {region!r} 不存在", f"unknown region code {region!r}"
                                " (GB/T 2260, e.g. 440703)"))
    rule = correction_rule(conn)
    due = clock.deadline_and_warning(now, rule["working_days"])[0]
    with conn.transaction():
        row = _q(conn, "INSERT INTO correction (layer_id, version, dept_id, owner_dept_id, "
                       "record_key, field, region_code, description, rule_id, deadline, "
                       "raised_by, raised_at) SELECT %s, %s, d.id, o.id, %s, %s, %s, %s, %s, "
                       "%s, %s, %s FROM department d, department o WHERE d.code = %s AND "
                       "o.code = %s RETURNING id",
                 (layer["id"], layer["current_version"], record_key, field, region,
                  description.strip(), rule["id"], due, caller.name, now, caller.dept_code,
                  layer["owner_code"])).fetchone()
        # the notice may be mailed: it names the ticket, never a record's key (an ID number)
        where = "，".join(x for x in (record_key and "指定记录",
                                      field and f"字段 {field}", region and f"区域 {region}") if x)
        notify(conn, layer["owner_code"], "correction", bilingual(
            f"{caller.dept_code} 对资源 {resource} 提出纠错 {row['id']}（{where or '整体'}）："
            f"{description.strip()}，请于 {due:%Y-%m-%d} 前答复",
            f"correction {row['id']} on {resource} from {caller.dept_code}: answer by {due}"),
            now=now)
        audit.record(conn, action="supervision.correction", caller=caller, layer=resource,
                     request={"correction": row["id"], "record": record_key, "field": field,
                              "region": region})
    return get_correction(conn, row["id"], caller)


_CORRECTIONS = (
    "SELECT c.id, l.name AS resource, c.version, d.code AS raiser, o.code AS owner, "
    "CASE WHEN {holds} THEN c.record_key END AS record_key, c.record_key IS NOT NULL AND "
    "NOT ({holds}) AS record_key_withheld, c.field, c.region_code AS region, c.description, "
    "c.deadline, c.status, c.raised_at, c.answered_at, c.answered_by, c.fixed_version, "
    "c.reason, r.basis AS rule_basis, r.working_days FROM correction c JOIN layer l ON "
    "l.id = c.layer_id JOIN department d ON d.id = c.dept_id JOIN department o ON o.id = "
    "c.owner_dept_id JOIN correction_rule r ON r.id = c.rule_id WHERE {where} ORDER BY c.id")


def _corrections(conn, caller: Caller | None, where: str, params: list) -> list[dict]:
    """Tickets with the record key shown only to a department that holds the record (the
    raiser and the owner: ``layers.policy.correction_key_filter``); ``caller`` None is
    the platform itself (every key)."""
    holds = (policy.correction_key_filter(caller, raiser="d.code", owner="o.code")
             if caller is not None else policy.SQLFilter("TRUE"))
    sql = _CORRECTIONS.format(holds=holds.sql, where=where)
    return _q(conn, sql, [*holds.params, *holds.params, *params]).fetchall()


def get_correction(conn, ticket_id: int, caller: Caller | None = None
                   ) -> dict[str, Any] | None:
    rows = _corrections(conn, caller, "c.id = %s", [ticket_id])
    return rows[0] if rows else None


def list_corrections(conn, caller: Caller, status: str | None = None) -> list[dict[str, Any]]:
    """The tickets the caller may see: a department those it raised or owns, the bureau
    and the auditor all (:func:`layers.policy.supervision_scope`)."""
    ok, dept = policy.supervision_scope(caller)
    if not ok:
        return []
    return _corrections(conn, caller, "(%s::text IS NULL OR d.code = %s OR o.code = %s) AND "
                        "(%s::text IS NULL OR c.status = %s)",
                        [dept, dept, dept, status, status])


def answer_correction(conn, caller: Caller, ticket_id: int, *, outcome: str,
                      version: int | None = None, reason: str | None = None,
                      now: datetime | None = None) -> dict[str, Any]:
    """The owner's answer: ``fixed`` (in ``version``) or ``not_error`` (with ``reason``)."""
    now = now or datetime.now(UTC)
    t = get_correction(conn, ticket_id)
    ok, dept = policy.supervision_scope(caller)
    if t is None or not ok or (dept is not None and dept not in (t["raiser"], t["owner"])):
        raise NotFound(bilingual(f"纠错 {ticket_id} 不存在", f"no correction {ticket_id}"))
    if not policy.may_answer_correction(caller, t["owner"]):
        raise Forbidden(bilingual(f"纠错 {ticket_id} 只能由资源所属部门 {t['owner']} 答复",
                                  f"only the owner {t['owner']} answers correction "
                                  f"{ticket_id}"))
    if t["status"] != "open":
        raise Conflict(bilingual(f"纠错 {ticket_id} 已答复", f"correction {ticket_id} is "
                                 f"already answered ({t['status']})"))
    if outcome == "fixed":
        ok_version = version is not None and _q(
            conn, "SELECT 1 FROM layer_version v JOIN layer l ON l.id = v.layer_id WHERE "
                  "l.name = %s AND v.version = %s", (t["resource"], version)).fetchone()
        if not ok_version:
            raise Invalid(bilingual(f"已修正须给出 {t['resource']} 的版本号（现有版本中）",
                                    f"'fixed' needs the version of {t['resource']} that "
                                    f"fixes it (got {version!r}): see `jmgeo layer history`"))
    elif outcome == "not_error":
        if not (reason or "").strip():
            raise Invalid(bilingual("答复“非错误”须说明理由",
                                    "'not an error' needs its reason"))
    else:
        raise Invalid(bilingual(f"答复 {outcome!r} 无效，应为 fixed 或 not_error",
                                f"unknown answer {outcome!r}: fixed or not_error"))
    with conn.transaction():
        conn.execute("UPDATE correction SET status = %s, fixed_version = %s, reason = %s, "
                     "answered_at = %s, answered_by = %s WHERE id = %s AND status = 'open'",
                     (outcome, version if outcome == "fixed" else None,
                      (reason or "").strip() or None, now, caller.name, ticket_id))
        text = (f"已在第 {version} 版修正" if outcome == "fixed" else f"经核实非错误：{reason}")
        notify(conn, t["raiser"], "correction", bilingual(
            f"纠错 {ticket_id}（{t['resource']}）{text}",
            f"correction {ticket_id} ({t['resource']}): "
            + (f"fixed in version {version}" if outcome == "fixed" else f"not an error: {reason}")),
            now=now)
        audit.record(conn, action="supervision.answer", caller=caller, layer=t["resource"],
                     request={"correction": ticket_id, "outcome": outcome, "version": version})
    return get_correction(conn, ticket_id, caller)
