"""Freshness (更新及时性): each resource's declared update cycle against its publishes.

The rule of a cycle is a row of ``update_rule`` (data; migration 0018 seeds the plan's):
an interval after the last publish (``every_days`` / ``every_months``) or the plan's
quarterly rule (``quarter_day``: by the Nth day of each quarter's first month — the
cycle ``quarterly`` and the unspecified ``other``). ``working_days`` counts working days
of the official holiday table (:mod:`exchange.clock`); a calendar deadline that falls on
a day off moves to the next working day (so "by 10 October" stays 10 October 2026 — a
调休 Saturday that is a working day — while 10 January 2026, a Saturday, moves to the 12th).

Every publish creates the next *obligation*: its deadline is the rule applied to the
publish day (for the quarterly rule: the first quarterly deadline after it). The first
publish after that day fulfils it — on time when it comes by the deadline. A missed
deadline is settled on the day it is judged (a period's last day, or today): *overdue*,
or *delinquent* once more than ``delinquent_after`` working days late; the next
obligation then runs from the missed deadline (a daily resource silent for a week missed
every day of it). A resource's state today — the HDX-style ladder — is ``fresh``,
``due`` (its deadline is within ``due_days``), ``overdue`` or ``delinquent``.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from exchange import clock
from jmgeo.errors import bilingual
from supervision.periods import Invalid

STATES = ("fresh", "due", "overdue", "delinquent")
STATE_ZH = {"fresh": "按期", "due": "临期", "overdue": "逾期", "delinquent": "严重逾期",
            "on_time": "按期更新"}
CYCLE_ZH = {"realtime": "实时", "daily": "每日", "weekly": "每周", "monthly": "每月",
            "quarterly": "每季度", "halfyearly": "每半年", "yearly": "每年", "other": "其他（按季度）"}


@dataclass(frozen=True)
class Rule:
    """One cycle's update rule (a row of ``update_rule``)."""

    cycle: str
    basis: str
    every_days: int | None = None
    every_months: int | None = None
    quarter_day: int | None = None
    working_days: bool = False
    due_days: int = 0
    delinquent_after: int = 10

    def quarter_deadline(self, year: int, first_month: int) -> date:
        """The deadline of the quarter whose first month is ``first_month``."""
        n = self.quarter_day or 10
        if self.working_days:  # the Nth working day of the month
            return clock.add_working_days(date(year, first_month, 1) - timedelta(days=1), n)
        return clock.next_working_day(date(year, first_month, n))

    def next_deadline(self, anchor: date) -> date:
        """When the update after ``anchor`` (a publish, or a missed deadline) is due."""
        if self.quarter_day is not None:
            y, m = anchor.year, 3 * ((anchor.month - 1) // 3) + 1
            while True:
                d = self.quarter_deadline(y, m)
                if d > anchor:
                    return d
                y, m = (y + 1, 1) if m == 10 else (y, m + 3)
        if self.every_days is not None:
            if self.working_days:
                return clock.add_working_days(anchor, self.every_days)
            return clock.next_working_day(anchor + timedelta(days=self.every_days))
        months = anchor.month - 1 + (self.every_months or 1)
        y, m = anchor.year + months // 12, months % 12 + 1
        day = min(anchor.day, calendar.monthrange(y, m)[1])
        return clock.next_working_day(date(y, m, day))

    def describe(self) -> str:
        """The rule in words (both languages), for the report and the CLI."""
        unit = ("个工作日", "working days") if self.working_days else ("日", "days")
        if self.quarter_day is not None:
            zh = f"每季度首月第{self.quarter_day}{'个工作日' if self.working_days else '日'}前"
            en = (f"by the {self.quarter_day}th {'working ' if self.working_days else ''}day "
                  "of each quarter's first month")
        elif self.every_days is not None:
            zh, en = (f"上次更新后{self.every_days}{unit[0]}内",
                      f"within {self.every_days} {unit[1]} of the last update")
        else:
            zh, en = (f"上次更新后{self.every_months}个月内",
                      f"within {self.every_months} month(s) of the last update")
        return f"{zh} / {en}"


def load_rules(conn) -> dict[str, Rule]:
    """Every cycle's rule, by cycle."""
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT cycle, basis, every_days, every_months, quarter_day, working_days, due_days, "
        "delinquent_after FROM update_rule").fetchall()
    return {r["cycle"]: Rule(**r) for r in rows}


