"""The audit log (审计日志): every access to non-open data, append-only, keyed hash chain.

Each row's ``hash`` is ``HMAC-SHA256(key[key_id], prev_hash + canonical JSON of the
row)`` where the row is every column but ``hash`` (``id``, ``at`` in UTC ISO 8601 with
microseconds, caller, dept_code, layer, grant_id, purpose, action, request, rows,
prev_hash, key_id), JSON with sorted keys, no spaces, UTF-8. The keys live outside the
database (:mod:`layers.audit_keys`), so a database administrator who switches the
append-only trigger off can edit, delete or append rows but cannot make them verify.
Rows written before the chain was keyed (``key_id`` NULL) keep their plain
``sha256(prev_hash + canonical JSON without key_id)``; an unkeyed row *after* a keyed
one is a forgery.

Editing a row breaks its own hash; deleting a row breaks the next row's ``prev_hash``
(or leaves a first row whose ``prev_hash`` is not empty). Deleting the last rows, or all
of them, leaves a shorter valid chain: the signed checkpoints of the head kept outside
the database (:mod:`layers.audit_checkpoint`, every few minutes and at ``jmgeo audit
checkpoint``) catch that — :func:`verify` checks the chain against every checkpoint.

Writers are serialised with a transaction-scoped advisory lock so the chain is linear.
The app's database role may only SELECT and INSERT ``audit_log`` (migration 0024); a
trigger also refuses UPDATE, DELETE and TRUNCATE (migration 0002).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from layers import audit_keys

_LOCK_KEY = 0x6A6D_6175_6469_74  # "jmaudit"
HASHED = ("id", "at", "caller", "dept_code", "layer", "grant_id", "purpose", "action",
          "request", "rows", "prev_hash")
COLUMNS = ("id, at, caller, dept_code, layer, grant_id, purpose, action, request, rows, "
           "prev_hash, key_id, hash")


def _q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


def _at(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(row: dict[str, Any]) -> str:
    """The bytes hashed: ``key_id`` is part of them for keyed rows (no swapping keys)."""
    data = {k: row.get(k) for k in HASHED}
    if row.get("key_id") is not None:
        data["key_id"] = row["key_id"]
    data["at"] = _at(data["at"]) if isinstance(data["at"], datetime) else data["at"]
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)


def row_hash(prev_hash: str | None, row: dict[str, Any],
             ring: audit_keys.Keyring | None = None) -> str:
    """The row's hash: keyed with ``row["key_id"]`` (KeyError when the ring lacks it),
    plain sha256 for a row written before the chain was keyed."""
    message = (prev_hash or "") + canonical(row)
    if row.get("key_id") is None:
        return hashlib.sha256(message.encode("utf-8")).hexdigest()
    return (ring or audit_keys.load()).mac(row["key_id"], message)


def entry(*, action: str, caller=None, layer: str | None = None, access=None,
          request: dict[str, Any] | None = None, rows: int | None = None) -> dict[str, Any]:
    """The columns of one row to append, before its id, time and chain are known."""
    return {
        "caller": getattr(caller, "name", None) if caller is not None else None,
        "dept_code": getattr(caller, "dept_code", None) if caller is not None else None,
        "layer": layer or getattr(access, "layer", None),
        "grant_id": getattr(access, "grant_id", None),
        "purpose": getattr(access, "purpose", None),
        "action": action,
        # round-tripped through JSON so what we hash is what jsonb gives back
        "request": json.loads(json.dumps(request, default=str)) if request is not None
        else None,
        "rows": rows,
    }


def append(conn, entries: list[dict[str, Any]]) -> list[int]:
    """Append rows (:func:`entry`) to the chain in the caller's transaction (or their
    own), in order; returns their ids. One lock, one read of the head and one round
    trip for the ids however many rows: the lock is what every writer of the platform
    waits for, so it is held for as little as possible."""
    ring = audit_keys.load()
    # in the caller's transaction as it is (a savepoint would only let a caller go on
    # without its audit row, and costs every audited request two round trips)
    own = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction() if own else contextlib.nullcontext():
        _q(conn, "SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        # ids and head once the lock is held: ids taken before it could be overtaken by
        # another writer's, and the chain must run in id order
        head = _q(conn,
            "SELECT (SELECT array_agg(nextval(pg_get_serial_sequence('audit_log', 'id'))) "
            "FROM generate_series(1, %s)) AS ids, (SELECT hash FROM audit_log ORDER BY id "
            "DESC LIMIT 1) AS last", (len(entries),)).fetchone()
        prev = head["last"]
        rows, now = [], datetime.now(UTC)
        for new_id, e in zip(sorted(head["ids"]), entries, strict=True):
            row = {"id": int(new_id), "at": now, **e, "prev_hash": prev,
                   "key_id": ring.current}
            prev = row_hash(prev, row, ring)
            rows.append((row["id"], row["at"], row["caller"], row["dept_code"], row["layer"],
                         row["grant_id"], row["purpose"], row["action"],
                         Jsonb(row["request"]) if row["request"] is not None else None,
                         row["rows"], row["prev_hash"], row["key_id"], prev))
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO audit_log ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, "
                            "%s, %s, %s, %s, %s, %s, %s, %s)", rows)
    return [r[0] for r in rows]


def record(conn, *, action: str, caller=None, layer: str | None = None, access=None,
           request: dict[str, Any] | None = None, rows: int | None = None) -> int:
    """Append one row (in its own transaction, or the caller's); returns its id.

    ``caller`` is a ``layers.policy.Caller``; ``access`` the ``Access`` that allowed the
    data (its grant and purpose are recorded).
    """
    return append(conn, [entry(action=action, caller=caller, layer=layer, access=access,
                               request=request, rows=rows)])[0]


def _broken(row_id: int | None, reason: str, checked: int, zh: str, en: str,
            **extra: Any) -> dict[str, Any]:
    return {"id": row_id, "reason": reason, "checked": checked, "message": f"{zh} / {en}",
            **extra}


def _row_fault(r: dict[str, Any], prev: str | None, first: bool, keyed_seen: bool,
               ring: audit_keys.Keyring | None, checked: int) -> dict[str, Any] | None:
    """What is wrong with one row given the one before it (None: nothing)."""
    rid = r["id"]
    if first and r["prev_hash"] is not None:
        return _broken(rid, "first", checked,
                       f"审计链第一行（第 {rid} 行）之前的记录被删除",
                       f"the rows before row {rid}, the chain's first, were removed "
                       "(its prev_hash is not empty)")
    if not first and r["prev_hash"] != prev:
        return _broken(rid, "prev_hash", checked,
                       f"审计链在第 {rid} 行断开：前一行被删除或改动",
                       f"chain broken at row {rid}: the row before it was removed or altered")
    if r["key_id"] is None and keyed_seen:
        return _broken(rid, "unkeyed", checked,
                       f"审计记录第 {rid} 行没有密钥签名，是伪造的",
                       f"row {rid} carries no key id after keyed rows: it was forged "
                       "(written around the platform)")
    if r["key_id"] is not None and (ring is None or r["key_id"] not in ring.keys):
        return _broken(rid, "key", checked,
                       f"审计记录第 {rid} 行的密钥 {r['key_id']} 不在密钥文件中",
                       f"row {rid} names key {r['key_id']}, which the key file does not "
                       "hold: the row was forged, or the key file was replaced")
    if row_hash(r["prev_hash"], r, ring) != r["hash"]:
        return _broken(rid, "hash", checked,
                       f"审计记录第 {rid} 行内容被改动",
                       f"row {rid} was altered (its hash does not match its content)")
    return None


def _checkpoint_fault(cp: dict[str, Any], r: dict[str, Any] | None, count: int,
                      last: dict[str, Any] | None, later: bool = False
                      ) -> dict[str, Any] | None:
    """Compare checkpoint ``cp`` with the row of its id (``r``, None when missing) and
    the number of rows up to it; ``last`` is the last row seen, ``later`` whether rows
    after the missing one exist (removed, not truncated)."""
    tag = f"#{cp['seq']} ({cp['at']})"
    if r is None and later:
        return _broken(cp["row_id"], "checkpoint_missing", count,
                       f"检查点 {tag} 记录的第 {cp['row_id']} 行已被删除",
                       f"row {cp['row_id']}, the head at checkpoint {tag}, was removed",
                       checkpoint=cp["seq"])
    if r is None:
        return _broken(cp["row_id"], "truncated", count,
                       f"审计日志被截断：检查点 {tag} 记录到第 {cp['row_id']} 行（共 "
                       f"{cp['count']} 行），现在只到第 {last['id'] if last else 0} 行（共 "
                       f"{count} 行）",
                       f"the audit log was truncated: checkpoint {tag} recorded row "
                       f"{cp['row_id']} ({cp['count']} rows), the table now ends at row "
                       f"{last['id'] if last else 0} ({count} rows)", checkpoint=cp["seq"])
    if r["hash"] != cp["hash"]:
        return _broken(r["id"], "checkpoint_hash", count,
                       f"第 {r['id']} 行与检查点 {tag} 记录的哈希不同：之前的记录被改写",
                       f"row {r['id']} differs from checkpoint {tag}: the chain up to it "
                       "was rewritten", checkpoint=cp["seq"])
    if count != cp["count"]:
        return _broken(r["id"], "checkpoint_count", count,
                       f"检查点 {tag} 时到第 {r['id']} 行共 {cp['count']} 行，现在 {count} 行",
                       f"checkpoint {tag} counted {cp['count']} rows up to row {r['id']}, "
                       f"there are now {count}", checkpoint=cp["seq"])
    return None


def verify(conn, batch: int = 5000, checkpoints: Iterable[dict[str, Any]] = (),
           ring: audit_keys.Keyring | None = None) -> dict[str, Any] | None:
    """Walk the chain in id order; return the first fault, or None when intact.

    The answer says which row (``id``) and why (``reason``): ``hash`` (edited),
    ``prev_hash`` (a row before it removed or rewritten), ``first`` (the first rows
    removed), ``unkeyed`` / ``key`` (a row not made with a key of the key file: forged),
    or, against the ``checkpoints`` (``seq``, ``at``, ``row_id``, ``hash``, ``count``;
    :mod:`layers.audit_checkpoint`), ``checkpoint_missing`` / ``checkpoint_hash`` /
    ``checkpoint_count`` / ``truncated`` (with the checkpoint's ``seq``).
    """
    if ring is None and audit_keys.exists():
        ring = audit_keys.load(create=False)
    # a checkpoint of the empty log (no row id) says nothing rows could contradict
    pending = sorted((c for c in checkpoints if c.get("row_id") is not None),
                     key=lambda c: c["row_id"])
    prev: str | None = None
    last: dict[str, Any] | None = None
    keyed_seen = False
    last_id = 0
    checked = 0
    while True:
        rows = _q(conn, f"SELECT {COLUMNS} FROM audit_log WHERE id > %s ORDER BY id "
                        "LIMIT %s", (last_id, batch)).fetchall()
        for r in rows:
            if pending and pending[0]["row_id"] < r["id"]:
                return _checkpoint_fault(pending[0], None, checked, last, later=True)
            checked += 1
            fault = _row_fault(r, prev, last is None, keyed_seen, ring, checked)
            if fault:
                return fault
            while pending and pending[0]["row_id"] == r["id"]:
                fault = _checkpoint_fault(pending.pop(0), r, checked, last)
                if fault:
                    return fault
            keyed_seen = keyed_seen or r["key_id"] is not None
            prev, last, last_id = r["hash"], r, r["id"]
        if len(rows) < batch:
            break
    if pending:
        return _checkpoint_fault(pending[0], None, checked, last)
    return None


def head(conn) -> dict[str, Any] | None:
    """The last row's id and hash (keep a copy elsewhere to detect truncation)."""
    return _q(conn, "SELECT id, hash, at, key_id FROM audit_log ORDER BY id DESC LIMIT 1"
              ).fetchone()


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
                  method: str = "GET", records=None) -> int:
    """Audit one access to non-open data from any way out (OGC items, tiles, downloads,
    region queries …): borrows a pooled connection. Raises when the row cannot be
    written — callers must then withhold the data (no unaudited access). ``records``
    (``layers.record_log.Records``): which records went out, entered in the record-level
    log in the same transaction when the resource keeps one (``Access.record_log``)."""
    from jmgeo.db import connection

    request = {"method": method, "path": path, "query": query, "status": status}
    if getattr(access, "request_id", None) is not None:
        request["share_request"] = access.request_id  # as X-Road's Issue header
    from jmgeo.settings import get_settings

    if not getattr(access, "record_log", False):  # the policy's row says: most keep none
        records = None
    if get_settings().audit_group_commit:  # with the other requests' rows (audit_batch)
        from layers.audit_batch import WRITER

        return WRITER.submit(entry(action=action, caller=caller, access=access,
                                   request=request, rows=rows),
                             caller=caller, access=access, records=records)
    with connection() as conn, conn.transaction():
        aid = record(conn, action=action, caller=caller, access=access, request=request,
                     rows=rows)
        if records is not None:
            from layers import record_log

            record_log.write(conn, caller, access, records, action, aid)
        return aid


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
    records = None
    if action in ("items", "item") and int(status) == 200:
        from layers import record_log

        records = record_log.Records(layer=access.layer, ids=record_log.page_ids(content))
    return record_access(caller, access, f"ogc.{action}", request.url.path, request.url.query,
                         rows=_rows_from(action, int(status), content), status=int(status),
                         method=request.method, records=records)


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
