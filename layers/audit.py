"""The audit log (审计日志): every access to non-open data, append-only, hash-chained.

Each row's ``hash`` is ``sha256(prev_hash + canonical JSON of the row)`` where the row is
every column but ``hash`` (``id``, ``at`` in UTC ISO 8601 with microseconds, caller,
dept_code, layer, grant_id, purpose, action, request, rows, prev_hash), JSON with sorted
keys, no spaces, UTF-8. Editing any field of a row breaks its own hash; deleting a row
breaks the next row's ``prev_hash`` link; ``verify()`` reports the first broken link.
(Deleting the *last* rows leaves a shorter valid chain: compare ``head()`` with a copy
kept elsewhere — e.g. the daily report — to detect truncation at the end.)

Writers are serialised with a transaction-scoped advisory lock so the chain is linear.
The database refuses UPDATE, DELETE and TRUNCATE on ``audit_log`` (migration 0002);
the chain is the evidence that remains if someone with superuser rights bypasses that.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

_LOCK_KEY = 0x6A6D_6175_6469_74  # "jmaudit"
HASHED = ("id", "at", "caller", "dept_code", "layer", "grant_id", "purpose", "action",
          "request", "rows", "prev_hash")


def _q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


def _at(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(row: dict[str, Any]) -> str:
    data = {k: row.get(k) for k in HASHED}
    data["at"] = _at(data["at"]) if isinstance(data["at"], datetime) else data["at"]
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)


def row_hash(prev_hash: str | None, row: dict[str, Any]) -> str:
    return hashlib.sha256(((prev_hash or "") + canonical(row)).encode("utf-8")).hexdigest()


def record(conn, *, action: str, caller=None, layer: str | None = None, access=None,
           request: dict[str, Any] | None = None, rows: int | None = None) -> int:
    """Append one row (in its own transaction, or the caller's); returns its id.

    ``caller`` is a ``layers.policy.Caller``; ``access`` the ``Access`` that allowed the
    data (its grant and purpose are recorded).
    """
    with conn.transaction():
        _q(conn, "SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        last = _q(conn, "SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
        new_id = _q(conn, "SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) AS id"
                    ).fetchone()["id"]
        row = {
            "id": int(new_id),
            "at": datetime.now(UTC),
            "caller": getattr(caller, "name", None) if caller is not None else None,
            "dept_code": getattr(caller, "dept_code", None) if caller is not None else None,
            "layer": layer or getattr(access, "layer", None),
            "grant_id": getattr(access, "grant_id", None),
            "purpose": getattr(access, "purpose", None),
            "action": action,
            "request": request,
            "rows": rows,
            "prev_hash": last["hash"] if last else None,
        }
        # round-trip the request through JSON so what we hash is what jsonb gives back
        if row["request"] is not None:
            row["request"] = json.loads(json.dumps(row["request"], default=str))
        digest = row_hash(row["prev_hash"], row)
        _q(conn,
           "INSERT INTO audit_log (id, at, caller, dept_code, layer, grant_id, purpose, "
           "action, request, rows, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
           "%s, %s, %s, %s)",
           (row["id"], row["at"], row["caller"], row["dept_code"], row["layer"],
            row["grant_id"], row["purpose"], row["action"],
            Jsonb(row["request"]) if row["request"] is not None else None, row["rows"],
            row["prev_hash"], digest))
    return row["id"]


def verify(conn, batch: int = 5000) -> dict[str, Any] | None:
    """Walk the chain in id order; return the first broken link, or None when intact.

    The answer says which row (``id``) and why: ``hash`` (the row was edited) or
    ``prev_hash`` (a row before it was removed or edited with its hash recomputed).
    """
    prev: str | None = None
    first = True
    last_id = 0
    checked = 0
    while True:
        rows = _q(conn, "SELECT id, at, caller, dept_code, layer, grant_id, purpose, action, "
                        "request, rows, prev_hash, hash FROM audit_log WHERE id > %s "
                        "ORDER BY id LIMIT %s", (last_id, batch)).fetchall()
        if not rows:
            return None
        for r in rows:
            checked += 1
            if not first and r["prev_hash"] != prev:
                return {"id": r["id"], "reason": "prev_hash", "checked": checked,
                        "message": f"审计链在第 {r['id']} 行断开：前一行被删除或改动 / chain "
                                   f"broken at row {r['id']}: the row before it was removed "
                                   "or altered"}
            if row_hash(r["prev_hash"], r) != r["hash"]:
                return {"id": r["id"], "reason": "hash", "checked": checked,
                        "message": f"审计记录第 {r['id']} 行内容被改动 / row {r['id']} was "
                                   "altered (its hash does not match its content)"}
            prev = r["hash"]
            first = False
            last_id = r["id"]


def head(conn) -> dict[str, Any] | None:
    """The last row's id and hash (keep a copy elsewhere to detect truncation)."""
    return _q(conn, "SELECT id, hash, at FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()


def show(conn, dept: str | None = None, layer: str | None = None,
         since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Audit rows, newest first, filtered by department, layer and time."""
    query = ("SELECT id, at, caller, dept_code, layer, grant_id, purpose, action, request, "
             "rows FROM audit_log WHERE TRUE")
    params: list[Any] = []
    if dept:
        query += " AND dept_code = %s"
        params.append(dept)
    if layer:
        query += " AND layer = %s"
        params.append(layer)
    if since:
        query += " AND at >= %s"
        params.append(since)
    query += " ORDER BY id DESC LIMIT %s"
    params.append(limit)
    return _q(conn, query, params).fetchall()


def record_access(caller, access, action: str, path: str, query: str = "",
                  rows: int | None = None, status: int | None = None,
                  method: str = "GET") -> int:
    """Audit one access to non-open data from any way out (OGC items, tiles, downloads,
    region queries …): borrows a pooled connection. Raises when the row cannot be
    written — callers must then withhold the data (no unaudited access)."""
    from jmgeo.db import connection

    request = {"method": method, "path": path, "query": query, "status": status}
    if getattr(access, "request_id", None) is not None:
        request["share_request"] = access.request_id  # as X-Road's Issue header
    with connection() as conn:
        return record(conn, action=action, caller=caller, access=access, request=request,
                      rows=rows)


# What an OGC route hands out, as it states it when it calls ``jmgeo.ogc.router.execute``
# (``action=``): the audit records ``ogc.<action>``. Metadata routes state none.
OGC_DATA_ACTIONS = ("items", "item", "tiles", "coverage", "map")


def _rows_from(action: str, status: int, content) -> int | None:
    if status >= 400 or status == 304:  # an error or "not modified": no data left
        return 0
    if action == "item":
        return 1
    if action != "items":
        return None
    try:
        body = json.loads(content)
    except (TypeError, ValueError):
        return None  # HTML or another format: the request is recorded, the count unknown
    if isinstance(body, dict) and isinstance(body.get("numberReturned"), int):
        return body["numberReturned"]
    return None


def record_ogc(caller, accesses: dict, action: str | None, request, status: int,
               content) -> int | None:
    """Called by ``jmgeo.ogc.router.execute`` after every pygeoapi call with the action
    its route stated (``items``, ``item``, ``tiles``, ``coverage``, ``map``; None for
    metadata):
    records it when it handed out (or tried to hand out) data of an audited layer;
    returns the audit id."""
    if action is None:
        return None
    if action not in OGC_DATA_ACTIONS:
        raise ValueError(f"unknown OGC audit action {action!r}")
    access = accesses.get(request.path_params.get("collection_id"))
    if access is None or not access.audited:
        return None
    return record_access(caller, access, f"ogc.{action}", request.url.path, request.url.query,
                         rows=_rows_from(action, int(status), content), status=int(status),
                         method=request.method)


def record_refusal(caller, row: dict[str, Any], way: str, path: str, query: str = "",
                   method: str = "GET") -> int | None:
    """Audit a *refused* data access (issue 10 §5): an authenticated caller asked a way
    out (``way``: ``ogc``, ``http``) for a resource whose catalog entry it may see but
    whose data the policy withholds (conditional without a live grant, not_shared).
    Returns the audit id, or None when there is nothing to record — anonymous callers
    and auditors (for data they are anonymous: the resource does not exist for them) and
    names that exist nowhere. ``row`` is the refused resource's registry row as the
    policy decided on it (``layers.policy.lookup``): nothing is looked up or decided
    again. The caller still answers the standard 404: this only writes the evidence.
    Borrows a pooled connection."""
    from jmgeo.db import connection

    if getattr(caller, "data_dept", None) is None:
        return None  # for data, anonymous callers and auditors are refused nothing listed
    with connection() as conn:
        return record(conn, action="refused", caller=caller, layer=row["name"],
                      request={"method": method, "path": path, "query": query,
                               "status": 404, "way": way,
                               "sharing_class": row["sharing_class"]}, rows=0)