@dataclass(frozen=True)
class Obligation:
    """One required update: due by ``deadline``, owed since ``anchor``."""

    deadline: date
    anchor: date
    updated_on: date | None  # the publish that fulfilled it (None: none by the judging day)
    outcome: str  # on_time | overdue | delinquent | pending (deadline is the judging day)
    late_days: int  # working days past the deadline (to the update, or to the judging day)


def _walk(publishes: list[date], rule: Rule, judge: date
          ) -> tuple[list[Obligation], date | None]:
    """The obligations up to ``judge`` and the deadline of the next one (None: none yet).

    Interval rules chain from each publish; the quarterly rule has fixed deadlines, each
    owed by a publish in ``(previous deadline, deadline]`` — from the first deadline on
    or after the resource's first publish."""
    pubs = sorted({p for p in publishes if p <= judge})
    if not pubs:
        return [], None
    out: list[Obligation] = []
    quarterly = rule.quarter_day is not None
    anchor = pubs[0] - timedelta(days=1) if quarterly else pubs[0]
    while True:
        d = rule.next_deadline(anchor)
        if d > judge:
            return out, d
        nxt = [p for p in pubs if p > anchor]
        p = nxt[0] if nxt else None
        if p is not None and p <= d:
            out.append(Obligation(d, anchor, p, "on_time", 0))
            anchor = d if quarterly else p
            continue
        if d == judge:  # the deadline is the judging day: nothing is missed yet
            out.append(Obligation(d, anchor, None, "pending", 0))
            return out, d
        late = clock.working_days_between(d, p or judge)
        out.append(Obligation(d, anchor, p, "delinquent" if late > rule.delinquent_after
                              else "overdue", late))
        anchor = d


def obligations(publishes: list[date], rule: Rule, judge: date) -> list[Obligation]:
    """Every obligation of one resource from its first publish to ``judge`` (the day the
    figures are taken): publishes after ``judge`` are not seen. A missed obligation is
    judged by how late the update came — or, still missing, how late it is on ``judge``."""
    return _walk(publishes, rule, judge)[0]


def state(publishes: list[date], rule: Rule, today: date) -> dict[str, Any]:
    """A resource's place on the ladder today: state, the deadline it is measured against,
    working days overdue, last update."""
    pubs = sorted(p for p in publishes if p <= today)
    if not pubs:
        return {"state": None, "deadline": None, "late_days": 0, "last_update": None}
    obs, nxt = _walk(pubs, rule, today)
    missed = [o for o in obs if o.outcome in ("overdue", "delinquent") and o.updated_on is None]
    if missed:
        first = missed[0]
        late = clock.working_days_between(first.deadline, today)
        return {"state": "delinquent" if late > rule.delinquent_after else "overdue",
                "deadline": first.deadline, "late_days": late, "last_update": pubs[-1]}
    return {"state": "due" if (nxt - today).days <= rule.due_days else "fresh",
            "deadline": nxt, "late_days": 0, "last_update": pubs[-1]}


