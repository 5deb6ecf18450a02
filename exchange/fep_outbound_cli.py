"""``jmgeo fep copy add|list`` and ``jmgeo fep sync`` — 前置机 outbound copies from the
shell, as the bureau (市网信统筹局). ``sync`` runs in this process, now (the worker's
``exchange.fep_sync_due`` does it on schedule); ``--queue`` hands it to a worker instead.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from jmgeo.errors import UserError, bilingual


def _conn():
    import psycopg

    from jmgeo.settings import database_url

    return psycopg.connect(database_url(), autocommit=True)


def _line(c: dict[str, Any]) -> str:
    held = c["synced_version"] if c["synced_version"] is not None else "-"
    return (f"副本 {c['id']:>3}  {c['status']:<8} {c['resource']} → {c['dept']}  grant "
            f"{c['grant_id']}  {c['target_url']} {c['target_schema']}.{c['target_table']}  "
            f"v{held}/{c['current_version']}  rows {c['row_count'] if c['row_count'] is not None else '-'}"
            f"  every {c['every_minutes']} min"
            + (f"\n      {c['detail']}" if c.get("detail") else "")
            + (f"\n      ! {c['last_error']}" if c.get("last_error") else ""))


def _add(args: argparse.Namespace) -> None:
    from exchange.fep_outbound import add_copy, cli_caller

    with _conn() as conn:
        c = add_copy(conn, cli_caller(), grant_id=args.grant, target_url=args.target_url,
                     schema=args.schema, table=args.table, every_minutes=args.every_minutes)
    print(_line(c))
    print(f"已登记副本 {c['id']}；首次同步：jmgeo fep sync --copy {c['id']}（或由作业进程按计划执行） / "
          f"copy {c['id']} registered; first sync: jmgeo fep sync --copy {c['id']} (or the "
          "worker, on schedule)")


def _list(args: argparse.Namespace) -> None:
    from exchange.fep_outbound import cli_caller, list_copies

    with _conn() as conn:
        rows = list_copies(conn, cli_caller())
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    for c in rows:
        print(_line(c))
    print(f"{len(rows)} 个副本 / {len(rows)} copy(ies)")


def _sync(args: argparse.Namespace) -> None:
    from exchange.fep_outbound import cli_caller, list_copies, sync_copy

    with _conn() as conn:
        ids = [c["id"] for c in list_copies(conn, cli_caller(), copy_id=args.copy)]
        if args.copy is not None and not ids:
            raise UserError(bilingual(f"副本 {args.copy} 不存在；见 `jmgeo fep copy list`",
                                      f"no copy {args.copy}: see `jmgeo fep copy list`"))
        if args.queue:
            from exchange.fep_outbound_tasks import defer_sync

            for copy_id in ids:
                job = defer_sync(copy_id, args.full)
                print(f"副本 {copy_id}: " + (f"作业 {job} 已排队 / job {job} queued" if job
                                             else "已有同步在排队 / a sync is already queued"))
            return
        failed = 0
        for copy_id in ids:
            try:
                info = sync_copy(conn, copy_id, full=args.full)
            except UserError as exc:
                failed += 1
                print(f"副本 {copy_id}: 失败 / failed: {exc}")
                continue
            print(f"副本 {copy_id}: {info['mode']} v{info.get('from_version', '-')}→"
                  f"v{info.get('to_version', '-')}  rows {info.get('rows', 0)}  "
                  f"bytes {info.get('bytes', 0)}  {info['status']}  "
                  f"(sync {info.get('sync_seconds', 0)} s, reconcile "
                  f"{info.get('reconcile_seconds', 0)} s)"
                  + (f"\n      {info['detail']}" if info.get("detail") else ""))
    if failed:
        raise UserError(bilingual(f"{failed} 个副本同步失败", f"{failed} copy sync(s) failed"))


def add_commands(fsub: argparse._SubParsersAction) -> None:
    """The outbound commands under ``jmgeo fep`` (shared with the inbound ones)."""
    cp = fsub.add_parser("copy", help="前置机副本 / outbound copies of a grant's view")
    csub = cp.add_subparsers(dest="fep_copy_cmd", required=True)
    a = csub.add_parser("add", help="register a copy of a live grant in a department database")
    a.add_argument("--grant", type=int, required=True, help="the grant id (jmgeo grant list)")
    a.add_argument("--target-url", required=True,
                   help="postgresql://user:password@host:port/dbname of the department side")
    a.add_argument("--schema", help="target schema (default jmgeo)")
    a.add_argument("--table", help="target table (default: the resource name)")
    a.add_argument("--every-minutes", type=int, default=60,
                   help="sync interval (also synced on every publish); default 60")
    a.set_defaults(func=_add)
    ls = csub.add_parser("list", help="every copy with its version and last reconciliation")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    s = fsub.add_parser("sync", help="sync copies now (all, or --copy ID)")
    s.add_argument("--copy", type=int, help="only this copy")
    s.add_argument("--full", action="store_true", help="rebuild in full")
    s.add_argument("--queue", action="store_true", help="queue it for a worker instead")
    s.set_defaults(func=_sync)
