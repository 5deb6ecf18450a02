"""Reading and writing share requests: the one SELECT, events, audit rows, answer diffs.

The transitions (``exchange.requests``) decide; this module only stores and reads. Every
transition writes one ``share_request_event`` row (append-only) and one audit row
(``exchange.<action>``) in the caller's transaction.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from layers import audit
from layers.grants import layer_fields
from layers.policy import Caller, request_filter

BUREAU = "wxtc"  # 市网信统筹局: escalations go here when the rule names no department

SELECT = (
    "SELECT r.id, l.name AS resource, l.title AS resource_title, l.kind, l.sharing_class, "
    "l.legal_basis, applicant.code AS applicant, owner.code AS owner, r.purpose, r.basis, "
    "r.fields, r.regions, r.period_from, r.period_to, r.mode, r.contact, r.status, "
    "r.submitted_at, r.deadline, ru.working_days, ru.basis AS rule_basis, ru.code AS rule, "
    "r.overdue, r.escalated_at, r.answered_at, r.grant_id, r.created_by, "
    "CASE WHEN g.id IS NULL THEN NULL WHEN g.revoked_at IS NOT NULL THEN 'revoked' "
    "WHEN g.valid_from > now() THEN 'future' "
    "WHEN g.valid_to IS NOT NULL AND g.valid_to <= now() THEN 'expired' "
    "ELSE 'live' END AS grant_status, g.valid_to AS grant_valid_to "
    "FROM share_request r JOIN layer l ON l.id = r.layer_id "
    "JOIN department applicant ON applicant.id = r.applicant_dept_id "
    "JOIN department owner ON owner.id = l.owner_dept_id "
    "JOIN answer_rule ru ON ru.id = r.rule_id "
    "LEFT JOIN layer_grant g ON g.id = r.grant_id ")


def q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A request row as the API and CLI give it (ISO dates)."""
    out = dict(row)
    for key in ("period_from", "period_to", "deadline"):
        if isinstance(out.get(key), date):
            out[key] = out[key].isoformat()
    out.pop("created_by", None)
    return out


def load(conn, caller: Caller, request_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    """One request as the caller may see it (None: unknown or not the caller's)."""
    f = request_filter(caller)
    row = q(conn, SELECT + f"WHERE r.id = %s AND {f.sql}" + (" FOR UPDATE OF r" if lock else ""),
            (request_id, *f.params)).fetchone()
    return row


def listing(conn, caller: Caller, *, box: str, status: str | None, limit: int,
            offset: int) -> tuple[list[dict[str, Any]], int]:
    f = request_filter(caller)
    where, params = [f.sql], list(f.params)
    if box == "outbox":
        where.append("applicant.code = %s")
        params.append(caller.dept_code)
    elif box == "inbox":
        where.append("owner.code = %s")
        params.append(caller.dept_code)
    if status:
        where.append("r.status = %s")
        params.append(status)
    cond = " AND ".join(where)
    total = q(conn, "SELECT count(*) AS n FROM (" + SELECT + "WHERE " + cond + ") x",
              params).fetchone()["n"]
    rows = q(conn, SELECT + "WHERE " + cond + " ORDER BY r.id DESC LIMIT %s OFFSET %s",
             [*params, limit, offset]).fetchall()
    return [public(r) for r in rows], total


def events(conn, request_id: int) -> list[dict[str, Any]]:
    return q(conn, "SELECT id, action, actor, actor_dept, for_dept, at, reason, answer, "
                   "from_status, to_status, grant_id FROM share_request_event "
                   "WHERE request_id = %s ORDER BY id", (request_id,)).fetchall()


def actor_of(caller: Caller, owner: str | None = None) -> dict[str, Any]:
    """Who acts, and for which owner when the bureau answers on its behalf."""
    for_dept = owner if owner and caller.kind == "admin" and caller.dept_code != owner \
        else None
    return {"actor": caller.name, "actor_dept": caller.dept_code, "for_dept": for_dept}


def record(conn, caller: Caller, row: dict[str, Any], action: str, *, to_status: str,
           reason: str | None = None, answer: dict[str, Any] | None = None,
           grant_id: int | None = None, now: datetime | None = None,
           owner: str | None = None) -> None:
    """One event row and one audit row for a transition of request ``row``."""
    who = actor_of(caller, owner)
    frm = row.get("status")
    q(conn, "INSERT INTO share_request_event (request_id, action, actor, actor_dept, "
            "for_dept, at, reason, answer, from_status, to_status, grant_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
      (row["id"], action, who["actor"], who["actor_dept"], who["for_dept"],
       now or datetime.now(UTC), reason, Jsonb(answer) if answer is not None else None,
       frm, to_status, grant_id))
    audit.record(conn, action=f"exchange.{action}", caller=caller, layer=row["resource"],
                 request={"share_request": row["id"], "from": frm, "to": to_status,
                          "grant_id": grant_id, "for_dept": who["for_dept"]})


def _as_set(values, everything: list[str]) -> set[str]:
    return set(everything) if values is None else set(values)


def diffs(conn, row: dict[str, Any], evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Answer to answer (approve → amend → renew …): what each new answer changed."""
    answers = [e for e in evs if e["answer"] is not None]
    if len(answers) < 2:
        return []
    all_fields = layer_fields(conn, row["resource"])
    out = []
    for old, new in zip(answers, answers[1:], strict=False):
        a, b = old["answer"], new["answer"]
        fa, fb = _as_set(a.get("fields"), all_fields), _as_set(b.get("fields"), all_fields)
        ra, rb = set(a.get("regions") or []), set(b.get("regions") or [])
        d = {"from_event": old["id"], "to_event": new["id"], "action": new["action"],
             "fields_added": sorted(fb - fa), "fields_removed": sorted(fa - fb),
             "regions": {"from": a.get("regions"), "to": b.get("regions"),
                         "added": sorted(rb - ra), "removed": sorted(ra - rb)},
             "valid_to": {"from": a.get("valid_to"), "to": b.get("valid_to")}}
        out.append(d)
    return out


def active_rule(conn) -> dict[str, Any]:
    """The newest active answer rule (the one a request filed now is answered under);
    ``escalate_to`` is the bureau when the rule names no existing department."""
    row = q(conn, "SELECT ru.id, ru.code, ru.basis, ru.working_days, ru.active, ru.created_at, "
                  "d.code AS escalate_to FROM answer_rule ru LEFT JOIN department d "
                  "ON d.id = ru.escalate_to_dept_id WHERE ru.active "
                  "ORDER BY ru.id DESC LIMIT 1").fetchone()
    if row is not None:
        row["escalate_to"] = row["escalate_to"] or BUREAU
    return row


def escalate_to(conn, request_id: int) -> str:
    row = q(conn, "SELECT d.code FROM share_request r JOIN answer_rule ru ON ru.id = r.rule_id "
                  "LEFT JOIN department d ON d.id = ru.escalate_to_dept_id WHERE r.id = %s",
            (request_id,)).fetchone()
    return (row and row["code"]) or BUREAU
