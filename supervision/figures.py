"""The figures of a supervision period, for the whole city and each department.

Each section returns ``{"by_dept": {code: {...figures}}, "total": {...}, "rows": [...]}``:
``rows`` are the records every figure was computed from (the workbook's drill-down
sheets, the API's ``?drill=``), each naming its department, so a figure can be recounted
by hand. Departments are the *owners* (生产部门) except where a section says otherwise.

- cataloguing 编目: entries created by the period's end and not retired; ``declared`` are
  those the department catalogued itself (survey sheet, form — not the platform's layer
  sync); ``loaded`` = declared entries backed by a published resource, ``current`` = of
  those, not overdue at the period's end; ``complete`` = no problem against the national
  core metadata (``catalog.content.validate``) and a 发布日期; resources without an entry.
- timeliness 更新及时性: the obligations (:mod:`supervision.freshness`) whose deadline is
  in the period, judged on its last day (or today): on time / overdue / delinquent.
- quality 数据质量: the loader's score of the version current at the period's end, per
  resource; ratings (评议) given in the period to the department's deliveries.
- requests 共享申请: filed in the period to the department's resources; answered by the
  judging day (refusals the platform made at once for 不予共享 resources are counted
  apart: no one had to answer them), the median answer time in working days, overdue
  (escalated, answered after the deadline, or unanswered past it).
- exchange 交换量: deliveries (``exchange_delivery``) of the department's resources in
  the period, by mode, and what each department received.
- corrections 纠错: raised in the period against the department's resources, closed in
  the period, open and overdue at its end.
- verification 校核工单: the base libraries' tickets (一数一源、多元校核) by the
  *authoritative* department that must answer them — opened in the period, open,
  answered, closed and overdue at its end, the mean answer time; computed by
  ``baselib.tickets.report`` (the one count: supervision imports baselib, never the
  other way round).
"""

from __future__ import annotations

import statistics
from datetime import datetime, time, timedelta
from typing import Any

from psycopg.rows import dict_row

from baselib import tickets as baselib_tickets
from catalog.content import content_of, validate
from catalog.entries import get_entry
from exchange import clock
from exchange.deliveries import MODES, summary
from layers import policy
from layers.policy import IN_SERVICE_SQL
from supervision import freshness
from supervision.periods import Period

SYNC_ACTOR = "system:layer-sync"
# the composite score of the ranking: weights of each section's rate (data, shown in the
# report beside the ranking)
WEIGHTS = {"cataloguing": 0.25, "timeliness": 0.35, "quality": 0.2, "requests": 0.2}


def _q(conn, sql: str, params: Any = None) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(sql, params).fetchall()


def bounds(period: Period) -> tuple[datetime, datetime]:
    """The period as times in China: ``[start 00:00, as_of + 1 day 00:00)``."""
    return (datetime.combine(period.start, time(0), clock.CHINA),
            datetime.combine(period.as_of + timedelta(days=1), time(0), clock.CHINA))


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def departments(conn) -> dict[str, str]:
    return {r["code"]: r["name"] for r in _q(conn, "SELECT code, name FROM department "
                                                   "ORDER BY code")}


