"""核验 — the verification service — and the person-level access log.

A department sends (key, name) pairs — an ID number and a person's name, a USCC and an
organisation's name — and gets back per row ``match``, ``no_match`` (the key is in the
library with another name) or ``unknown`` (an invalid key, or a key the library does not
hold), and nothing else: no value of the record, not even masked. The comparison runs in
PostgreSQL (names compared without case, width and white space), so the library's value
never reaches Python. Who may ask: whoever may read the library's data
(``layers.policy.may_verify``: every department, never an anonymous caller).

Every verification is audited (one ``audit_log`` row: the counts, never the keys), and
every record it touched is entered in the **person-level access log**
(``baselib_access``) with the online queries by key of the library
(``jmgeo.query_api``): who looked at this record, when, which way, under which share
request and grant, the audit row. Only the library's owner (the bureau) and the auditor
read it (``layers.policy.may_read_access_log``). No audit row, no answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from baselib.errors import BaselibError, NotAllowed
from baselib.libraries import LIBRARIES, OWNER, library
from layers import audit, identifiers, policy, record_log
from layers.policy import Access, Caller

MAX_PAIRS = 1000
RESULTS = ("match", "no_match", "unknown")
NORM = "regexp_replace(lower(normalize({}, NFKC)), '\\s', '', 'g')"


def _q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


def log_access(conn, caller: Caller, access: Access | None, lib_name: str,
               keys: Sequence[tuple[str, str | None]], way: str,
               audit_id: int | None = None) -> int:
    """Enter ``keys`` ((key, outcome) pairs) in the person-level access log
    (``layers.record_log``, with every other way out)."""
    return record_log.write_keys(conn, caller, access, lib_name, keys, way, audit_id)


def log_lookup(caller: Caller, access: Access, lib_name: str, key: str) -> None:
    """The online query's hook (``jmgeo.query_api``): one record looked at by key.
    Borrows a pooled connection; raises when it cannot write (the query then answers
    503 — no log, no data)."""
    from jmgeo.db import connection

    with connection() as conn, conn.transaction():
        log_access(conn, caller, access, lib_name, [(key, "found")], "query")


def is_library(name: str) -> bool:
    return name in LIBRARIES


def verify(conn, caller: Caller, lib_name: str, pairs: Sequence[dict[str, Any]], *,
           path: str = "", method: str = "POST") -> list[dict[str, Any]] | None:
    """The answer per pair, in order: ``[{"row": i, "result": …}]``; None when the
    library does not exist for the caller (answer as for any absent resource)."""
    lib = library(lib_name)
    row, access = policy.lookup(conn, caller, lib.name)
    if row is None or access is None or not policy.may_verify(caller, row):
        return None
    if not pairs:
        raise BaselibError("核验列表为空", "no pairs to verify", "send [{key, name}, …]")
    if len(pairs) > MAX_PAIRS:
        raise BaselibError(f"一次最多核验 {MAX_PAIRS} 条", f"at most {MAX_PAIRS} pairs per "
                           "request", "split the list", status=413)
    keys, names = [], []
    for i, p in enumerate(pairs):
        if not isinstance(p, dict) or not isinstance(p.get("key"), str) or \
                not isinstance(p.get("name"), str):
            raise BaselibError(f"第 {i + 1} 条格式错误", f"pair {i + 1}: need key and name "
                               "(strings)", '[{"key": "…", "name": "…"}]')
        v = identifiers.check(lib.key_kind, p["key"])
        keys.append(v.value if v.ok else None)
        names.append(p["name"])
    t = sql.Identifier(*row["table_name"].split("."))
    q = sql.SQL(
        "SELECT u.i, t.{k} AS key, CASE WHEN t.{k} IS NULL THEN 'unknown' WHEN {a} = {b} "
        "THEN 'match' ELSE 'no_match' END AS result FROM unnest(%s::text[], %s::text[]) "
        "WITH ORDINALITY u(key, name, i) LEFT JOIN {t} t ON t.{k} = u.key ORDER BY u.i"
    ).format(k=sql.Identifier(lib.key), a=sql.SQL(NORM.format("t.name")),
             b=sql.SQL(NORM.format("u.name")), t=t)
    with conn.transaction():
        found = _q(conn, q, (keys, names)).fetchall()
        counts = {r: sum(1 for f in found if f["result"] == r) for r in RESULTS}
        audit_id = audit.record(
            conn, action="baselib.verify", caller=caller, access=access,
            request={"method": method, "path": path, "pairs": len(pairs), **counts,
                     "share_request": access.request_id}, rows=len(pairs))
        log_access(conn, caller, access, lib.name,
                   [(f["key"], f["result"]) for f in found if f["key"] is not None],
                   "verify", audit_id)
    return [{"row": int(f["i"]), "result": f["result"]} for f in found]


def access_log(conn, caller: Caller, lib_name: str, key: str,
               limit: int = 200) -> list[dict[str, Any]]:
    """Who looked at this record, when, which way, under which request (newest first)."""
    lib = library(lib_name)
    if not policy.may_read_access_log(caller, OWNER):
        raise NotAllowed("个人访问记录仅供基础库管理部门和审计员",
                         "the person-level access log is for the bureau and the auditor")
    v = identifiers.check(lib.key_kind, key)
    return _q(conn, "SELECT at, caller, dept_code, way, outcome, share_request, grant_id, "
                    "audit_id, version FROM baselib_access WHERE library = %s AND key = %s ORDER BY "
                    "at DESC, id DESC LIMIT %s", (lib.name, v.value or key, limit)).fetchall()
