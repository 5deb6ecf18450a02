"""The bundled Jiangmen demo: framework regions plus department layers."""

from __future__ import annotations

import argparse


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="演示数据 / load the bundled Jiangmen demo data")
    dsub = p.add_subparsers(dest="demo_cmd", required=True)
    load = dsub.add_parser("load", help="load regions and demo layers (idempotent)")
    load.set_defaults(func=lambda a: None)
