"""``jmgeo catalog …`` — the bureau's catalog commands.

    jmgeo catalog template [-o 调查表_模板.xlsx]      blank survey sheet with dropdowns
    jmgeo catalog import SHEET.xlsx [--publish]      validate and load (all or nothing)
    jmgeo catalog export [-o DIR] [--all] [--dept]   汇总表, city catalog xlsx/CSV, DCAT
    jmgeo catalog samples [DIR]                      the sample and the broken sample
    jmgeo catalog sync [LAYER]                       register spatial layers
    jmgeo catalog list [-q 道路] [--dept] …          search the catalog
    jmgeo catalog review ID --approve | --return REASONS
    jmgeo catalog publish ID | retire ID | history ID
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from layers.policy import Caller


def _conn() -> psycopg.Connection:
    from jmgeo.settings import database_url

    return psycopg.connect(database_url(), autocommit=True, row_factory=dict_row)


def _bureau(args: argparse.Namespace) -> Caller:
    return Caller(kind="admin", name=getattr(args, "actor", None) or
                  f"cli:{getpass.getuser()}")


def _user_error(exc: Exception):
    from jmgeo.errors import UserError

    return UserError(str(exc))


def _template(args: argparse.Namespace) -> None:
    from catalog import excel

    print(excel.write_template(args.output))


def _import(args: argparse.Namespace) -> int:
    from catalog import excel, sync

    with _conn() as conn:
        sync.ensure_synced(conn)
        try:
            report = excel.import_survey(conn, args.sheet, _bureau(args),
                                         status="published" if args.publish else "submitted",
                                         dry_run=args.dry_run)
        except excel.SheetError as exc:
            print(exc.report.text(), file=sys.stderr)
            return 2
    print(report.text() if not args.dry_run else
          f"校验通过，共 {len(report.entries)} 条信息资源（未导入） / valid: "
          f"{len(report.entries)} entries (dry run, nothing imported)")
    for code, name, outcome in report.outcomes:
        print(f"  {code}  {name}  {outcome}")
    return 0


def _export(args: argparse.Namespace) -> None:
    from catalog import exports, sync
    from jmgeo.settings import get_settings

    with _conn() as conn:
        sync.ensure_synced(conn)
        paths = exports.export_all(conn, args.output, status="all" if args.all else
                                   "published", dept=args.dept,
                                   base_url=get_settings().base_url)
    for p in paths.values():
        print(p)


def _samples(args: argparse.Namespace) -> None:
    from catalog import samples

    samples.main([str(args.dir)])


def _sync(args: argparse.Namespace) -> None:
    from catalog import sync

    with _conn() as conn:
        results = [sync.sync_layer(conn, args.layer)] if args.layer else \
            sync.sync_all_layers(conn)
    for r in results:
        print(f"  {r['code'] or '-'}  {r['outcome']}")


def _list(args: argparse.Namespace) -> None:
    from catalog import store, sync, vocab

    with _conn() as conn:
        sync.ensure_synced(conn)
        rows, total = store.list_entries(
            conn, _bureau(args), q=args.q, limit=args.limit,
            filters={"dept": args.dept, "class_code": args.cls,
                     "sharing_type": args.sharing, "format": args.format,
                     "update_cycle": args.cycle, "status": args.status})
    print(f"共 {total} 条 / {total} entries")
    for r in rows:
        print(f"  {r['id']:>6}  {r['code']:<18} {r['name']}  [{r['provider_name']}·"
              f"{vocab.SHARING_TYPES.label(r['sharing_type'])}·"
              f"{vocab.STATUSES[r['status']]}]")


def _transition(action: str):
    def run(args: argparse.Namespace) -> None:
        from catalog import store

        act = action
        comment = getattr(args, "comment", None)
        if action == "review":
            act = "return" if args.return_reasons else "approve"
            comment = args.return_reasons or comment
        with _conn() as conn:
            try:
                e = store.transition(conn, args.id, act, _bureau(args), comment)
            except store.CatalogError as exc:
                raise _user_error(exc) from exc
        print(f"{e['code']}  {e['name']}  → {e['status']}"
              + (f" ({e['review_state']})" if e.get("review_state") else ""))
    return run


def _history(args: argparse.Namespace) -> None:
    from catalog import store

    with _conn() as conn:
        for h in store.history(conn, args.id):
            print(f"  {h['at']:%Y-%m-%d %H:%M:%S}  {h['actor']:<24} {h['action']:<8} "
                  f"{h['status_from'] or '-'} → {h['status_to'] or '-'}  {h['comment'] or ''}")


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help="政务信息资源目录 / the information resource catalog",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--as", dest="actor", help="who is acting (recorded in the history)")
    c = p.add_subparsers(dest="catalog_cmd", required=True)
    t = c.add_parser("template", help="blank survey sheet (调查表 附件1) with dropdowns")
    t.add_argument("-o", "--output", type=Path, default=Path("调查表_模板.xlsx"))
    t.set_defaults(func=_template)
    i = c.add_parser("import", help="validate and load a department's survey sheet")
    i.add_argument("sheet", type=Path)
    i.add_argument("--publish", action="store_true",
                   help="publish new entries at once (default: submitted for review)")
    i.add_argument("--dry-run", action="store_true", help="validate only")
    i.set_defaults(func=_import)
    e = c.add_parser("export", help="汇总表, the city catalog (xlsx, CSV), DCAT JSON-LD")
    e.add_argument("-o", "--output", type=Path, default=Path("catalog-export"))
    e.add_argument("--all", action="store_true", help="every entry but retired ones, "
                   "not only published")
    e.add_argument("--dept", help="one department's entries (department code)")
    e.set_defaults(func=_export)
    s = c.add_parser("samples", help="write the sample and the broken sample sheets")
    s.add_argument("dir", type=Path, nargs="?", default=Path("."))
    s.set_defaults(func=_samples)
    y = c.add_parser("sync", help="register spatial layers in the catalog")
    y.add_argument("layer", nargs="?")
    y.set_defaults(func=_sync)
    ls = c.add_parser("list", help="search and filter the catalog")
    ls.add_argument("-q", help="Chinese search text, e.g. 道路")
    ls.add_argument("--dept")
    ls.add_argument("--class", dest="cls", help="1, 2 or 3")
    ls.add_argument("--sharing", help="无条件共享 / 有条件共享 / 不予共享")
    ls.add_argument("--format")
    ls.add_argument("--cycle")
    ls.add_argument("--status")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=_list)
    r = c.add_parser("review", help="approve a submitted entry or return it with reasons")
    r.add_argument("id", type=int)
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--approve", action="store_true")
    g.add_argument("--return", dest="return_reasons", metavar="REASONS")
    r.set_defaults(func=_transition("review"))
    for name, helptext in (("publish", "publish an approved entry"),
                           ("retire", "retire an entry")):
        x = c.add_parser(name, help=helptext)
        x.add_argument("id", type=int)
        x.add_argument("--comment")
        x.set_defaults(func=_transition(name))
    h = c.add_parser("history", help="who changed an entry, and when")
    h.add_argument("id", type=int)
    h.set_defaults(func=_history)