def cataloguing(conn, period: Period, states: dict[str, str]) -> dict[str, Any]:
    """Entries, declared, loaded, current, complete; resources without an entry."""
    _, until = bounds(period)
    entries = _q(conn, "SELECT e.id, e.code, e.name, e.created_by, e.layer_name, e.status, "
                       "d.code AS dept, l.current_version FROM catalog_entry e JOIN department "
                       "d ON d.id = e.provider_dept_id LEFT JOIN layer l ON l.name = "
                       f"e.layer_name AND {IN_SERVICE_SQL} WHERE e.status <> 'retired' AND e.created_at < %s "
                       "ORDER BY d.code, e.code", (until,))
    rows: list[dict[str, Any]] = []
    by: dict[str, dict[str, Any]] = {}
    for e in entries:
        entry = get_entry(conn, e["id"])
        problems = [p.as_dict()["message"] for p in validate(conn, content_of(entry))]
        if not entry.get("publish_date"):
            problems.append("发布日期为必填项 / publish_date is required")
        declared = e["created_by"] != SYNC_ACTOR
        loaded = e["layer_name"] is not None and e["current_version"] is not None
        current = loaded and states.get(e["layer_name"]) not in ("overdue", "delinquent")
        rows.append({"dept": e["dept"], "kind": "entry", "code": e["code"], "name": e["name"],
                     "resource": e["layer_name"], "declared": declared, "loaded": loaded,
                     "current": current, "complete": not problems,
                     "problems": "；".join(problems)})
    for r in _q(conn, "SELECT l.name, l.title, d.code AS dept FROM layer l JOIN department "
                      "d ON d.id = l.owner_dept_id WHERE l.current_version IS NOT NULL AND "
                      f"{IN_SERVICE_SQL} AND l.created_at < %s AND NOT EXISTS (SELECT 1 FROM catalog_entry e WHERE "
                      "e.layer_name = l.name AND e.status <> 'retired') ORDER BY 3, 1",
                  (until,)):
        rows.append({"dept": r["dept"], "kind": "uncatalogued", "code": None,
                     "name": r["title"], "resource": r["name"], "declared": False,
                     "loaded": True, "current": None, "complete": False,
                     "problems": "资源无目录条目 / the resource has no catalog entry"})
    for r in rows:
        d = by.setdefault(r["dept"], {"entries": 0, "complete": 0, "declared": 0,
                                      "declared_loaded": 0, "declared_current": 0,
                                      "missing_metadata": 0, "uncatalogued": 0})
        if r["kind"] == "uncatalogued":
            d["uncatalogued"] += 1
            continue
        d["entries"] += 1
        d["complete"] += r["complete"]
        d["missing_metadata"] += not r["complete"]
        if r["declared"]:
            d["declared"] += 1
            d["declared_loaded"] += r["loaded"]
            d["declared_current"] += bool(r["current"])
    for d in by.values():
        d["rate"] = _rate(d["complete"], d["entries"] + d["uncatalogued"])
    return {"by_dept": by, "rows": rows, "total": _sum(by, "rate", "complete",
                                                       ("entries", "uncatalogued"))}


def _sum(by: dict[str, dict[str, Any]], rate: str | None = None, num: str | None = None,
         den: tuple[str, ...] = ()) -> dict[str, Any]:
    """Column totals of the per-department figures (numbers only), and the city's rate."""
    total: dict[str, Any] = {}
    for d in by.values():
        for k, v in d.items():
            if isinstance(v, int) and not isinstance(v, bool):
                total[k] = total.get(k, 0) + v
    if rate and num:
        total[rate] = _rate(total.get(num, 0), sum(total.get(k, 0) for k in den))
    return total


def timeliness(conn, period: Period, rules: dict[str, freshness.Rule]) -> dict[str, Any]:
    """Obligations with a deadline in the period, judged on its last day (or today)."""
    rows, by = [], {}
    states = {}
    for r in freshness.resources(conn):
        rule = rules[r["cycle"]]
        st = freshness.state(r["publishes"], rule, period.as_of)
        if st["state"] is not None:
            states[r["name"]] = st["state"]
        d = by.setdefault(r["dept"], {"resources": 0, "obligations": 0, "on_time": 0,
                                      "overdue": 0, "delinquent": 0,
                                      **{f"now_{s}": 0 for s in freshness.STATES}})
        if st["state"] is None:
            continue
        d["resources"] += 1
        d[f"now_{st['state']}"] += 1
        for o in freshness.obligations(r["publishes"], rule, period.as_of):
            if not period.start <= o.deadline <= period.as_of or o.outcome == "pending":
                continue
            d["obligations"] += 1
            d[o.outcome] += 1
            rows.append({"dept": r["dept"], "resource": r["name"], "title": r["title"],
                         "cycle": r["cycle"], "deadline": o.deadline, "since": o.anchor,
                         "updated_on": o.updated_on, "outcome": o.outcome,
                         "late_working_days": o.late_days})
    for d in by.values():
        d["rate"] = _rate(d["on_time"], d["obligations"])
    by = {k: v for k, v in by.items() if v["resources"]}
    return {"by_dept": by, "rows": rows, "states": states,
            "total": _sum(by, "rate", "on_time", ("obligations",))}


