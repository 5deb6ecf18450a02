"""``jmgeo report supervision`` (the 通报) and ``jmgeo supervision …`` (freshness, rules,
ratings, corrections, reminders).

Commands that act as someone take the exchange's ``--as DEPT`` / ``--as-bureau`` /
``--as-auditor`` (:mod:`exchange.cli`); the report is the bureau's unless ``--dept``
asks for one department's own.
"""

from __future__ import annotations

import argparse
import getpass
import json

from exchange import clock
from exchange.cli import _caller, _conn, _date, _who
from jmgeo.errors import UserError
from layers.policy import Caller, may_file_reports


def _bureau() -> Caller:
    return Caller(kind="admin", dept_code="wxtc", name=f"cli:{getpass.getuser()}@wxtc")


def _dump(value) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def _report(args: argparse.Namespace) -> None:
    from supervision import reports

    with _conn() as conn:
        fig, pdf, xlsx = reports.build(conn, args.period, dept=args.dept)
        pdf_path, xlsx_path = reports.write_files(pdf, xlsx, args.out, fig["period"]["label"],
                                                  fig["scope"])
        filed = reports.file_report(conn, _bureau(), args.period) if args.file else None
    p = fig["period"]
    print(f"通报 {p['zh']}（{p['label']}，数据截至 {p['as_of']}）/ supervision report "
          f"{p['label']}: {pdf_path} ({len(pdf)} bytes), {xlsx_path} ({len(xlsx)} bytes)")
    for r in fig["ranking"]:
        print(f"  {r['rank']:>2}. {r['name']:<16} {r['score'] if r['score'] is not None else '-'}")
    if filed:
        print(f"filed as report {filed['id']} (GET /supervision/reports)")


def _freshness(args: argparse.Namespace) -> None:
    from supervision import freshness

    today = _date(args.date) or clock.today()
    with _conn() as conn:
        rows = freshness.freshness(conn, today, args.dept)
    if args.json:
        return _dump(rows)
    for r in rows:
        print(f"{freshness.STATE_ZH[r['state']]:<6} {r['dept']:<6} {r['resource']:<28} "
              f"{r['cycle']:<10} last {r['last_update']}  due {r['deadline']}"
              + (f"  {r['late_days']} working days late" if r["late_days"] else ""))
    print(f"{len(rows)} resource(s)")


def _rules(args: argparse.Namespace) -> None:
    from supervision import freshness

    with _conn() as conn:
        if args.cycle:
            caller = _caller(args)
            if not may_file_reports(caller):
                raise UserError("只有市网信统筹局可以修改更新规则 / only the bureau changes the "
                                "update rules (--as-bureau)")
            values = {k: getattr(args, k) for k in ("every_days", "every_months",
                                                     "quarter_day", "due_days",
                                                     "delinquent_after", "basis")
                      if getattr(args, k) is not None}
            if args.working is not None:
                values["working_days"] = args.working == "yes"
            freshness.set_rule(conn, args.cycle, updated_by=caller.name, **values)
        rules = freshness.load_rules(conn)
    for cycle, r in sorted(rules.items()):
        print(f"{cycle:<11} {r.describe()}  (due {r.due_days} d ahead, delinquent after "
              f"{r.delinquent_after} working days) — {r.basis}")


def _rate(args: argparse.Namespace) -> None:
    from supervision import feedback

    with _conn() as conn:
        _dump(feedback.rate_delivery(conn, _caller(args), args.delivery, score=args.score,
                                     comment=args.comment))


def _correct(args: argparse.Namespace) -> None:
    from supervision import feedback

    with _conn() as conn:
        _dump(feedback.raise_correction(conn, _caller(args), resource=args.resource,
                                        description=args.description, record_key=args.record,
                                        field=args.field, region=args.region))


def _answer(args: argparse.Namespace) -> None:
    from supervision import feedback

    if (args.fixed is None) == (args.not_error is None):
        raise UserError("请给出 --fixed VERSION 或 --not-error REASON 之一 / give one of "
                        "--fixed VERSION or --not-error REASON")
    with _conn() as conn:
        _dump(feedback.answer_correction(
            conn, _caller(args), args.id, outcome="fixed" if args.fixed is not None
            else "not_error", version=args.fixed, reason=args.not_error))


def _corrections(args: argparse.Namespace) -> None:
    from supervision import feedback

    with _conn() as conn:
        _dump(feedback.list_corrections(conn, _caller(args), args.status))


def _remind(args: argparse.Namespace) -> None:
    from supervision.reports import remind

    with _conn() as conn:
        sent = remind(conn, _date(args.date))
    for s in sent:
        print(f"{s['level']:<10} {s['resource']:<28} → {s['to']} (due {s['deadline']})")
    print(f"{len(sent)} reminder(s) sent")


def register_cli(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser("report", help="报告 / reports: the supervision report (通报)")
    rsub = rep.add_subparsers(dest="report_cmd", required=True)
    s = rsub.add_parser("supervision", help="通报 of a period as PDF + XLSX")
    s.add_argument("--period", required=True, help="2026Q4, 2026-11 or 2026")
    s.add_argument("--out", default=".", help="directory for the files (default: here)")
    s.add_argument("--dept", help="one department's own report (default: the whole city)")
    s.add_argument("--file", action="store_true",
                   help="also file it in the bureau's archive (/supervision/reports)")
    s.set_defaults(func=_report)

    p = sub.add_parser("supervision", help="监督考核 / supervision: freshness, rules, "
                                           "ratings (评议), corrections (纠错)")
    psub = p.add_subparsers(dest="supervision_cmd", required=True)
    f = psub.add_parser("freshness", help="each resource on the due/overdue/delinquent ladder")
    f.add_argument("--dept")
    f.add_argument("--date", help="judge on this day (default today)")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=_freshness)
    r = psub.add_parser("rules", help="list the update rules; with CYCLE and options: change one")
    r.add_argument("cycle", nargs="?")
    for opt in ("every-days", "every-months", "quarter-day", "due-days", "delinquent-after"):
        r.add_argument(f"--{opt}", type=int)
    r.add_argument("--working", choices=("yes", "no"), help="count working days")
    r.add_argument("--basis", help="the rule's basis (依据)")
    _who(r)
    r.set_defaults(func=_rules)
    a = psub.add_parser("rate", help="rate a delivery your department received (1–5)")
    a.add_argument("delivery", type=int)
    a.add_argument("--score", type=int, required=True)
    a.add_argument("--comment")
    _who(a)
    a.set_defaults(func=_rate)
    c = psub.add_parser("correct", help="raise a correction ticket (纠错) on a resource")
    c.add_argument("resource")
    c.add_argument("--description", required=True)
    c.add_argument("--record", help="the record's key")
    c.add_argument("--field")
    c.add_argument("--region", help="a region code, e.g. 440703")
    _who(c)
    c.set_defaults(func=_correct)
    n = psub.add_parser("answer", help="answer a correction ticket (the owner)")
    n.add_argument("id", type=int)
    n.add_argument("--fixed", type=int, metavar="VERSION")
    n.add_argument("--not-error", metavar="REASON")
    _who(n)
    n.set_defaults(func=_answer)
    ls = psub.add_parser("corrections", help="list correction tickets")
    ls.add_argument("--status", choices=("open", "fixed", "not_error"))
    _who(ls)
    ls.set_defaults(func=_corrections)
    m = psub.add_parser("remind", help="send the freshness reminders due today")
    m.add_argument("--date")
    m.set_defaults(func=_remind)