RESOURCES_SQL = """
SELECT l.id, l.name, l.title, d.code AS dept, d.name AS dept_name,
       coalesce(e.update_cycle, l.update_cycle) AS cycle, e.code AS catalog_code,
       (SELECT array_agg(DISTINCT (t.at AT TIME ZONE 'Asia/Shanghai')::date ORDER BY
               (t.at AT TIME ZONE 'Asia/Shanghai')::date)
          FROM (SELECT v.loaded_at AS at FROM layer_version v WHERE v.layer_id = l.id
                UNION ALL SELECT s.at FROM layer_step s WHERE s.layer_id = l.id
                AND s.kind = 'publish') t WHERE t.at IS NOT NULL) AS publishes
FROM layer l JOIN department d ON d.id = l.owner_dept_id
LEFT JOIN catalog_entry e ON e.layer_name = l.name AND e.status <> 'retired'
WHERE l.current_version IS NOT NULL AND l.retired_at IS NULL  -- policy.IN_SERVICE_SQL
  AND (%(dept)s::text IS NULL OR d.code = %(dept)s)
ORDER BY d.code, l.name
"""


def resources(conn, dept: str | None = None) -> list[dict[str, Any]]:
    """Every published resource with its owner, declared cycle (the catalog entry's, else
    the registry's) and its publish days (China's calendar) — what freshness reads."""
    rows = conn.cursor(row_factory=dict_row).execute(RESOURCES_SQL, {"dept": dept}).fetchall()
    for r in rows:
        r["publishes"] = list(r["publishes"] or [])
    return rows


def freshness(conn, today: date, dept: str | None = None,
              rules: dict[str, Rule] | None = None) -> list[dict[str, Any]]:
    """Every resource's state today (optionally one department's), worst first."""
    rules = rules or load_rules(conn)
    out = []
    for r in resources(conn, dept):
        rule = rules[r["cycle"]]
        s = state(r["publishes"], rule, today)
        if s["state"] is None:
            continue
        out.append({"resource": r["name"], "title": r["title"], "dept": r["dept"],
                    "dept_name": r["dept_name"], "cycle": r["cycle"],
                    "rule": rule.describe(), **s, "layer_id": r["id"]})
    order = {s: i for i, s in enumerate(reversed(STATES))}
    out.sort(key=lambda x: (order[x["state"]], -x["late_days"], x["dept"], x["resource"]))
    return out


def overdue_by_department(conn, today: date, dept: str | None = None
                          ) -> dict[str, list[dict[str, Any]]]:
    """The overdue and delinquent resources of each department (its 逾期清单)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in freshness(conn, today, dept):
        if r["state"] in ("overdue", "delinquent"):
            out.setdefault(r["dept"], []).append(r)
    return out


def set_rule(conn, cycle: str, *, updated_by: str, **values: Any) -> Rule:
    """Change one cycle's rule (the bureau's decision; the caller checks who asks). Only
    the given columns change; the table's CHECKs refuse a rule of two kinds at once."""
    allowed = ("basis", "every_days", "every_months", "quarter_day", "working_days",
               "due_days", "delinquent_after")
    cols = {k: v for k, v in values.items() if k in allowed}
    if {"every_days", "every_months", "quarter_day"} & set(cols):
        for k in ("every_days", "every_months", "quarter_day"):
            cols.setdefault(k, None)
    sets = ", ".join(f"{k} = %s" for k in cols)
    try:
        row = conn.cursor(row_factory=dict_row).execute(
            f"UPDATE update_rule SET {sets}{', ' if sets else ''}updated_at = now(), "
            "updated_by = %s WHERE cycle = %s RETURNING cycle, basis, every_days, "
            "every_months, quarter_day, working_days, due_days, delinquent_after",
            (*cols.values(), updated_by, cycle)).fetchone()
    except psycopg.errors.CheckViolation as exc:
        raise Invalid(bilingual(
            "规则无效：间隔天数、月数、季度首月第几日三者取其一且为正数，季度日为 1–28",
            "invalid rule: give exactly one of every_days, every_months, quarter_day, "
            "positive (quarter_day 1–28), and non-negative due/delinquent days")) from exc
    if row is None:
        raise Invalid(bilingual(f"更新周期 {cycle!r} 无效", f"unknown update cycle {cycle!r}: "
                                f"one of {', '.join(CYCLE_ZH)}"))
    return Rule(**row)
