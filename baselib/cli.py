"""``jmgeo baselib …`` — the base libraries from the command line.

Configuration (the bureau's): ``authority set|list``, ``source add|list``, ``rule set``;
work: ``integrate``, ``tickets``, ``answer``, ``report``, ``remind``, ``review list|suggest|decide``;
service: ``verify LIB FILE.csv`` (batch 核验 of an uploaded list: columns key,name),
``access LIB KEY`` (who looked at it), ``history LIB KEY``, ``regions``; ``demo``.
Commands that act for someone take ``--as DEPT`` / ``--as-bureau`` / ``--as-auditor``
(``exchange.cli``'s spelling); configuration and integration are the bureau's.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from baselib.libraries import LIBRARIES
from exchange.cli import _caller, _conn, _who
from jmgeo.errors import UserError


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _mapping(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        attr, sep, col = item.partition("=")
        if not sep or not attr or not col:
            raise UserError(f"映射格式应为 属性=列：{item!r} / a mapping is attribute=column, "
                            f"not {item!r} (e.g. --map name=xm)")
        out[attr.strip()] = col.strip()
    return out


def _bureau(args: argparse.Namespace):
    caller = _caller(args) if (args.as_dept or args.as_bureau or args.as_auditor) else None
    if caller is not None and not caller.can_manage:
        raise UserError("基础库配置由市网信统筹局维护 / configuring the base libraries is the "
                        "bureau's: --as-bureau")


def _run(args: argparse.Namespace) -> int:  # noqa: C901 - one dispatcher, flat
    from baselib import integrate, libraries, review, spatial_link, tickets, verify

    cmd = args.bl_cmd
    with _conn() as conn:
        if cmd == "authority":
            if args.action == "set":
                _bureau(args)
                _print(libraries.set_authority(conn, args.library, args.attribute, args.dept,
                                               args.basis, args.cycle, by="cli"))
            else:
                _print(libraries.authorities(conn, args.library))
        elif cmd == "source":
            if args.action == "add":
                _bureau(args)
                _print(libraries.add_source(conn, args.library, args.resource, args.key,
                                            _mapping(args.map)))
            else:
                _print(libraries.sources(conn, args.library))
        elif cmd == "integrate":
            _bureau(args)
            report = integrate.integrate(conn, args.library, by="cli",
                                           tell=integrate.tell_stderr)
            if args.suggest:
                report["review"] = review.suggest_all(conn, args.library)
            _print(report)
        elif cmd == "tickets":
            _print(tickets.list_tickets(conn, _caller(args), library=args.library,
                                        status=args.status, limit=args.limit))
        elif cmd == "answer":
            _print(tickets.answer(conn, _caller(args), args.ticket, args.verdict,
                                  version=args.version, note=args.note))
        elif cmd == "report":
            _print(tickets.report(conn, _caller(args)))
        elif cmd == "remind":
            _bureau(args)
            from baselib.notices import notify_overdue

            _print(notify_overdue(conn))
        elif cmd == "rule":
            _print(tickets.set_rule(conn, _caller(args), args.working_days, args.basis,
                                    args.code))
        elif cmd == "review":
            if args.action == "suggest":
                _print(review.suggest_all(conn, args.library, auto_apply=not args.no_apply))
            elif args.action == "decide":
                _print(review.decide(conn, _caller(args), args.item, key=args.key,
                                     reject=args.reject))
            else:
                _print(review.queue(conn, _caller(args), args.library, args.status))
        elif cmd == "verify":
            with open(args.file, "rb") as f:
                pairs = verify.read_pairs(f.read(), args.file)
            results = verify.verify(conn, _caller(args), args.library, pairs,
                                    path=f"cli:{args.file}", method="CLI",
                                    limit=verify.MAX_LIST)
            if results is None:
                raise UserError("基础库不存在或无权使用 / no such base library for you")
            w = csv.writer(sys.stdout)
            w.writerow(["row", "result"])
            for r in results:
                w.writerow([r["row"], r["result"]])
        elif cmd == "access":
            _print(verify.access_log(conn, _caller(args), args.library, args.key))
        elif cmd == "history":
            _bureau(args)
            _print(integrate.value_history(conn, args.library, args.key))
        elif cmd == "regions":
            table = review._table(conn, args.library)
            if table is None:
                raise UserError(f"基础库 {args.library} 尚未整合 / {args.library} is not "
                                "integrated yet: jmgeo baselib integrate " + args.library)
            _print(spatial_link.per_region(conn, table, args.level))
        elif cmd == "demo":
            from baselib.demo import load_demo_baselib
            from jmgeo.settings import database_url

            load_demo_baselib(database_url(), persons=args.persons,
                              legal_persons=args.legal_persons)
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baselib", help="基础库 / base libraries (persons, legal persons)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bs = p.add_subparsers(dest="bl_cmd", required=True)
    libs = list(LIBRARIES)

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        c = bs.add_parser(name, help=help_)
        _who(c)
        c.set_defaults(func=_run)
        return c

    a = cmd("authority", "权威部门 / the attribute-authority registry")
    a.add_argument("action", choices=["list", "set"])
    a.add_argument("library", choices=libs)
    a.add_argument("attribute", nargs="?")
    a.add_argument("--dept")
    a.add_argument("--basis")
    a.add_argument("--cycle", default="other")
    s = cmd("source", "来源 / source tables and their column mapping")
    s.add_argument("action", choices=["list", "add"])
    s.add_argument("library", choices=libs)
    s.add_argument("resource", nargs="?")
    s.add_argument("--key", help="the source's key column (ID number / USCC)")
    s.add_argument("--map", action="append", default=[], metavar="ATTR=COLUMN")
    i = cmd("integrate", "整合 / integrate the sources into the next version")
    i.add_argument("library", choices=libs)
    i.add_argument("--suggest", action="store_true", help="then suggest review matches")
    t = cmd("tickets", "校核工单 / list verification tickets")
    t.add_argument("--library", choices=libs)
    t.add_argument("--status", choices=["open", "confirmed", "corrected", "closed"])
    t.add_argument("--limit", type=int, default=100)
    an = cmd("answer", "答复工单 / answer a ticket (the authority)")
    an.add_argument("ticket", type=int)
    an.add_argument("verdict", choices=["confirmed", "corrected"])
    an.add_argument("--version", type=int)
    an.add_argument("--note")
    cmd("report", "校核通报 / open, overdue, answer times per authority")
    cmd("remind", "逾期提醒 / tell authorities of overdue tickets (the daily job's work)")
    r = cmd("rule", "校核时限规则 / a new ticket rule (--as-bureau)")
    r.add_argument("--working-days", type=int, required=True)
    r.add_argument("--basis", required=True)
    r.add_argument("--code", required=True)
    rv = cmd("review", "复核队列 / the review queue")
    rv.add_argument("action", choices=["list", "suggest", "decide"])
    rv.add_argument("library", choices=libs, nargs="?", default="persons")
    rv.add_argument("--item", type=int)
    rv.add_argument("--key")
    rv.add_argument("--reject", action="store_true")
    rv.add_argument("--status", default="pending", choices=["pending", "applied", "rejected"])
    rv.add_argument("--no-apply", action="store_true", help="suggest only")
    v = cmd("verify", "核验 / batch verification of a CSV (key,name)")
    v.add_argument("library", choices=libs)
    v.add_argument("file")
    ac = cmd("access", "个人访问记录 / who looked at this record")
    ac.add_argument("library", choices=libs)
    ac.add_argument("key")
    h = cmd("history", "取值历史 / every value of a record with provenance")
    h.add_argument("library", choices=libs)
    h.add_argument("key")
    rg = cmd("regions", "按镇街统计 / records per town or county (address located)")
    rg.add_argument("--library", choices=libs, default="legal_persons")
    rg.add_argument("--level", choices=["town", "county"], default="town")
    d = cmd("demo", "演示数据 / fake sources, authorities, both libraries, themes")
    d.add_argument("--persons", type=int, default=2000)
    d.add_argument("--legal-persons", type=int, default=600)
