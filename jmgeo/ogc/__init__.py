"""pygeoapi integration: per-audience configuration, the policy-aware provider, routes."""

from __future__ import annotations

import argparse


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ogc", help="OGC API 发布配置 / the published pygeoapi configuration")
    osub = p.add_subparsers(dest="ogc_cmd", required=True)
    c = osub.add_parser("config", help="print the pygeoapi configuration generated from the "
                        "registry for one audience (reproducible)")
    c.add_argument("--dept", help="department code (default: the anonymous public)")
    c.set_defaults(func=_print_config)


def _print_config(args: argparse.Namespace) -> None:
    import yaml

    from jmgeo.db import connection
    from jmgeo.ogc import config
    from jmgeo.settings import get_settings
    from layers.policy import ANONYMOUS, Caller

    caller = Caller("department", args.dept, args.dept) if args.dept else ANONYMOUS
    with connection() as conn:
        resources, _ = config.audience_resources(conn, caller)
    cfg = config.build_config(resources, get_settings().base_url)
    print(yaml.safe_dump(config.printable(cfg), allow_unicode=True, sort_keys=False), end="")
