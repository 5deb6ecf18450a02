"""The resource registry (资源注册): layers and tables, their versions, and the one
function that creates per-resource data tables.

A registry entry is a *resource* of one of :data:`layers.vocab.RESOURCE_KINDS`: a vector
layer, a raster layer, or a table (no geometry; one declared key column). The SQL
registry keeps the name ``layer`` (its URLs, grants and audit rows refer to it).

Every published load is a *version*: its own table ``layer_data.<layer>_v<N>`` that is
kept after newer versions arrive, so a rollback is one pointer move — exact and
instant. Publishing (new ``layer_version`` row, ``layer.current_version``, the registry
epoch that tells every API worker to rebuild its configuration) happens in ONE
transaction: readers see the old version or the new one, never a mixture.

Errors a person can fix raise :class:`RegistryError` with a message in Chinese first,
English beside it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb

from jmgeo.errors import UserError
from layers.vocab import RESOURCE_KINDS, SHARING_CLASSES, UPDATE_CYCLES

DATA_SCHEMA = "layer_data"
SRID = 4490
LAYER_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
COLUMN_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
GEOMETRY_TYPES = ("MultiPoint", "MultiLineString", "MultiPolygon")
# columns every data table has; attribute columns may not take these names
RESERVED_COLUMNS = ("fid", "geom")
PG_TYPES = ("text", "bigint", "integer", "double precision", "numeric", "boolean", "date",
            "timestamp", "timestamptz", "time", "jsonb", "bytea")


KIND_ZH = {"vector": "矢量图层", "raster": "栅格图层", "table": "数据表"}


class RegistryError(UserError, ValueError):
    """A registry rule was broken (bad name, unknown department, missing legal basis …)."""


@dataclass(frozen=True)
class Column:
    """An attribute column of a data table: ascii name, PostgreSQL type, 中文 label."""

    name: str
    pg_type: str = "text"
    label: str | None = None


def _q(conn: psycopg.Connection, query, params=None) -> psycopg.Cursor:
    """Execute with tuple rows, whatever the connection's row factory."""
    return conn.cursor(row_factory=tuple_row).execute(query, params)


def _qd(conn: psycopg.Connection, query, params=None) -> psycopg.Cursor:
    return conn.cursor(row_factory=dict_row).execute(query, params)


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha1(f"jmgeo.layer:{name}".encode()).digest()[:8], "big",
                          signed=True)


def check_layer_name(name: str) -> str:
    if not isinstance(name, str) or not LAYER_NAME_RE.match(name):
        raise RegistryError(
            f"图层名无效：{name!r}，应以小写字母开头，只含小写字母、数字和下划线，不超过63个字符 / "
            f"invalid layer name {name!r}: use lowercase ascii letters, digits and '_', "
            "starting with a letter, at most 63 characters (e.g. land_parcels)")
    return name


def check_sharing(sharing_class: str, legal_basis: str | None) -> None:
    if sharing_class not in SHARING_CLASSES:
        raise RegistryError(
            f"共享类型无效：{sharing_class!r} / unknown sharing class {sharing_class!r}: "
            f"use one of {', '.join(SHARING_CLASSES)}")
    if sharing_class == "not_shared" and not (legal_basis or "").strip():
        raise RegistryError(
            "不予共享的图层必须注明法律依据（如《中华人民共和国人民防空法》第X条），"
            "请用 --legal-basis 提供 / a not_shared layer must state its legal basis "
            "(e.g. a law and article): pass --legal-basis TEXT")


def lock_layer(conn: psycopg.Connection, name: str) -> None:
    """Serialise loads/rollbacks of one layer (released at the end of the transaction)."""
    _q(conn, "SELECT pg_advisory_xact_lock(%s)", (_lock_key(name),))


