"""``jmgeo request …`` — share requests from the shell.

Every command acts as someone: ``--as DEPT`` (a department, by its code: it files,
withdraws and appeals its own requests, answers those for its resources), ``--as-bureau``
(市网信统筹局: sees all, answers for an owner — recorded as such — sets the rule) or
``--as-auditor`` (reads everything, changes nothing). ``check`` acts as the platform.
Dates are ISO (2026-12-31). Errors print one bilingual line and exit 2.
"""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import date
from typing import Any

from jmgeo.errors import UserError
from layers.policy import Caller

BUREAU = "wxtc"
WHO = ("act as: --as DEPT (a department code, e.g. hb), --as-bureau (市网信统筹局 wxtc), "
       "or --as-auditor")


def _conn():
    import psycopg

    from jmgeo.settings import database_url

    return psycopg.connect(database_url(), autocommit=True)


def _caller(args: argparse.Namespace) -> Caller:
    user = getpass.getuser()
    if getattr(args, "as_bureau", False):
        return Caller(kind="admin", dept_code=BUREAU, name=f"cli:{user}@{BUREAU}")
    if getattr(args, "as_auditor", False):
        return Caller(kind="auditor", name=f"cli:{user}@auditor")
    if getattr(args, "as_dept", None):
        return Caller(kind="department", dept_code=args.as_dept,
                      name=f"cli:{user}@{args.as_dept}")
    raise UserError(f"请说明以谁的身份操作 / {WHO}")


