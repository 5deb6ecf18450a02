"""``jmgeo subscription add|list|show|remove|deliveries|retry`` — webhook subscriptions
(系统对接推送) from the shell, acting as ``--as DEPT``, ``--as-bureau`` or ``--as-auditor``
like ``jmgeo request``. Pushes run in ``jmgeo worker`` (``exchange.push``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from exchange.cli import _caller, _conn, _csv, _who


def _print(rows: Any, as_json: bool) -> None:
    print(json.dumps(rows, ensure_ascii=False, indent=2, default=str) if as_json else rows)


def _sub_line(s: dict[str, Any]) -> str:
    res = ",".join(s["resources"]) if s["resources"] else "(all visible)"
    state = "active" if s["active"] else "removed"
    dead = f"  dead={s['dead']}" if s.get("dead") else ""
    return (f"订阅 {s['id']}  {state}  {s['dept']} → {s['url']}  resources={res}  "
            f"changes={'yes' if s['with_changes'] else 'no'}  key={s['signing_key_id']}{dead}")


def _delivery_line(d: dict[str, Any]) -> str:
    return (f"{d['id']:>6}  {d['status']:<9}  {d['event']} {d['resource']} "
            f"v{d['from_version'] or '-'}→v{d['to_version']}  attempts={d['attempts']}  "
            f"last={d['last_status'] or '-'}  {d['last_error'] or ''}".rstrip())


def _run(args: argparse.Namespace) -> None:
    from exchange import subscriptions as subs

    caller = _caller(args)
    with _conn() as conn:
        if args.sub_cmd == "add":
            out = subs.register(conn, caller, url=args.url, resources=_csv(args.resources),
                                with_changes=args.with_changes)
            if args.json:
                return _print(out, True)
            print(_sub_line(out))
            print(f"secret={out['secret']}")
            print("密钥仅显示这一次，请妥善保存 / the secret is shown only this once: store it now")
        elif args.sub_cmd == "list":
            rows = subs.list_subscriptions(conn, caller)
            if args.json:
                return _print(rows, True)
            for s in rows:
                print(_sub_line(s))
            print(f"{len(rows)} subscription(s)")
        elif args.sub_cmd == "show":
            out = subs.get(conn, caller, args.id)
            _print(out, True) if args.json else print(_sub_line(out))
        elif args.sub_cmd == "remove":
            out = subs.remove(conn, caller, args.id)
            print(_sub_line(out))
        elif args.sub_cmd == "deliveries":
            rows = subs.deliveries(conn, caller, args.id, status=args.status, limit=args.limit)
            if args.json:
                return _print(rows, True)
            for d in rows:
                print(_delivery_line(d))
            print(f"{len(rows)} delivery(ies)")
        else:  # retry
            out = subs.requeue(conn, caller, args.id, args.delivery)
            print(f"投递 {args.delivery} 已重新排队 / delivery {args.delivery} queued again")


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("subscription", help="订阅推送 / webhook subscriptions (系统对接)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ss = p.add_subparsers(dest="sub_cmd", required=True)

    def cmd(name: str, help_: str, json_flag: bool = True) -> argparse.ArgumentParser:
        c = ss.add_parser(name, help=help_)
        _who(c)
        if json_flag:
            c.add_argument("--json", action="store_true")
        c.set_defaults(func=_run)
        return c

    a = cmd("add", "register a webhook for your department (prints the secret once)")
    a.add_argument("url", help="the receiver: http(s)://host[:port]/path")
    a.add_argument("--resources", help="comma-separated names (default: every resource "
                   "the department may see)")
    a.add_argument("--with-changes", action="store_true", help="push the change set too")
    cmd("list", "subscriptions (own; the bureau and the auditor: all)")
    for name, help_ in (("show", "one subscription"), ("remove", "stop a subscription")):
        c = cmd(name, help_, json_flag=name == "show")
        c.add_argument("id", type=int)
    d = cmd("deliveries", "a subscription's delivery log (--status dead: dead letters)")
    d.add_argument("id", type=int)
    d.add_argument("--status", choices=("pending", "delivered", "dead"))
    d.add_argument("--limit", type=int, default=50)
    r = cmd("retry", "requeue a dead letter", json_flag=False)
    r.add_argument("id", type=int, help="subscription id")
    r.add_argument("delivery", type=int, help="delivery id")