def department_id(conn: psycopg.Connection, code: str) -> int:
    row = _q(conn, "SELECT id FROM department WHERE code = %s", (code,)).fetchone()
    if row is None:
        known = [r[0] for r in _q(conn, "SELECT code FROM department ORDER BY code")]
        raise RegistryError(
            f"部门 {code!r} 不存在，已登记的部门：{', '.join(known) or '（无）'} / unknown "
            f"department {code!r}: use one of {', '.join(known) or '(none registered)'}, "
            "or register the department first")
    return row[0]


def table_name_for(layer: str, version: int) -> str:
    """``<layer>_v<N>``, shortened with a hash when it would exceed 63 characters."""
    name = f"{layer}_v{version}"
    if len(name) <= 63:
        return name
    digest = hashlib.md5(layer.encode()).hexdigest()[:8]
    suffix = f"_{digest}_v{version}"
    return layer[:63 - len(suffix)] + suffix


def qualified(table: str) -> sql.Composable:
    return sql.Identifier(DATA_SCHEMA, table)


def create_data_table(conn: psycopg.Connection, layer: str, version: int,
                      geometry_type: str | None, columns: Sequence[Column], *,
                      title: str | None = None, with_index: bool = True) -> str:
    """Create ``layer_data.<resource>_v<N>`` — THE one place per-resource tables are made.

    ``fid bigint primary key``, ``geom geometry(<Multi type>, 4490)`` with a GIST index
    (``with_index=False`` defers the index to :func:`finish_data_table`, which is faster
    for bulk loads), then the attribute columns, each with its 中文 label as comment.
    ``geometry_type=None`` makes a *table* resource: no ``geom`` column at all (its rows
    are identified by the key column, indexed by :func:`index_key`).
    Returns the schema-qualified table name.
    """
    check_layer_name(layer)
    if geometry_type is not None and geometry_type not in GEOMETRY_TYPES:
        raise RegistryError(f"几何类型无效：{geometry_type!r} / geometry type must be one of "
                            f"{GEOMETRY_TYPES}")
    seen = set(RESERVED_COLUMNS)
    for col in columns:
        if not COLUMN_NAME_RE.match(col.name) or col.name in seen:
            raise RegistryError(f"列名无效或重复：{col.name!r} / invalid or duplicate column "
                                f"name {col.name!r}")
        if col.pg_type not in PG_TYPES:
            raise RegistryError(f"列类型无效：{col.pg_type!r} / unsupported column type")
        seen.add(col.name)
    table = table_name_for(layer, version)
    ident = qualified(table)
    cols = [sql.SQL("fid bigint PRIMARY KEY")]
    if geometry_type is not None:
        cols.append(sql.SQL("geom geometry({}, {})").format(sql.SQL(geometry_type),
                                                            sql.Literal(SRID)))
    cols += [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type))
             for c in columns]
    _q(conn, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(DATA_SCHEMA)))
    _q(conn, sql.SQL("CREATE TABLE {} ({})").format(ident, sql.SQL(", ").join(cols)))
    _q(conn, sql.SQL("COMMENT ON TABLE {} IS {}").format(
        ident, sql.Literal(f"{title or layer} — version {version}")))
    for c in columns:
        if c.label:
            _q(conn, sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                ident, sql.Identifier(c.name), sql.Literal(c.label)))
    if with_index:
        finish_data_table(conn, table, analyze=False)
    return f"{DATA_SCHEMA}.{table}"


def _index_name(table: str, suffix: str) -> str:
    index = f"{table}_{suffix}"
    if len(index) > 63:  # index names share the schema's namespace: keep them unique
        index = f"{table[:45]}_{hashlib.md5(table.encode()).hexdigest()[:8]}_{suffix}"
    return index


def has_geometry(conn: psycopg.Connection, table: str) -> bool:
    """Whether a data table has the ``geom`` column (layers do, tables do not)."""
    row = _q(conn, "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                   "AND attname = 'geom' AND NOT attisdropped",
             (f"{DATA_SCHEMA}.{table.split('.', 1)[-1]}",)).fetchone()
    return row is not None


