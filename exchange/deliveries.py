"""The delivery count (交付计数): every delivery in every exchange mode, one row each.

Supervision (issue 14) asks "how much of what went to whom, and how": each way out —
a feed pull or push (``system``), a front-end-processor copy sync (``fep``), an online
query (``query``), a batch download or export job (``download``) — calls :func:`record`
after the data has left, with the rows and bytes it delivered and the share request its
grant came from. The audit log (``layers.audit``) says *who may have seen what* and is
written *before* data leaves; this count says *what was delivered* and is written after.
A failed count never undoes a delivery: it is logged, not raised.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime
from typing import Any

import psycopg

from jmgeo.errors import UserError, bilingual

MODES = ("system", "fep", "query", "download")
log = logging.getLogger(__name__)


def record(conn: psycopg.Connection, *, layer: str, dept: str | None, mode: str, rows: int,
           nbytes: int, request_id: int | None = None, detail: str | None = None) -> None:
    """Count one delivery of ``layer`` to department ``dept`` (None: anonymous / public)."""
    if mode not in MODES:
        raise ValueError(f"unknown exchange mode {mode!r}")
    try:
        conn.execute(
            "INSERT INTO exchange_delivery (layer_id, dept_id, mode, rows, bytes, request_id, "
            "detail) SELECT l.id, (SELECT id FROM department WHERE code = %s), %s, %s, %s, %s, "
            "%s FROM layer l WHERE l.name = %s",
            (dept, mode, int(rows), int(nbytes), request_id, detail, layer))
    except psycopg.Error as exc:  # the data is already delivered: count failures are logged
        log.warning("delivery count failed for %s/%s: %s", layer, mode, exc)


def summary(conn: psycopg.Connection, *, since: Any = None, until: Any = None
            ) -> list[dict[str, Any]]:
    """Deliveries per resource, department and mode in ``[since, until)`` (both optional):
    count, rows, bytes — what the supervision report tabulates."""
    rows = conn.execute(
        "SELECT l.name AS resource, d.code AS dept, e.mode, count(*) AS deliveries, "
        "sum(e.rows)::bigint AS rows, sum(e.bytes)::bigint AS bytes FROM exchange_delivery e "
        "JOIN layer l ON l.id = e.layer_id LEFT JOIN department d ON d.id = e.dept_id "
        "WHERE (%(s)s::timestamptz IS NULL OR e.at >= %(s)s) AND "
        "(%(u)s::timestamptz IS NULL OR e.at < %(u)s) "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", {"s": since, "u": until})
    names = [c.name for c in rows.description]
    return [dict(r) if isinstance(r, dict) else dict(zip(names, r, strict=True))
            for r in rows.fetchall()]  # a pooled connection has dict rows already


# -- the CLI: `jmgeo deliveries` -----------------------------------------------------------

def _when(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise UserError(bilingual(f"--{name} 应为 ISO 日期或时间，如 2026-01-31 或 "
                                  f"2026-01-31T08:00+08:00：{text!r}",
                                  f"--{name} must be an ISO date or time, e.g. 2026-01-31 "
                                  f"or 2026-01-31T08:00+08:00: {text!r}")) from exc


def _show(args: argparse.Namespace) -> None:
    from jmgeo.settings import database_url

    with psycopg.connect(database_url(), autocommit=True) as conn:
        rows = summary(conn, since=_when(args.since, "since"), until=_when(args.until, "until"))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        print(f"{r['resource']:<32} {r['dept'] or '-':<8} {r['mode']:<9} "
              f"{r['deliveries']:>6} × {r['rows']:>10} rows {r['bytes']:>14} bytes")
    print(f"{len(rows)} line(s)")


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deliveries", help="交付计数 / deliveries per resource, department, "
                                          "mode (supervision)")
    p.add_argument("--since", help="from (ISO date or time, inclusive)")
    p.add_argument("--until", help="until (ISO date or time, exclusive)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_show)
