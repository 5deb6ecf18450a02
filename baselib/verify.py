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
(``baselib_access``, ``layers.record_log``) with every other way out: who looked at this
record, when, which way, under which share request and grant, the audit row. Only the library's owner (the bureau) and the auditor
read it (``layers.policy.may_read_access_log``). No audit row, no answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from baselib.errors import BaselibError, NotAllowed
from baselib.golden import NORMALISED
from baselib.libraries import OWNER, library
from layers import audit, identifiers, policy, record_log
from layers.policy import Caller

MAX_PAIRS = 1000  # one request of pairs
MAX_LIST = 100_000  # one uploaded list (batch 核验)
KEY_HEADERS = ("key", "身份证号", "公民身份号码", "统一社会信用代码", "信用代码")
NAME_HEADERS = ("name", "姓名", "名称")
RESULTS = ("match", "no_match", "unknown")


def _q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


def verify(conn, caller: Caller, lib_name: str, pairs: Sequence[dict[str, Any]], *,
           path: str = "", method: str = "POST", limit: int = MAX_PAIRS
           ) -> list[dict[str, Any]] | None:
    """The answer per pair, in order: ``[{"row": i, "result": …}]``; None when the
    library does not exist for the caller (answer as for any absent resource). ``limit``:
    :data:`MAX_PAIRS` for a request of pairs, :data:`MAX_LIST` for an uploaded list —
    one statement, one audit row either way."""
    lib = library(lib_name)
    row, access = policy.lookup(conn, caller, lib.name)
    if row is None or access is None or not policy.may_verify(caller, row):
        return None
    if not pairs:
        raise BaselibError("核验列表为空", "no pairs to verify", "send [{key, name}, …]")
    if len(pairs) > limit:
        raise BaselibError(f"一次最多核验 {limit} 条", f"at most {limit} pairs per request",
                           "split the list", status=413)
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
    ).format(k=sql.Identifier(lib.key), a=sql.SQL(NORMALISED.format("t.name")),
             b=sql.SQL(NORMALISED.format("u.name")), t=t)
    with conn.transaction():
        found = _q(conn, q, (keys, names)).fetchall()
        counts = {r: sum(1 for f in found if f["result"] == r) for r in RESULTS}
        audit_id = audit.record(
            conn, action="baselib.verify", caller=caller, access=access,
            request={"method": method, "path": path, "pairs": len(pairs), **counts,
                     "share_request": access.request_id}, rows=len(pairs))
        record_log.write_keys(conn, caller, access, lib.name,
                              [(f["key"], f["result"]) for f in found if f["key"] is not None],
                              "verify", audit_id)
    return [{"row": int(f["i"]), "result": f["result"]} for f in found]


def read_pairs(data: bytes, file_name: str) -> list[dict[str, str]]:
    """An uploaded list (CSV with a header row: ``key,name`` — or 身份证号 / 统一社会信用代码
    and 姓名 / 名称; UTF-8 or GBK) as pairs, or a :class:`BaselibError` naming the file, the
    row or the column and the fix."""
    import csv
    import io

    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # gb18030 decodes nearly anything: kept for completeness
        raise BaselibError(f"{file_name}：无法识别编码", f"{file_name}: not UTF-8 or GBK text",
                           "save the list as CSV UTF-8")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    key_col = next((header.index(h) for h in KEY_HEADERS if h in header), None)
    name_col = next((header.index(h) for h in NAME_HEADERS if h in header), None)
    if key_col is None or name_col is None:
        raise BaselibError(
            f"{file_name}：首行应有列 key 与 name（或 身份证号/统一社会信用代码 与 姓名/名称）",
            f"{file_name}: the header row needs the columns key and name (or 身份证号 / "
            f"统一社会信用代码 and 姓名 / 名称); it has {', '.join(header) or 'none'}",
            "put a header row key,name above the list")
    pairs = []
    for n, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(key_col, name_col):
            raise BaselibError(f"{file_name} 第 {n} 行缺少列", f"{file_name} line {n}: "
                               f"{len(row)} columns, the header has {len(header)}",
                               "give every line its key and name")
        pairs.append({"key": row[key_col].strip(), "name": row[name_col].strip()})
        if len(pairs) > MAX_LIST:
            raise BaselibError(f"{file_name}：一次最多核验 {MAX_LIST} 条",
                               f"{file_name}: at most {MAX_LIST} rows per list",
                               "split the list", status=413)
    if not pairs:
        raise BaselibError(f"{file_name}：没有要核验的行", f"{file_name}: no rows to verify",
                           "add lines key,name below the header")
    return pairs


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
