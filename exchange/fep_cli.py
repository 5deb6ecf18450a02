"""``jmgeo fep …`` — the front-end processor (前置机) from the shell.

``harvest`` answers every settled drop now (what the worker's ``exchange.harvest_inbox``
does each minute) and prints the receipts; ``receipts`` lists them (``--dept`` one
department's); ``folders`` makes the drop folder ``<root>/<owner>/<resource>/`` of every
published resource. The operator on the server acts as the platform (all receipts).
``copy add|list`` and ``sync`` are the outbound copies (``exchange.fep_outbound_cli``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from exchange.fep_inbound import STATUSES


def _conn():
    import psycopg

    from jmgeo.settings import database_url

    return psycopg.connect(database_url(), autocommit=True)


def _line(r: dict[str, Any]) -> str:
    mark = "✓" if r["status"] == "accepted" else "✗"
    where = "/".join(p for p in (r.get("dept"), r.get("resource"), r.get("file") or
                                 r.get("file_name")) if p)
    return f"{mark} {r.get('receipt') or r.get('id')}  {r['status']:<8}  {where}  {r['message']}"


def _harvest(args: argparse.Namespace) -> int:
    from exchange.fep_inbound import harvest

    out = harvest(root=args.root, settle=args.settle)
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    else:
        if out["busy"]:
            print("另一次收取正在进行 / another harvest is running: it takes these files")
        for r in out["receipts"]:
            print(_line(r))
        for e in out["errors"]:
            print(f"! {e['file']}: {e['error']} (留待下次 / left for the next run)")
        print(f"回执 {len(out['receipts'])} 份 / {len(out['receipts'])} receipt(s)")
    return 1 if out["errors"] else 0


def _receipts(args: argparse.Namespace) -> None:
    from exchange.fep_inbound import list_receipts
    from layers.policy import system

    with _conn() as conn:
        rows = list_receipts(conn, system("fep-cli"), dept=args.dept, resource=args.resource,
                             status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    for r in rows:
        print(f"{r['at']:%Y-%m-%d %H:%M:%S}  {_line(r)}")
    print(f"{len(rows)} 份回执 / receipt(s)")


def _folders(args: argparse.Namespace) -> None:
    from exchange.fep_inbound import ensure_folders

    with _conn() as conn:
        for p in ensure_folders(conn, args.root):
            print(p)


def register_cli(sub: argparse._SubParsersAction) -> None:
    from exchange.fep_outbound_cli import add_commands

    p = sub.add_parser("fep", help="前置机 / front-end processors: drop folders and receipts "
                       "(inbound), department copies (outbound)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fs = p.add_subparsers(dest="fep_cmd", required=True)
    h = fs.add_parser("harvest", help="load every settled drop now and print the receipts")
    h.add_argument("--root", type=Path, help="drop folders' root (default: JMGEO_FEP_INBOX)")
    h.add_argument("--settle", type=float, metavar="SECONDS",
                   help="only files unchanged this long (default: JMGEO_FEP_SETTLE_SECONDS)")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=_harvest)
    r = fs.add_parser("receipts", help="receipts (回执), newest first")
    r.add_argument("--dept", help="one department's (its code)")
    r.add_argument("--resource")
    r.add_argument("--status", choices=STATUSES)
    r.add_argument("--limit", type=int, default=50)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_receipts)
    f = fs.add_parser("folders", help="make the drop folder of every published resource")
    f.add_argument("--root", type=Path, help="drop folders' root (default: JMGEO_FEP_INBOX)")
    f.set_defaults(func=_folders)
    add_commands(fs)  # outbound: fep copy add|list, fep sync
