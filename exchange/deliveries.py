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


class QueryCounter:
    """Online queries counted in batches: hundreds of one-record deliveries a second
    would otherwise cost a row and a commit each (measured: a third of the query
    throughput). :meth:`add` sums per (resource, department, share request) in memory;
    the batch is written — one row per key, ``deliveries`` = how many — when it is
    ``max_age`` seconds old or holds ``max_keys`` keys, and at shutdown (:meth:`flush`).
    A crash loses at most that last second of counts (the audit log, written before
    each answer, still has every query)."""

    def __init__(self, max_age: float = 1.0, max_keys: int = 500) -> None:
        import threading
        import time

        self.max_age, self.max_keys = max_age, max_keys
        self._clock = time.monotonic
        self._lock = threading.Lock()
        self._batch: dict[tuple, list[int]] = {}
        self._since = self._clock()

    def add(self, *, layer: str, dept: str | None, rows: int, nbytes: int,
            request_id: int | None) -> dict | None:
        """Count one query; returns the batch to write when it is due (else None)."""
        with self._lock:
            if not self._batch:
                self._since = self._clock()
            n = self._batch.setdefault((layer, dept, request_id), [0, 0, 0])
            n[0] += 1
            n[1] += int(rows)
            n[2] += int(nbytes)
            if len(self._batch) < self.max_keys and self._clock() - self._since < self.max_age:
                return None
            batch, self._batch = self._batch, {}
            return batch

    def take(self) -> dict:
        with self._lock:
            batch, self._batch = self._batch, {}
            return batch

    @staticmethod
    def write(conn: psycopg.Connection, batch: dict) -> None:
        """One row per (resource, department, share request) of the batch."""
        if not batch:
            return
        try:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO exchange_delivery (layer_id, dept_id, mode, rows, bytes, "
                    "request_id, deliveries) SELECT l.id, (SELECT id FROM department WHERE "
                    "code = %s), 'query', %s, %s, %s, %s FROM layer l WHERE l.name = %s",
                    [(dept, rows, nbytes, request_id, count, layer)
                     for (layer, dept, request_id), (count, rows, nbytes) in batch.items()])
        except psycopg.Error as exc:  # the answers are delivered: failures are logged
            log.warning("query delivery count failed (%d keys): %s", len(batch), exc)


def summary(conn: psycopg.Connection, *, since: Any = None, until: Any = None
            ) -> list[dict[str, Any]]:
    """Deliveries per resource, department and mode in ``[since, until)`` (both optional):
    count, rows, bytes — what the supervision report tabulates."""
    rows = conn.execute(
        "SELECT l.name AS resource, d.code AS dept, e.mode, sum(e.deliveries)::bigint AS "
        "deliveries, "
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