def table_columns(conn: psycopg.Connection, table: str) -> dict[str, str]:
    """Column name → PostgreSQL type of a data table, in table order (THE catalogue read:
    the OGC providers cache it per table name — a version's table never changes shape)."""
    rows = _q(conn,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum", (table,)).fetchall()
    return dict(rows)


def finish_data_table(conn: psycopg.Connection, table: str, *, analyze: bool = True) -> None:
    """The GIST index on ``geom`` (built after a bulk COPY; none for a table resource)
    and fresh statistics."""
    table = table.split(".", 1)[-1]
    if has_geometry(conn, table):
        _q(conn, sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gist (geom)").format(
            sql.Identifier(_index_name(table, "geom_gix")), qualified(table)))
    if analyze:
        _q(conn, sql.SQL("ANALYZE {}").format(qualified(table)))


def index_key(conn: psycopg.Connection, table: str, column: str) -> None:
    """A UNIQUE index on a table resource's declared key (the loader has already refused
    duplicate and empty keys with the rows named; this keeps it so, and makes a lookup
    by key — 联机查询 — one index probe)."""
    if not COLUMN_NAME_RE.match(column):
        raise RegistryError(f"键字段名无效：{column!r} / invalid key column name {column!r}")
    table = table.split(".", 1)[-1]
    _q(conn, sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})").format(
        sql.Identifier(_index_name(table, "key_ux")), qualified(table),
        sql.Identifier(column)))


def get_layer(conn: psycopg.Connection, name: str) -> dict[str, Any] | None:
    return _qd(conn,
        "SELECT l.*, d.code AS owner_code, d.name AS owner_name FROM layer l "
        "JOIN department d ON d.id = l.owner_dept_id WHERE l.name = %s", (name,)).fetchone()


def require_layer(conn: psycopg.Connection, name: str) -> dict[str, Any]:
    """The layer's registry row, or a RegistryError that says how to find the right name."""
    layer = get_layer(conn, name)
    if layer is None:
        raise RegistryError(f"图层 {name!r} 不存在 / no layer named {name!r}: see "
                            "`jmgeo layer list`")
    return layer


def next_version(conn: psycopg.Connection, name: str) -> int:
    row = _q(conn,
        "SELECT coalesce(max(v.version), 0) FROM layer_version v JOIN layer l "
        "ON l.id = v.layer_id WHERE l.name = %s", (name,)).fetchone()
    return int(row[0]) + 1