def quality(conn, period: Period) -> dict[str, Any]:
    """The loader's quality score of each resource's version at the period's end, and the
    ratings its deliveries got in the period."""
    since, until = bounds(period)
    versions = _q(conn, "SELECT DISTINCT ON (l.id) l.name AS resource, d.code AS dept, "
                        "v.version, (v.report->'quality'->>'score')::float AS score "
                        "FROM layer l JOIN department d ON d.id = l.owner_dept_id JOIN "
                        "layer_version v ON v.layer_id = l.id WHERE v.loaded_at < %s "
                        f"AND l.current_version IS NOT NULL AND {IN_SERVICE_SQL} "
                        "ORDER BY l.id, v.version DESC", (until,))
    ratings = _q(conn, "SELECT r.id, l.name AS resource, o.code AS dept, c.code AS rater, "
                       "r.score, r.comment, r.at, r.delivery_id FROM delivery_rating r JOIN "
                       "exchange_delivery x ON x.id = r.delivery_id JOIN layer l ON l.id = "
                       "x.layer_id JOIN department o ON o.id = l.owner_dept_id JOIN department "
                       "c ON c.id = r.dept_id WHERE r.at >= %s AND r.at < %s ORDER BY r.id",
                 (since, until))
    by: dict[str, dict[str, Any]] = {}
    rows = []
    for v in versions:
        rows.append({"dept": v["dept"], "kind": "version", "resource": v["resource"],
                     "version": v["version"], "score": v["score"]})
    for r in ratings:
        rows.append({"dept": r["dept"], "kind": "rating", "resource": r["resource"],
                     "rater": r["rater"], "score": r["score"], "comment": r["comment"],
                     "at": r["at"], "delivery_id": r["delivery_id"]})
    for code in {r["dept"] for r in rows}:
        scores = [r["score"] for r in rows if r["dept"] == code and r["kind"] == "version"
                  and r["score"] is not None]
        stars = [r["score"] for r in rows if r["dept"] == code and r["kind"] == "rating"]
        by[code] = {"resources": sum(1 for r in rows if r["dept"] == code
                                     and r["kind"] == "version"),
                    "scored": len(scores),
                    "mean_score": round(statistics.fmean(scores), 1) if scores else None,
                    "ratings": len(stars),
                    "mean_rating": round(statistics.fmean(stars), 2) if stars else None}
    all_scores = [r["score"] for r in rows if r["kind"] == "version" and r["score"] is not None]
    all_stars = [r["score"] for r in rows if r["kind"] == "rating"]
    total = _sum(by)
    total["mean_score"] = round(statistics.fmean(all_scores), 1) if all_scores else None
    total["mean_rating"] = round(statistics.fmean(all_stars), 2) if all_stars else None
    return {"by_dept": by, "rows": rows, "total": total}


