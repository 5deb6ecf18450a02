"""The record-level access log (逐条访问记录): who looked at this record, when, which way,
under which share request and grant, and which audit row.

The audit log says who asked a way out for which resource; for a resource that holds
people (the base libraries) that does not answer "who looked at *this* person". A
resource marked ``layer.record_access_log`` (migration 0026; the base libraries are
published so) gets one row per record handed out (``baselib_access``), written in the
audit row's transaction — no log row, no data, as for the audit itself:

* an OGC items page or item: the records of the page (their ids as the caller got them:
  the key when it sees the key in clear, else ``fid`` — ``access_sql.item_id_field``);
* a download, a full feed, a full 前置机 copy: every record of the version;
* an incremental feed, a push, an incremental copy: the keys of the change set;
* an online query by key and a verification (``baselib.verify``): the keys asked.

Set-based: a million-record download is one ``INSERT … SELECT`` from the version's table,
no key passes through Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.rows import tuple_row

from layers.access_sql import item_id_field

COLUMNS = ("library, key, caller, dept_code, way, outcome, share_request, grant_id, "
           "audit_id, version")


@dataclass(frozen=True)
class Records:
    """Which records of one resource version went out: ``ids`` (of the caller's item id
    column), every record (``whole``), or the keys changed after step ``after_step``."""

    layer: str
    version: int | None = None
    ids: tuple[str, ...] | None = None
    whole: bool = False
    after_step: int | None = None
    step: int | None = None


class PageUnreadable(RuntimeError):
    """An items answer of a record-logged resource whose records cannot be read (an HTML
    page): withheld, as any data whose log row cannot be written."""


def _q(conn, query, params=None):
    """Tuple rows whatever the connection's row factory (pooled ones give dicts)."""
    return conn.cursor(row_factory=tuple_row).execute(query, params)


def for_plan(layer: str, plan: Any) -> Records | None:
    """What a pull of a change set (``layers.changes.Plan``: a feed, a 前置机 copy) hands
    out: nothing when empty; every record of the version when full; the keys changed after
    the plan's boundary step when incremental (a full comparison — rare — logs every
    record of the version: more than went out, never less)."""
    if plan.empty:
        return None
    if plan.old_table is None or plan.boundary is None:
        return Records(layer=layer, version=plan.to_version, whole=True)
    return Records(layer=layer, version=plan.to_version, after_step=plan.boundary)


def logged(conn, layer: str) -> dict[str, Any] | None:
    """The resource's key field, id and current table when it keeps a record-level log."""
    row = _q(conn,
        "SELECT l.id, l.key_field, l.current_version, v.table_name FROM layer l JOIN "
        "layer_version v ON v.layer_id = l.id AND v.version = l.current_version WHERE "
        "l.name = %s AND l.record_access_log AND l.key_field IS NOT NULL", (layer,)).fetchone()
    if row is None:
        return None
    return dict(zip(("id", "key_field", "version", "table_name"), row, strict=True))


def mark(conn, layer: str) -> None:
    """Keep a record-level log for this resource from now on (the base libraries)."""
    conn.execute("UPDATE layer SET record_access_log = true WHERE name = %s AND NOT "
                 "record_access_log", (layer,))


def _table(conn, layer_id: int, version: int | None, current: dict[str, Any]) -> str:
    if version is None or version == current["version"]:
        return current["table_name"]
    row = _q(conn, "SELECT table_name FROM layer_version WHERE layer_id = %s AND "
                   "version = %s", (layer_id, version)).fetchone()
    return row[0] if row else current["table_name"]


def write(conn, caller, access, records: Records, way: str, audit_id: int | None) -> int:
    """Enter the records that went out (see the module docstring); 0 for a resource
    without a record-level log. Runs in the caller's transaction."""
    res = logged(conn, records.layer)
    if res is None:
        return 0
    who = (records.layer, caller.name, caller.dept_code, way, "delivered",
           getattr(access, "request_id", None), getattr(access, "grant_id", None),
           audit_id)
    key = sql.Identifier(res["key_field"])
    table = sql.Identifier(*_table(conn, res["id"], records.version, res).split("."))
    head = sql.SQL(f"INSERT INTO baselib_access ({COLUMNS}) SELECT %s, k.key, %s, %s, %s, "
                   "%s, %s, %s, %s, %s FROM ")
    version = records.version or res["version"]
    if records.ids is not None:
        if not records.ids:
            return 0  # an empty page: nothing went out
        id_col = sql.Identifier(item_id_field(access, res["key_field"]))
        q = head + sql.SQL("(SELECT t.{k}::text AS key FROM {t} t WHERE t.{i}::text = "
                           "ANY(%s)) k").format(k=key, t=table, i=id_col)
        return conn.execute(q, (*who, version, list(records.ids))).rowcount
    if records.after_step is not None or records.step is not None:
        cond = "s.id > %s" if records.step is None else "s.id = %s"
        q = head + sql.SQL("(SELECT DISTINCT c.key FROM layer_change c JOIN layer_step s ON "
                           "s.id = c.step_id WHERE s.layer_id = %s AND " + cond + ") k")
        return conn.execute(q, (*who, version, res["id"], records.step if records.step
                                is not None else records.after_step)).rowcount
    if records.whole:
        q = head + sql.SQL("(SELECT t.{k}::text AS key FROM {t} t) k").format(k=key, t=table)
        return conn.execute(q, (*who, version)).rowcount
    raise PageUnreadable(f"{records.layer}: 逐条访问记录无法读取该页面的记录，请用 f=json / the "
                         "records of this answer cannot be logged one by one: ask f=json")


def write_keys(conn, caller, access, layer: str, keys: Sequence[tuple[str, str | None]],
               way: str, audit_id: int | None = None) -> int:
    """Enter keys asked one by one ((key, outcome) pairs: the online query, 核验)."""
    if not keys:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO baselib_access ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, NULL)",
            [(layer, k, caller.name, caller.dept_code, way, outcome,
              getattr(access, "request_id", None), getattr(access, "grant_id", None),
              audit_id) for k, outcome in keys])
    return len(keys)


def page_ids(content: Any) -> tuple[str, ...] | None:
    """The item ids of an OGC items page or item (GeoJSON text); None when the content is
    not GeoJSON (an HTML page)."""
    import json

    try:
        body = json.loads(content)
    except (TypeError, ValueError):
        return None
    if not isinstance(body, dict):
        return None
    feats = body.get("features") if body.get("type") == "FeatureCollection" else [body]
    return tuple(str(f["id"]) for f in feats or [] if isinstance(f, dict) and "id" in f)
