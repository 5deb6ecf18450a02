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

import logging
from typing import Any

import psycopg

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
    return [dict(zip(names, r, strict=True)) for r in rows.fetchall()]