def register_layer(conn: psycopg.Connection, *, name: str, title: str, dept: str, theme: str,
                   sharing_class: str, legal_basis: str | None = None,
                   description: str | None = None, update_cycle: str = "other",
                   kind: str = "vector", geometry_type: str | None = None,
                   source_crs: str | None = None, source_encoding: str | None = None,
                   key_field: str | None = None,
                   sensitive_fields: dict[str, str] | None = None,
                   field_labels: dict[str, str] | None = None) -> int:
    """Insert or update a layer's registry row (not its current version); returns its id.

    A layer belongs to one department: loading it for another department is refused.
    """
    check_layer_name(name)
    check_sharing(sharing_class, legal_basis)
    if update_cycle not in UPDATE_CYCLES:
        raise RegistryError(f"更新周期无效：{update_cycle!r} / update cycle must be one of "
                            f"{', '.join(UPDATE_CYCLES)}")
    from layers.masking import MASK_KINDS

    for col, mkind in (sensitive_fields or {}).items():
        if mkind not in MASK_KINDS:
            raise RegistryError(f"敏感字段 {col} 的脱敏类型无效：{mkind!r} / sensitive field "
                                f"{col!r}: mask kind must be one of {', '.join(MASK_KINDS)}")
    if kind not in RESOURCE_KINDS:
        raise RegistryError(f"资源类型无效：{kind!r} / resource kind must be one of "
                            f"{', '.join(RESOURCE_KINDS)}")
    if kind == "table" and not (key_field or "").strip():
        raise RegistryError("数据表资源必须声明键字段（如 统一社会信用代码），请用 --key 提供 / a "
                            "table resource needs its key column (e.g. the USCC): pass --key")
    dept_id = department_id(conn, dept)
    existing = get_layer(conn, name)
    if existing is not None and (existing["kind"] == "table") != (kind == "table"):
        raise RegistryError(
            f"资源 {name} 是{KIND_ZH[existing['kind']]}，不能以{KIND_ZH[kind]}装入 / resource "
            f"{name!r} is a {existing['kind']} resource, not a {kind}: choose another name")
    if existing is not None and existing["owner_dept_id"] != dept_id:
        raise RegistryError(
            f"图层 {name} 属于部门 {existing['owner_code']}，不能以部门 {dept} 的名义装载 / "
            f"layer {name!r} belongs to department {existing['owner_code']!r}, not {dept!r}: "
            "choose another layer name")
    values = dict(title=title, description=description, owner_dept_id=dept_id, theme=theme,
                  sharing_class=sharing_class, legal_basis=legal_basis,
                  update_cycle=update_cycle, kind=kind, geometry_type=geometry_type,
                  source_crs=source_crs, source_encoding=source_encoding, key_field=key_field,
                  sensitive_fields=Jsonb(sensitive_fields or {}),
                  field_labels=Jsonb(field_labels or {}))
    if existing is None:
        cols = list(values)
        row = _q(conn,
            sql.SQL("INSERT INTO layer (name, {}) VALUES (%s, {}) RETURNING id").format(
                sql.SQL(", ").join(map(sql.Identifier, cols)),
                sql.SQL(", ").join(sql.Placeholder() * len(cols))),
            [name, *values.values()]).fetchone()
        return row[0]
    _q(conn,
        sql.SQL("UPDATE layer SET {}, updated_at = now() WHERE id = %s").format(
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values)),
        [*values.values(), existing["id"]])
    return existing["id"]


def bump_epoch(conn: psycopg.Connection) -> int:
    """Move the registry epoch for this transaction and return it (once per transaction:
    the registry's own triggers, migration 0017, move it at commit for any change not
    bumped here, and skip a transaction that already moved it)."""
    row = _q(conn, "UPDATE registry_state SET epoch = epoch + 1, changed_at = now(), "
                   "changed_xid = pg_current_xact_id()::text WHERE id = 1 AND changed_xid "
                   "IS DISTINCT FROM pg_current_xact_id()::text RETURNING epoch").fetchone()
    if row is None:
        return int(_q(conn, "SELECT epoch FROM registry_state WHERE id = 1").fetchone()[0])
    return int(row[0])