def _who(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--as", dest="as_dept", metavar="DEPT", help="act as this department")
    g.add_argument("--as-bureau", action="store_true", help="act as the bureau (wxtc)")
    g.add_argument("--as-auditor", action="store_true", help="act as the auditor (read only)")


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise UserError(f"日期格式无效：{value!r} / not an ISO date: {value!r} (e.g. "
                        "2026-12-31)") from exc


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _show(r: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(r, ensure_ascii=False, indent=2, default=str))
        return
    flags = " 逾期/overdue" if r.get("overdue") else ""
    print(f"申请 {r['id']}  {r['status']}{flags}  {r['applicant']} → {r['resource']} "
          f"({r['owner']})  期限/deadline {r['deadline']} ({r['working_days']} 工作日, "
          f"{r['rule_basis']})  grant {r.get('grant_id') or '-'} {r.get('grant_status') or ''}")
    if r.get("calendar_warning"):
        print(f"  ! {r['calendar_warning']}")
    for e in r.get("events", []):
        on_behalf = f" for {e['for_dept']}" if e.get("for_dept") else ""
        print(f"  {e['at']:%Y-%m-%d %H:%M}  {e['action']:<17} {e['actor']}{on_behalf}  "
              f"{e['from_status'] or '-'} → {e['to_status']}  {e['reason'] or ''}")
    for d in r.get("diffs", []):
        print(f"  diff {d['action']}: +{','.join(d['fields_added']) or '-'} "
              f"-{','.join(d['fields_removed']) or '-'} valid_to {d['valid_to']['from']} → "
              f"{d['valid_to']['to']}")


def _run(args: argparse.Namespace, fn) -> None:
    from exchange import requests as ex

    with _conn() as conn:
        out = fn(ex, conn, _caller(args))
    _show(out, getattr(args, "json", False))


def _list(args: argparse.Namespace) -> None:
    from exchange import requests as ex

    with _conn() as conn:
        rows, total = ex.list_requests(conn, _caller(args), box=args.box, status=args.status,
                                       limit=args.limit)
    if args.json:
        print(json.dumps({"total": total, "requests": rows}, ensure_ascii=False, indent=2,
                         default=str))
        return
    for r in rows:
        _show(r, False)
    print(f"{total} 条 / {total} request(s)")


def _check(args: argparse.Namespace) -> None:
    from exchange.deadlines import check_deadlines

    with _conn() as conn:
        done = check_deadlines(conn, _date(args.today))
    for d in done:
        print(f"申请 {d['id']}: {d['action']}")
    print(f"已检查期限 / deadlines checked: {len(done)} action(s)")


def _inbox(args: argparse.Namespace) -> None:
    from exchange import notify

    with _conn() as conn:
        caller = _caller(args)
        if args.read is not None:
            notify.mark_read(conn, caller, args.read)
            print(f"通知 {args.read} 已读 / notification {args.read} marked read")
            return
        rows = notify.notifications(conn, caller, unread_only=args.unread)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    for n in rows:
        mark = " " if n["read_at"] else "*"
        print(f"{mark} {n['id']:>5}  {n['created_at']:%Y-%m-%d %H:%M}  {n['kind']:<12} "
              f"申请 {n['request_id'] or '-'}  {n['message']}")


def _rule(args: argparse.Namespace) -> None:
    from exchange import rules

    with _conn() as conn:
        if args.rule_cmd == "set":
            r = rules.set_rule(conn, _caller(args), working_days=args.working_days,
                               basis=args.basis, code=args.code)
            print(f"规则 {r['code']} 已生效：{r['working_days']} 个工作日（{r['basis']}），适用于此后"
                  f"提交的申请 / rule {r['code']} applies to requests filed from now on")
        elif args.rule_cmd == "retire":
            rules.deactivate_rule(conn, _caller(args), args.code)
            print(f"规则 {args.code} 已停用 / rule {args.code} retired")
        else:
            for r in rules.list_rules(conn):
                mark = "*" if r["applies"] else " "
                print(f"{mark} {r['code']:<20} {r['working_days']:>3} 工作日  "
                      f"{'active' if r['active'] else 'retired':<8} → {r['escalate_to'] or BUREAU}"
                      f"  {r['basis']}")


def _supervise(args: argparse.Namespace) -> None:
    from exchange.rules import supervision

    with _conn() as conn:
        s = supervision(conn, _caller(args))
    if args.json:
        print(json.dumps(s, ensure_ascii=False, indent=2, default=str))
        return
    print("按状态 / by status: " + ", ".join(f"{k} {v}" for k, v in sorted(s["by_status"].items())))
    print(f"逾期 / overdue: {s['overdue_total']} (still open {s['overdue_open']})")
    print(f"命令行授权（无审批记录）/ grants made by `jmgeo grant add` (no approval on record): "
          f"{len(s['cli_grants'])}")
    for g in s["cli_grants"]:
        print(f"  grant {g['id']}  {g['dept']} → {g['layer']}  {g['purpose']}  by {g['approved_by']}")


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("request", help="共享申请 / share requests (file, answer, supervise)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rs = p.add_subparsers(dest="request_cmd", required=True)

    def cmd(name: str, help_: str, fn, *, who: bool = True, as_json: bool = True):
        c = rs.add_parser(name, help=help_, description=f"{help_}. {WHO}." if who else help_)
        if who:
            _who(c)
        if as_json:
            c.add_argument("--json", action="store_true")
        c.set_defaults(func=fn)
        return c

    f = cmd("file", "file a share request for a resource", lambda a: _run(a, lambda ex, c, w:
            ex.file_request(c, w, resource=a.resource, purpose=a.purpose, basis=a.basis,
                            fields=_csv(a.fields), regions=_csv(a.regions),
                            period_from=_date(a.period_from), period_to=_date(a.period_to),
                            mode=a.mode, contact=a.contact)))
    f.add_argument("resource")
    f.add_argument("--purpose", required=True, help="用途 (required)")
    f.add_argument("--basis", help="履职依据: the duty that needs the data")
    f.add_argument("--fields", help="comma-separated (default: all)")
    f.add_argument("--regions", help="comma-separated region codes (default: the whole city)")
    f.add_argument("--from", dest="period_from", help="needed from (date)")
    f.add_argument("--to", dest="period_to", help="needed until (date, inclusive)")
    f.add_argument("--mode", default="download", help="system | fep | query | download")
    f.add_argument("--contact")

    ls = cmd("list", "list requests (outbox: filed; inbox: for your resources)", _list)
    ls.add_argument("--box", default="all", help="outbox | inbox | all")
    ls.add_argument("--status")
    ls.add_argument("--limit", type=int, default=50)

    s = cmd("show", "one request with its history and answer diffs",
            lambda a: _run(a, lambda ex, c, w: ex.get_request(c, w, a.id)))
    s.add_argument("id", type=int)

    an = cmd("answer", "approve, approve in part or refuse (the owner, or the bureau for it)",
             lambda a: _run(a, lambda ex, c, w: ex.answer(
                 c, w, a.id, decision=a.decision, reason=a.reason, fields=_csv(a.fields),
                 regions=_csv(a.regions), valid_from=_date(a.valid_from),
                 valid_to=_date(a.valid_to))))
    an.add_argument("id", type=int)
    an.add_argument("--decision", required=True, help="approve | approve_part | refuse")
    an.add_argument("--reason", help="required to refuse (the applicant reads it)")
    an.add_argument("--fields")
    an.add_argument("--regions")
    an.add_argument("--from", dest="valid_from")
    an.add_argument("--to", dest="valid_to", help="last valid day (inclusive)")

    am = cmd("amend", "a new answer on an approved request (new grant, old revoked)",
             lambda a: _run(a, lambda ex, c, w: ex.amend(
                 c, w, a.id, fields=_csv(a.fields), regions=_csv(a.regions),
                 valid_to=_date(a.valid_to), reason=a.reason)))
    am.add_argument("id", type=int)
    am.add_argument("--fields")
    am.add_argument("--regions")
    am.add_argument("--to", dest="valid_to")
    am.add_argument("--reason")

    rn = cmd("renew", "extend the grant of an approved or expired request",
             lambda a: _run(a, lambda ex, c, w: ex.renew(c, w, a.id, valid_to=_date(a.valid_to),
                                                         reason=a.reason)))
    rn.add_argument("id", type=int)
    rn.add_argument("--to", dest="valid_to", required=True)
    rn.add_argument("--reason")

    for name, help_, fn_name, needs in (
            ("revoke", "end the grant a request produced (data stops at once)", "revoke", True),
            ("withdraw", "the applicant withdraws its request", "withdraw", False),
            ("appeal", "the applicant appeals a refusal (提请市政府审定)", "appeal", True)):
        t = cmd(name, help_, lambda a, fn_name=fn_name: _run(a, lambda ex, conn, w: getattr(
            ex, fn_name)(conn, w, a.id, reason=a.reason)))
        t.add_argument("id", type=int)
        t.add_argument("--reason", required=needs)

    ck = cmd("check", "escalate overdue requests, expire lapsed ones (run daily)", _check,
             who=False, as_json=False)
    ck.add_argument("--today", help="check as of this date (default: today in China)")

    ib = cmd("inbox", "your department's notifications", _inbox)
    ib.add_argument("--unread", action="store_true")
    ib.add_argument("--read", type=int, metavar="ID", help="mark notification ID read")

    cmd("supervise", "the bureau's view: by state, overdue, grants without approval",
        _supervise)

    ru = rs.add_parser("rule", help="the answer rule (working days, basis)",
                       description="List, set (the bureau) or retire answer rules.")
    rsub = ru.add_subparsers(dest="rule_cmd", required=True)
    rsub.add_parser("list", help="every rule; * = the one new requests get"
                    ).set_defaults(func=_rule)
    rset = rsub.add_parser("set", help="a new active rule (--as-bureau)")
    _who(rset)
    rset.add_argument("--working-days", type=int, required=True)
    rset.add_argument("--basis", required=True, help="依据, e.g. 江府办〔2026〕1号")
    rset.add_argument("--code")
    rset.set_defaults(func=_rule)
    rret = rsub.add_parser("retire", help="retire a rule (--as-bureau)")
    _who(rret)
    rret.add_argument("code")
    rret.set_defaults(func=_rule)
