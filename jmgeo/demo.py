"""The bundled Jiangmen demo: framework regions, departments, department layers, demo keys.

``jmgeo demo load`` is idempotent: a second ``make run`` finds everything in place and
changes nothing (regions are upserted, departments inserted if absent, demo layers only
get a new version when their generated content changed).
"""

from __future__ import annotations

import argparse
import importlib
import time

import psycopg

from jmgeo.settings import database_url


def _optional(module: str, name: str):
    """A demo step provided by another area, if that area is installed."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def load_demo(dsn: str | None = None, log=print) -> None:
    from layers.departments import ensure_departments
    from spatial.regions import load_framework

    dsn = dsn or database_url()
    t0 = time.monotonic()
    load_framework(dsn, log=log)
    with psycopg.connect(dsn) as conn, conn.transaction():
        n = ensure_departments(conn)
    log(f"departments: {n} demo departments present")
    load_layers = _optional("loaders.demo", "load_demo_layers")
    if load_layers is not None:
        load_layers(dsn, log=log)
    identities = _optional("layers.identity", "ensure_demo_identities")
    if identities is not None:
        with psycopg.connect(dsn) as conn, conn.transaction():
            identities(conn)
    log(f"demo ready in {time.monotonic() - t0:.1f} s")


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="演示数据 / the bundled Jiangmen demo data",
                       description="Load the Jiangmen framework and the demo department layers.")
    dsub = p.add_subparsers(dest="demo_cmd", required=True)
    load = dsub.add_parser("load", help="load regions, departments, demo layers (idempotent)")
    load.set_defaults(func=lambda a: load_demo())
