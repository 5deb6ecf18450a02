"""Change sets by key between versions (变更集): what feeds pull, pushes carry, copies apply.

Every version of a resource is a whole table (``layers.registry``), so "what changed
since version V" is a comparison of two tables by the declared key. Comparing a
1,000,000-row table with another on every pull would cost as much as a full export, so the
comparison is made **once, when a version becomes current** (:func:`record_step`, in the
publish or rollback transaction): a ``layer_step`` row and the keys it inserted, updated or
deleted (``layer_change``). A pull since V then

1. unions the keys of every step after V last became current — a superset of the keys
   that differ between V and now (a key changed and changed back is in it too), and
2. compares, **for exactly those keys**, the caller's view of the row in V's table with
   the caller's view in the current table: visible fields, masked values, the grant's
   region scope — all from :class:`layers.access_sql.AccessSQL`, so a row moving out of a
   department's regions is a delete *for that department*, and a change to a field it
   may not see is no change at all.

The answer is exact for each caller and costs index probes for the changed keys only.
Where a step's change set is unknown (the key was declared later, or versions from before
change capture), the comparison runs over all keys of both tables — slower, still exact.
A version whose table has been pruned (``jmgeo layer prune``) cannot be compared:
:class:`HistoryGone` names the oldest version a pull may start from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from jmgeo.errors import UserError
from layers.access_sql import AccessSQL
from layers.registry import table_columns

OPS = {"i": "insert", "u": "update", "d": "delete"}


class HistoryGone(UserError):
    """The asked version is older than the retained history (HTTP 410)."""

    def __init__(self, layer: str, since: int, oldest: int | None) -> None:
        self.oldest = oldest
        super().__init__(
            f"资源 {layer} 的第 {since} 版已不在保留的历史中，最早可从第 {oldest} 版增量拉取；"
            f"请先全量拉取 / version {since} of {layer} is older than the retained history: "
            f"the oldest version an incremental pull may start from is {oldest}; pull in "
            "full first")


class BadVersion(UserError):
    """A ``since`` that is no version of the resource (HTTP 400)."""


def _q(conn: psycopg.Connection, query: Any, params: Any = None) -> psycopg.Cursor:
    """Execute with tuple rows, whatever row factory the connection has (the pool's is
    dict rows)."""
    return conn.cursor(row_factory=tuple_row).execute(query, params)


def _ident(table: str) -> sql.Composable:
    return sql.Identifier(*table.split(".", 1))


def _has_column(conn: psycopg.Connection, table: str, column: str) -> bool:
    return column in table_columns(conn, table)


def _row_hash(conn: psycopg.Connection, table: str, alias: str) -> sql.Composable:
    """``md5(ROW(every column but fid)::text)`` of one table's row: the geometry in its
    text form (hex EWKB — no GeoJSON conversion), the row id left out (a row's ``fid`` is
    its place in the file and shifts when a record is inserted before it)."""
    names = [c for c in table_columns(conn, table) if c != "fid"]
    if not names:
        return sql.SQL("''")
    return sql.SQL("md5(ROW({}, NULL)::text)").format(sql.SQL(", ").join(
        sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(n)) for n in names))


def _diff_sql(conn: psycopg.Connection, old: str, new: str, key: str) -> sql.Composed:
    """Every key whose whole row (all columns but ``fid``) differs between two tables,
    with its op against ``old``."""
    return sql.SQL(
        "SELECT coalesce(n.k, o.k) AS key, CASE WHEN o.k IS NULL THEN 'i' WHEN n.k IS NULL "
        "THEN 'd' ELSE 'u' END AS op FROM "
        "(SELECT x.{k}::text AS k, {nh} AS h FROM {n} x) n FULL JOIN "
        "(SELECT y.{k}::text AS k, {oh} AS h FROM {o} y) o "
        "ON n.k = o.k WHERE o.h IS DISTINCT FROM n.h"
    ).format(k=sql.Identifier(key), n=_ident(new), o=_ident(old),
             nh=_row_hash(conn, new, "x"), oh=_row_hash(conn, old, "y"))


def diff_counts(conn: psycopg.Connection, old: str, new: str, key: str) -> dict[str, int]:
    """Added, removed and changed records by key (a dry run's report: nothing stored)."""
    row = _q(conn, sql.SQL(
        "SELECT count(*) FILTER (WHERE op = 'i'), count(*) FILTER (WHERE op = 'd'), "
        "count(*) FILTER (WHERE op = 'u') FROM ({}) d").format(_diff_sql(conn, old, new, key))
    ).fetchone()
    return {"added": row[0], "removed": row[1], "changed": row[2]}


def record_step(conn: psycopg.Connection, *, layer_id: int, kind: str,
                from_version: int | None, from_table: str | None, to_version: int,
                to_table: str, key_field: str | None) -> dict[str, Any]:
    """Record that ``to_version`` became current (``kind`` publish or rollback) and, when
    both tables have the declared key, the keys that changed. Runs in the caller's
    transaction (the publish's), so the step exists exactly when the version is current."""
    known = bool(key_field and from_table and _has_column(conn, from_table, key_field)
                 and _has_column(conn, to_table, key_field))
    step = _q(conn,
        "INSERT INTO layer_step (layer_id, from_version, to_version, kind, key_field) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (layer_id, from_version, to_version, kind, key_field if known else None)).fetchone()[0]
    result: dict[str, Any] = {"step": step, "against_version": from_version}
    if not known:
        return result
    row = _q(conn, sql.SQL(
        "WITH ins AS (INSERT INTO layer_change (step_id, key, op) SELECT {s}, d.key, d.op "
        "FROM ({d}) d RETURNING op) SELECT count(*) FILTER (WHERE op = 'i'), "
        "count(*) FILTER (WHERE op = 'd'), count(*) FILTER (WHERE op = 'u') FROM ins").format(
            s=sql.Literal(step), d=_diff_sql(conn, from_table, to_table, key_field))).fetchone()
    _q(conn, "UPDATE layer_step SET added = %s, removed = %s, changed = %s WHERE id = %s",
                 (row[0], row[1], row[2], step))
    result.update(added=row[0], removed=row[1], changed=row[2])
    return result


# -- pulling a change set ---------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """How to answer one pull: the version range and where the candidate keys come from
    (``boundary``: steps after this id; ``None`` with ``full_compare``: all keys of both
    tables; ``old_table=None``: a full pull, every visible row an insert)."""

    from_version: int
    to_version: int
    old_table: str | None
    new_table: str
    boundary: int | None
    full_compare: bool = False

    @property
    def empty(self) -> bool:
        return self.old_table is not None and self.from_version == self.to_version


def oldest_pullable(conn: psycopg.Connection, layer_id: int) -> int | None:
    """The oldest version whose table is still kept (a pull may start there)."""
    row = _q(conn,
        "SELECT min(version) FROM layer_version WHERE layer_id = %s "
        "AND to_regclass(table_name) IS NOT NULL", (layer_id,)).fetchone()
    return row[0]


def plan(conn: psycopg.Connection, layer: dict[str, Any], since: int | None) -> Plan:
    """Resolve ``since`` (``None`` or 0: a full pull) against the resource's history."""
    current, table = layer["current_version"], layer["table_name"]
    if not since:
        return Plan(0, current, None, table, None)
    versions = dict(_q(conn,
        "SELECT version, table_name FROM layer_version WHERE layer_id = %s",
        (layer["id"],)).fetchall())
    if since not in versions:
        raise BadVersion(
            f"参数 since：资源 {layer['name']} 没有第 {since} 版（现有 {sorted(versions)}） / "
            f"parameter since: {layer['name']} has no version {since}; its versions are "
            f"{sorted(versions)}")
    if since == current:
        return Plan(since, current, table, table, None)
    old = versions[since]
    if _q(conn, "SELECT to_regclass(%s)", (old,)).fetchone()[0] is None:
        raise HistoryGone(layer["name"], since, oldest_pullable(conn, layer["id"]))
    key = layer["key_field"]
    if not _has_column(conn, old, key):
        return Plan(since, current, old, table, None, full_compare=True)
    boundary = _q(conn,
        "SELECT max(id) FROM layer_step WHERE layer_id = %s AND to_version = %s",
        (layer["id"], since)).fetchone()[0]
    if boundary is None:  # that version became current before change capture
        return Plan(since, current, old, table, None, full_compare=True)
    unknown = _q(conn,
        "SELECT 1 FROM layer_step WHERE layer_id = %s AND id > %s AND key_field IS NULL "
        "LIMIT 1", (layer["id"], boundary)).fetchone()
    return Plan(since, current, old, table, boundary, full_compare=unknown is not None)


GEOMETRY_FORMATS = {"geojson": "ST_AsGeoJSON({}, 7, 0)", "wkt": "ST_AsText({})", "raw": "{}"}


def _values(rules: AccessSQL, names: Sequence[str]) -> list[sql.Composable]:
    """The caller's view of one row: each of ``names`` as the caller gets it (masked),
    and the geometry — what two versions are compared on."""
    exprs = [rules.value(n) if n in rules.table_columns else sql.SQL("NULL")
             for n in names]  # a field the older version did not have was empty there
    if rules.geom is not None:
        exprs.append(rules.geom_sql())
    return exprs


def _join_scope(rules: AccessSQL) -> tuple[sql.Composable, list[Any]]:
    scope, params = rules.row_scope()
    return (sql.SQL(" AND {}").format(scope), params) if scope is not None else \
        (sql.SQL(""), [])


def change_query(p: Plan, key: str, key_type: str, old: AccessSQL | None, new: AccessSQL,
                 names: Sequence[str], geometry: str | None,
                 layer_id: int) -> tuple[sql.Composed, list[Any]]:
    """The SELECT of one pull: ``__op`` (insert/update/delete), ``__key`` (text), the
    caller's ``names`` of the new row (NULL for a delete) and, for a layer, the geometry
    as ``__geometry`` in ``geometry`` format (:data:`GEOMETRY_FORMATS`).

    ``old``/``new``: the caller's rules over the two versions' tables, with the aliases
    ``o`` and ``n``. The two views are compared as rows (``IS DISTINCT FROM``: masked
    values as the caller gets them; geometries by PostGIS's exact ``=``), so a change the
    caller cannot see is no change."""
    cols = [sql.SQL("{} AS {}").format(new.value(c), sql.Identifier(c)) for c in names]
    if geometry is not None:
        cols.append(sql.SQL(GEOMETRY_FORMATS[geometry] + " AS __geometry").format(
            new.geom_sql()))
    select = sql.SQL(", ").join(cols) if cols else sql.SQL("NULL")
    k = sql.Identifier(key)
    if p.old_table is None:  # full pull: every visible row of the current version
        scope, params = new.row_scope()
        q = sql.SQL("SELECT 'insert' AS __op, n.{k}::text AS __key, {cols} FROM {tab} n "
                    "WHERE {w}").format(k=k, cols=select, tab=_ident(p.new_table),
                                        w=scope if scope is not None else sql.SQL("TRUE"))
        return q, params
    assert old is not None
    if p.full_compare:
        cand = sql.SQL("SELECT {k}::text AS key FROM {o} UNION SELECT {k}::text FROM {n}"
                       ).format(k=k, o=_ident(p.old_table), n=_ident(p.new_table))
        cand_params: list[Any] = []
    else:
        cand = sql.SQL("SELECT DISTINCT c.key FROM layer_change c JOIN layer_step s ON "
                       "s.id = c.step_id WHERE s.layer_id = %s AND s.id > %s")
        cand_params = [layer_id, p.boundary]
    o_scope, o_params = _join_scope(old)
    n_scope, n_params = _join_scope(new)
    q = sql.SQL(
        "WITH k AS MATERIALIZED ({cand}) "
        "SELECT CASE WHEN o.{k} IS NULL THEN 'insert' WHEN n.{k} IS NULL THEN 'delete' "
        "ELSE 'update' END AS __op, k.key AS __key, {cols} FROM k "
        "LEFT JOIN {old} o ON o.{k} = k.key::{typ}{os} "
        "LEFT JOIN {new} n ON n.{k} = k.key::{typ}{ns} "
        "WHERE (o.{k} IS NOT NULL OR n.{k} IS NOT NULL) "
        "AND ROW({ov}) IS DISTINCT FROM ROW({nv}) ORDER BY k.key").format(
            cand=cand, k=k, cols=select, old=_ident(p.old_table), new=_ident(p.new_table),
            typ=sql.SQL(key_type), os=o_scope, ns=n_scope,
            ov=sql.SQL(", ").join(_values(old, names)),
            nv=sql.SQL(", ").join(_values(new, names)))
    return q, [*cand_params, *o_params, *n_params]