def requests(conn, period: Period) -> dict[str, Any]:
    """Share requests filed in the period, by the resource owner."""
    since, until = bounds(period)
    reqs = _q(conn, "SELECT r.id, l.name AS resource, o.code AS dept, a.code AS applicant, "
                    "r.status, r.submitted_at, r.deadline, r.answered_at, r.overdue, r.escalated_at, "
                    "EXISTS (SELECT 1 FROM share_request_event e WHERE e.request_id = r.id "
                    "AND e.action = 'refuse_not_shared') AS automatic FROM share_request r "
                    "JOIN layer l ON l.id = r.layer_id JOIN department o ON o.id = "
                    "l.owner_dept_id JOIN department a ON a.id = r.applicant_dept_id WHERE "
                    "r.submitted_at >= %s AND r.submitted_at < %s ORDER BY r.id",
              (since, until))
    rows, by = [], {}
    for r in reqs:
        answered = r["answered_at"] is not None and r["answered_at"] < until
        answered_on = clock.local_date(r["answered_at"]) if answered else None
        days = clock.working_days_between(r["submitted_at"], r["answered_at"]) \
            if answered and not r["automatic"] else None
        # escalated by the clock by then, answered after the deadline, or still waiting
        # past it (a request withdrawn in time was never overdue)
        overdue = bool((r["escalated_at"] is not None and r["escalated_at"] < until)
                       or (answered and answered_on > r["deadline"])
                       or (not answered and r["status"] != "withdrawn"
                           and r["deadline"] < period.as_of))
        rows.append({"dept": r["dept"], "id": r["id"], "resource": r["resource"],
                     "applicant": r["applicant"], "status": r["status"],
                     "submitted": clock.local_date(r["submitted_at"]), "deadline": r["deadline"],
                     "answered": answered_on, "automatic": r["automatic"],
                     "answer_working_days": days, "overdue": overdue})
    for code in {r["dept"] for r in rows}:
        mine = [r for r in rows if r["dept"] == code]
        days = [r["answer_working_days"] for r in mine if r["answer_working_days"] is not None]
        by[code] = {"received": len(mine),
                    "answered": sum(1 for r in mine if r["answered"] and not r["automatic"]),
                    "automatic": sum(1 for r in mine if r["automatic"]),
                    "overdue": sum(1 for r in mine if r["overdue"]),
                    "median_working_days": statistics.median(days) if days else None}
        by[code]["rate"] = _rate(by[code]["received"] - by[code]["overdue"],
                                 by[code]["received"])
    total = _sum(by, "rate", "received", ("received",))
    total["rate"] = _rate(total.get("received", 0) - total.get("overdue", 0),
                          total.get("received", 0))
    days = [r["answer_working_days"] for r in rows if r["answer_working_days"] is not None]
    total["median_working_days"] = statistics.median(days) if days else None
    return {"by_dept": by, "rows": rows, "total": total}


def exchange_volume(conn, period: Period) -> dict[str, Any]:
    """Deliveries of each department's resources in the period by mode; received by each."""
    since, until = bounds(period)
    owners = {r["name"]: r["dept"] for r in _q(
        conn, "SELECT l.name, d.code AS dept FROM layer l JOIN department d ON d.id = "
              "l.owner_dept_id")}
    rows = []
    for s in summary(conn, since=since, until=until):
        rows.append({"dept": owners.get(s["resource"]), "resource": s["resource"],
                     "consumer": s["dept"], "mode": s["mode"], "deliveries": s["deliveries"],
                     "rows": s["rows"], "bytes": s["bytes"]})
    by: dict[str, dict[str, Any]] = {}
    for r in rows:
        d = by.setdefault(r["dept"], {"deliveries": 0, "rows": 0, "received": 0,
                                      **{m: 0 for m in MODES}})
        d["deliveries"] += r["deliveries"]
        d["rows"] += r["rows"]
        d[r["mode"]] += r["deliveries"]
    for r in rows:
        if r["consumer"]:
            by.setdefault(r["consumer"], {"deliveries": 0, "rows": 0, "received": 0,
                                          **{m: 0 for m in MODES}})["received"] += \
                r["deliveries"]
    return {"by_dept": by, "rows": rows, "total": _sum(by)}


def corrections(conn, period: Period) -> dict[str, Any]:
    """Correction tickets against each department's resources."""
    since, until = bounds(period)
    tickets = _q(conn, "SELECT c.id, l.name AS resource, o.code AS dept, r.code AS raiser, "
                       "c.record_key IS NOT NULL AS record, c.field, c.region_code, c.status, c.raised_at, "
                       "c.deadline, c.answered_at, c.fixed_version, c.reason FROM correction "
                       "c JOIN layer l ON l.id = c.layer_id JOIN department o ON o.id = "
                       "c.owner_dept_id JOIN department r ON r.id = c.dept_id WHERE "
                       "c.raised_at < %s AND (c.raised_at >= %s OR c.answered_at IS NULL OR "
                       "c.answered_at >= %s) ORDER BY c.id", (until, since, since))
    rows, by = [], {}
    for t in tickets:
        closed = t["answered_at"] is not None and t["answered_at"] < until
        closed_on = clock.local_date(t["answered_at"]) if closed else None
        rows.append({"dept": t["dept"], "id": t["id"], "resource": t["resource"],
                     "raiser": t["raiser"], "record": t["record"],
                     "field": t["field"], "region": t["region_code"],
                     "raised": clock.local_date(t["raised_at"]), "deadline": t["deadline"],
                     "in_period": t["raised_at"] >= since,
                     "closed": closed_on, "answer": t["status"] if closed else "open",
                     "fixed_version": t["fixed_version"] if closed else None,
                     "overdue": (closed and closed_on > t["deadline"]) or
                                (not closed and t["deadline"] < period.as_of)})
    for r in rows:
        d = by.setdefault(r["dept"], {"raised": 0, "closed": 0, "fixed": 0, "not_error": 0,
                                      "open": 0, "overdue": 0})
        d["raised"] += r["in_period"]
        if r["closed"]:
            d["closed"] += 1
            d[r["answer"]] += 1
        else:
            d["open"] += 1
        d["overdue"] += r["overdue"]
    return {"by_dept": by, "rows": rows, "total": _sum(by)}


