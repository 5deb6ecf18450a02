"""Answer rules (答复时限规则) and the bureau's supervision view.

A rule is data: its legal basis, the working days allowed, who an overdue request
escalates to. The newest active rule applies to requests filed after it (a request keeps
the rule it was filed under). Only the bureau sets rules.

Supervision (督办): the counts of requests by state, how many went overdue (ever), and
every live grant made outside the workflow (``jmgeo grant add``: no approval on record).
"""

from __future__ import annotations

import re
from typing import Any

from exchange import store
from exchange.errors import Forbidden, Invalid
from jmgeo.errors import bilingual
from layers import audit, policy
from layers.grants import list_grants
from layers.policy import Caller


def list_rules(conn) -> list[dict[str, Any]]:
    """Every rule, newest first; ``applies`` marks the one new requests get."""
    rows = store.q(conn, "SELECT ru.id, ru.code, ru.basis, ru.working_days, ru.active, "
                         "ru.created_at, d.code AS escalate_to FROM answer_rule ru "
                         "LEFT JOIN department d ON d.id = ru.escalate_to_dept_id "
                         "ORDER BY ru.id DESC").fetchall()
    current = store.active_rule(conn)
    for r in rows:
        r["applies"] = current is not None and r["id"] == current["id"]
        r["escalate_to"] = r["escalate_to"] or store.BUREAU
    return rows


def set_rule(conn, caller: Caller, *, working_days: int, basis: str, code: str | None = None,
             escalate_to: str = store.BUREAU) -> dict[str, Any]:
    """Add an active rule (the bureau only): requests filed from now on follow it."""
    if not caller.can_manage:  # the bureau (layers.policy)
        raise Forbidden(bilingual("只有市网信统筹局可以设定答复时限",
                                  "only the bureau sets the answer rule"))
    basis = (basis or "").strip()
    if not basis:
        raise Invalid(bilingual("规则必须写明依据", "a rule needs its basis (依据), e.g. "
                                "'江府办〔2026〕1号'"))
    if working_days < 1 or working_days > 60:
        raise Invalid(bilingual(f"工作日数 {working_days} 无效",
                                f"working days must be 1–60 (got {working_days})"))
    code = (code or re.sub(r"\W+", "-", basis).strip("-").lower() or "rule")[:60]
    with conn.transaction():
        if store.q(conn, "SELECT 1 FROM answer_rule WHERE code = %s", (code,)).fetchone():
            raise Invalid(bilingual(f"规则代码 {code} 已存在", f"a rule {code!r} exists: "
                                    "give another --code"))
        dept = store.q(conn, "SELECT id FROM department WHERE code = %s",
                       (escalate_to,)).fetchone()
        row = store.q(conn, "INSERT INTO answer_rule (code, basis, working_days, "
                            "escalate_to_dept_id) VALUES (%s, %s, %s, %s) RETURNING id",
                      (code, basis, working_days, dept and dept["id"])).fetchone()
        audit.record(conn, action="exchange.rule", caller=caller,
                     request={"rule": code, "working_days": working_days, "basis": basis})
    return {"id": row["id"], "code": code, "basis": basis, "working_days": working_days}


def deactivate_rule(conn, caller: Caller, code: str) -> None:
    """Retire a rule (the bureau only); the seeded 51号 rule then applies again."""
    if not caller.can_manage:  # the bureau (layers.policy)
        raise Forbidden(bilingual("只有市网信统筹局可以停用规则",
                                  "only the bureau retires a rule"))
    with conn.transaction():
        row = store.q(conn, "UPDATE answer_rule SET active = false WHERE code = %s AND active "
                            "AND code <> 'gf-2016-51' RETURNING id", (code,)).fetchone()
        if row is None:
            raise Invalid(bilingual(f"没有可停用的规则 {code}", f"no active rule {code!r} to "
                                    "retire (the 51号 rule always stays)"))
        audit.record(conn, action="exchange.rule", caller=caller,
                     request={"rule": code, "active": False})


def supervision(conn, caller: Caller) -> dict[str, Any]:
    """The bureau's (and the auditor's) view: requests by state, overdue, CLI grants."""
    if not policy.sees_every_request(caller):
        raise Forbidden(bilingual("督办视图仅供市网信统筹局和审计员",
                                  "supervision is for the bureau and the auditor"))
    by_status = {r["status"]: r["n"] for r in store.q(
        conn, "SELECT status, count(*) AS n FROM share_request GROUP BY status")}
    overdue = store.q(conn, "SELECT count(*) AS n, count(*) FILTER (WHERE status = "
                            "'submitted') AS open FROM share_request WHERE overdue").fetchone()
    # grants typed with `jmgeo grant add` (no approval on record) that give data now or
    # will: layers.grants decides a grant's status, once
    cli = sorted(({k: g[k] for k in ("id", "layer", "dept", "purpose", "approved_by",
                                     "valid_from", "valid_to", "created_at", "status")}
                  for g in list_grants(conn)
                  if g["source"] == "cli" and g["status"] in ("live", "future")),
                 key=lambda g: g["id"])
    return {"by_status": by_status, "overdue_total": overdue["n"],
            "overdue_open": overdue["open"], "cli_grants": cli}