def audience_epoch(conn) -> tuple[int, int]:
    """The registry epoch and the access epoch (``registry_state``): the first moves on
    every committed change of a layer, version or department (migration 0017), the second
    of a grant or a region boundary (0028). While both stand still,
    ``layers.policy.visible_layers`` answers every caller the same — until a grant's
    period starts or ends (``layers.grants.next_change``), which no row change marks."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute("SELECT epoch, access_epoch FROM registry_state WHERE id = 1"
                           ).fetchone()


def publish(conn: psycopg.Connection, *, layer: str, version: int, table_name: str,
            feature_count: int, report: dict[str, Any], source_name: str | None = None,
            loaded_by: str | None = None, **layer_fields: Any) -> dict[str, Any]:
    """Register/update the layer, add version N and make it current — one transaction.

    ``layer_fields`` are :func:`register_layer`'s keyword arguments (title, dept, theme,
    sharing_class, …). Runs inside the caller's transaction when there is one.
    """
    # jsonb holds no NUL characters and only JSON types: normalise the report once
    report = json.loads(json.dumps(report, ensure_ascii=False, default=str)
                        .replace("\\u0000", ""))
    with conn.transaction():
        lock_layer(conn, layer)
        before = _current_table(conn, layer)
        from layers import changes, version_state  # they read tables through this module

        existing = get_layer(conn, layer)
        if existing is not None:  # the leaving version keeps its description (its style)
            version_state.capture(conn, existing["id"], existing["current_version"])
        layer_id = register_layer(conn, name=layer, **layer_fields)
        _q(conn,
            "INSERT INTO layer_version (layer_id, version, table_name, loaded_by, source_name, "
            "feature_count, report, status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'published')",
            (layer_id, version, table_name, loaded_by, source_name, feature_count,
             Jsonb(report)))
        _q(conn, "UPDATE layer SET current_version = %s, updated_at = now() WHERE id = %s",
                     (version, layer_id))
        version_state.capture(conn, layer_id, version)
        from layers import extents  # both read tables through this module

        extents.refresh(conn, layer_id, version)
        step = changes.record_step(
            conn, layer_id=layer_id, kind="publish", from_version=before[0],
            from_table=before[1], to_version=version, to_table=table_name,
            key_field=layer_fields.get("key_field"))
        epoch = bump_epoch(conn)
    return {"layer": layer, "version": version, "table": table_name, "epoch": epoch,
            "step": step}


def _current_table(conn: psycopg.Connection, name: str) -> tuple[int | None, str | None]:
    """The current version of a resource and its table (``(None, None)``: none yet, or
    its table is gone)."""
    row = _q(conn,
        "SELECT v.version, v.table_name FROM layer l JOIN layer_version v ON v.layer_id = l.id "
        "AND v.version = l.current_version WHERE l.name = %s AND to_regclass(v.table_name) "
        "IS NOT NULL", (name,)).fetchone()
    return (row[0], row[1]) if row else (None, None)


def history(conn: psycopg.Connection, name: str) -> list[dict[str, Any]]:
    """Every version of a layer, newest first, with which one is current."""
    layer = require_layer(conn, name)
    rows = _qd(conn,
        "SELECT version, table_name, loaded_at, loaded_by, source_name, feature_count, "
        "status, report FROM layer_version WHERE layer_id = %s ORDER BY version DESC",
        (layer["id"],)).fetchall()
    for r in rows:
        r["current"] = r["version"] == layer["current_version"]
    return rows


def list_layers(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return _qd(conn,
        "SELECT l.name, l.title, l.theme, l.sharing_class, l.kind, l.geometry_type, "
        "l.current_version, d.code AS owner_code, v.feature_count, v.loaded_at, "
        "l.retired_at FROM layer l JOIN department d ON d.id = l.owner_dept_id "
        "LEFT JOIN layer_version v ON v.layer_id = l.id AND v.version = l.current_version "
        "ORDER BY l.name").fetchall()


def rollback(conn: psycopg.Connection, name: str, to_version: int) -> dict[str, Any]:
    """Make an earlier (or later) kept version current again — one transaction."""
    with conn.transaction():
        lock_layer(conn, name)
        layer = require_layer(conn, name)
        if layer.get("retired_at") is not None:  # out of service: nothing to make current
            raise RegistryError(
                f"图层 {name} 已退役，请先 `jmgeo layer unretire {name}` / layer {name!r} is "
                f"retired: `jmgeo layer unretire {name}` first")
        row = _q(conn,
            "SELECT table_name, to_regclass(table_name) IS NOT NULL FROM layer_version "
            "WHERE layer_id = %s AND version = %s", (layer["id"], to_version)).fetchone()
        if row is None:
            versions = [r[0] for r in _q(conn,
                "SELECT version FROM layer_version WHERE layer_id = %s ORDER BY version",
                (layer["id"],))]
            raise RegistryError(
                f"图层 {name} 没有第 {to_version} 版，现有版本：{versions} / layer {name!r} has "
                f"no version {to_version}; its versions are {versions} (see `jmgeo layer "
                f"history {name}`)")
        if not row[1] and not _raster_file_exists(row[0]):
            raise RegistryError(f"第 {to_version} 版的数据表 {row[0]} 已被删除，无法回滚 / the "
                                f"table {row[0]} of version {to_version} was dropped: cannot "
                                "roll back to it")
        previous = layer["current_version"]
        before = _current_table(conn, name)
        from layers import version_state

        # the registry row describes the current data: keep the leaving version's
        # description (style changes included), bring back the arriving one's
        if to_version != previous:
            version_state.capture(conn, layer["id"], previous)
        restored = version_state.restore(conn, layer, to_version)
        _q(conn, "UPDATE layer SET current_version = %s, updated_at = now() WHERE id = %s",
                     (to_version, layer["id"]))
        from layers import extents

        extents.refresh(conn, layer["id"], to_version)
        if to_version != previous:
            from layers import changes

            changes.record_step(conn, layer_id=layer["id"], kind="rollback",
                                from_version=before[0], from_table=before[1],
                                to_version=to_version, to_table=row[0],
                                key_field=layer.get("key_field"))
        epoch = bump_epoch(conn)
    return {"layer": name, "from_version": previous, "to_version": to_version, "epoch": epoch,
            "kind": restored.get("kind", layer["kind"])}


def _raster_file_exists(table_name: str) -> bool:
    """A raster version's "table" is its COG file (``loaders.raster``): kept if present."""
    from pathlib import Path

    return table_name.endswith(".tif") and Path(table_name).is_file()


