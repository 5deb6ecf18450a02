"""The bundled Jiangmen demo: framework regions, departments, department layers, demo keys.

``jmgeo demo load`` is idempotent: a second ``make run`` finds everything in place and
changes nothing (regions are upserted, departments inserted if absent, demo layers only
get a new version when their generated content changed).
"""

from __future__ import annotations

import argparse
import time

import psycopg

from jmgeo.settings import database_url


def load_demo(dsn: str | None = None, log=print) -> None:
    from catalog.demo import load_demo_catalog
    from exchange.demo import load_demo_requests
    from exchange.demo_modes import load_demo_modes
    from layers.departments import ensure_departments
    from layers.identity import ensure_demo_identities
    from loaders.demo import load_demo_layers
    from spatial.regions import load_framework
    from supervision.demo import load_demo_supervision

    dsn = dsn or database_url()
    t0 = time.monotonic()
    load_framework(dsn, log=log)
    with psycopg.connect(dsn) as conn, conn.transaction():
        n = ensure_departments(conn)
    log(f"departments: {n} demo departments present")
    load_demo_layers(dsn, log=log)
    with psycopg.connect(dsn) as conn, conn.transaction():
        keys = ensure_demo_identities(conn)
    log(f"demo keys (demo only, try the access matrix by hand): {keys.get('file')}")
    load_demo_catalog(dsn, log=log)
    load_demo_requests(dsn, log=log)
    load_demo_modes(dsn, log=log)
    from baselib.demo import load_demo_baselib

    load_demo_baselib(dsn, log=log)
    load_demo_supervision(dsn, log=log)  # last: its report counts everything above
    log(f"demo ready in {time.monotonic() - t0:.1f} s")


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="演示数据 / the bundled Jiangmen demo data",
                       description="Load the Jiangmen framework and the demo department layers.")
    dsub = p.add_subparsers(dest="demo_cmd", required=True)
    load = dsub.add_parser("load", help="load regions, departments, demo layers (idempotent)")
    load.set_defaults(func=lambda a: load_demo())