def verification(conn, period: Period) -> dict[str, Any]:
    """Verification tickets (校核工单) by the authority: ``baselib.tickets.report`` over
    the period, as the platform (the figures are shown under ``supervision_scope``)."""
    since, until = bounds(period)
    rep = baselib_tickets.report(conn, policy.system("supervision-figures"), period.as_of,
                                 since=since, until=until)
    total = _sum(rep["by_authority"])
    days = [r["answer_working_days"] for r in rep["rows"]
            if r["answer_working_days"] is not None]
    total["mean_answer_working_days"] = round(sum(days) / len(days), 1) if days else None
    return {"by_dept": rep["by_authority"], "rows": rep["rows"], "total": total}


def ranking(sections: dict[str, dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """Owners ranked by the weighted rates (:data:`WEIGHTS`); a section a department has
    no figure for is left out of its weights (not counted as zero)."""
    out = []
    owners = set(sections["timeliness"]["by_dept"]) | set(sections["cataloguing"]["by_dept"])
    for code in owners:
        parts = {
            "cataloguing": sections["cataloguing"]["by_dept"].get(code, {}).get("rate"),
            "timeliness": sections["timeliness"]["by_dept"].get(code, {}).get("rate"),
            "quality": (lambda s: s / 100 if s is not None else None)(
                sections["quality"]["by_dept"].get(code, {}).get("mean_score")),
            "requests": sections["requests"]["by_dept"].get(code, {}).get("rate"),
        }
        weight = sum(WEIGHTS[k] for k, v in parts.items() if v is not None)
        score = (sum(WEIGHTS[k] * v for k, v in parts.items() if v is not None) / weight
                 if weight else None)
        out.append({"dept": code, "name": names.get(code, code),
                    "score": round(100 * score, 1) if score is not None else None, **parts})
    out.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0), r["dept"]))
    for i, r in enumerate(out, 1):
        r["rank"] = i
    return out


def compute(conn, period: Period, dept: str | None = None) -> dict[str, Any]:
    """Every figure of the period (the city, or one department's own: ``dept``)."""
    rules = freshness.load_rules(conn)
    names = departments(conn)
    tim = timeliness(conn, period, rules)
    sections = {"cataloguing": cataloguing(conn, period, tim.pop("states")),
                "timeliness": tim, "quality": quality(conn, period),
                "requests": requests(conn, period), "exchange": exchange_volume(conn, period),
                "corrections": corrections(conn, period),
                "verification": verification(conn, period)}
    ranks = ranking(sections, names)
    if dept is not None:
        for s in sections.values():
            s["by_dept"] = {k: v for k, v in s["by_dept"].items() if k == dept}
            s["rows"] = [r for r in s["rows"] if r.get("dept") == dept or
                         r.get("consumer") == dept]
            s["total"] = s["by_dept"].get(dept, {})
        ranks = [r for r in ranks if r["dept"] == dept]
    codes = sorted({c for s in sections.values() for c in s["by_dept"] if c})
    return {"period": {"label": period.label, "zh": period.zh, "kind": period.kind,
                       "start": period.start, "end": period.last_day, "as_of": period.as_of,
                       "complete": period.complete},
            "scope": dept or "city",
            "departments": [{"code": c, "name": names.get(c, c)} for c in codes],
            "rules": {c: r.describe() for c, r in sorted(rules.items())},
            "weights": WEIGHTS, "sections": sections, "ranking": ranks}