def counts(conn: psycopg.Connection) -> dict[str, int]:
    """How many layers, versions and data tables exist (tests: nothing changed)."""
    row = _q(conn,
        "SELECT (SELECT count(*) FROM layer), (SELECT count(*) FROM layer_version), "
        "(SELECT count(*) FROM pg_tables WHERE schemaname = %s), "
        "(SELECT epoch FROM registry_state WHERE id = 1)", (DATA_SCHEMA,)).fetchone()
    return {"layers": row[0], "versions": row[1], "tables": row[2], "epoch": row[3]}


def prune(conn: psycopg.Connection, name: str, keep: int, *, force: bool = False,
          by: str | None = None) -> dict[str, Any]:
    """Drop the tables of all but the newest ``keep`` versions (never the current one):
    the retention of version history. Their ``layer_version`` rows stay (the history and
    the audit log name them); a rollback to, or a feed pull from, a pruned version is
    refused with the oldest one kept. A resource with live grants is refused unless
    ``force`` (a grantee's system may still pull from an old version); every prune that
    drops something is written to the audit log (``layer.prune``)."""
    from layers import audit
    from layers.grants import LIVE_SQL

    if keep < 1:
        raise RegistryError(f"--keep 至少为 1 / --keep must be at least 1 (got {keep})")
    dropped: list[int] = []
    with conn.transaction():
        lock_layer(conn, name)
        layer = require_layer(conn, name)
        rows = _q(conn,
            "SELECT version, table_name FROM layer_version WHERE layer_id = %s AND "
            "to_regclass(table_name) IS NOT NULL ORDER BY version DESC",
            (layer["id"],)).fetchall()
        doomed = [(v, t) for v, t in rows[keep:] if v != layer["current_version"]]
        live = _q(conn, "SELECT count(*) FROM layer_grant g WHERE g.layer_id = %s AND " +
                  LIVE_SQL, (layer["id"],)).fetchone()[0] if doomed else 0
        if live and not force:
            raise RegistryError(
                f"资源 {name} 有 {live} 个有效授权，受权部门可能仍从旧版本增量同步；确需删除请加 --force / "
                f"{name} has {live} live grant(s) whose departments may still pull from old "
                "versions: add --force to prune anyway")
        from spatial.regionindex import region_index_name

        for version, table in doomed:
            _q(conn, sql.SQL("DROP TABLE {}").format(sql.Identifier(*table.split(".", 1))))
            _q(conn, sql.SQL("DROP TABLE IF EXISTS {}").format(  # its region index too
                sql.Identifier(*region_index_name(table))))
            dropped.append(version)
        if dropped:
            audit.record(conn, action="layer.prune", layer=name,
                         request={"by": by, "keep": keep, "dropped_versions": sorted(dropped),
                                  "forced": bool(live and force)})
    return {"layer": name, "dropped_versions": sorted(dropped),
            "kept_versions": sorted(v for v, _ in rows if v not in dropped)}
