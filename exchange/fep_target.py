"""前置机 outbound, the department side: a copy table and its metadata row in a database
the platform does not own (``exchange.fep_outbound`` decides what goes in).

Everything a sync writes goes into **one transaction of the target database**: the data
(a full rebuild, or the change set applied by key) *and* the metadata row
``<schema>._jmgeo_sync`` that says which version of which resource the copy holds. A sync
killed at any moment therefore leaves the old state or the new one, never a mix, and the
next run reads the version it starts from in that row — the target's own truth, not the
platform's note of it (``fep_copy``), which a kill may leave behind.

A full rebuild loads a new table beside the old one and swaps them at the end of the
transaction (``DROP`` + ``RENAME``), so the department's readers keep the old copy until
the new one is committed. Data moves as PostgreSQL ``COPY`` text piped from the platform
to the target — no row passes through Python objects; the geometry travels as its hex
EWKB text (lossless, SRID 4490 kept).

:func:`content` is the reconciliation's measure, computed **the same way on both sides**:
the row count, and md5 over the sorted per-row md5s of ``ROW(columns…)::text`` — every
session pinned to the same text rendering (:data:`SESSION`), so a value is the same text
in the platform's view and in the copy (masked values are text on both).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from jmgeo.errors import UserError, bilingual

META = "_jmgeo_sync"
IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CONNECT_TIMEOUT = 10  # seconds
# one text rendering of values on both sides (hashes compare text; COPY moves text)
SESSION = ("SET extra_float_digits = 1", "SET DateStyle = 'ISO, YMD'", "SET TimeZone = 'UTC'",
           "SET IntervalStyle = 'postgres'", "SET bytea_output = 'hex'",
           # a backend whose client died notices it while waiting on a lock, too
           "SET client_connection_check_interval = '2s'")


class FepError(UserError):
    """A front-end-processor copy that cannot be registered or synced as asked."""

    code = "fep_error"


def redact(url: str) -> str:
    """The target URL without its password (for lists, logs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def check_ident(value: str, what: str) -> str:
    """A schema or table name the target may get: lower-case ASCII, ≤ 63 characters, not
    a system schema, not the copies' own metadata name."""
    if not IDENT_RE.match(value or "") or value.startswith(("pg_", "_jmgeo")) or \
            value == "information_schema":
        raise FepError(bilingual(
            f"{what} 名称无效：{value!r}；只能用小写字母、数字和下划线（字母或下划线开头，最多 63 个字符），"
            "不能以 pg_ 或 _jmgeo 开头",
            f"invalid {what} name {value!r}: use lower-case letters, digits and _ (starting "
            "with a letter or _, at most 63 characters), not starting with pg_ or _jmgeo"))
    return value


def connect(url: str) -> psycopg.Connection:
    """An autocommit connection to the target with :data:`SESSION` set; a
    :class:`FepError` naming the target (password hidden) when it cannot be reached."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise FepError(bilingual(f"目标地址必须是 postgresql:// 连接串：{redact(url)}",
                                 f"the target URL must be a postgresql:// URL: {redact(url)}"))
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                               application_name="jmgeo-fep")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FepError(bilingual(
            f"无法连接前置机目标库 {redact(url)}：{first}；请检查地址、账号和网络",
            f"cannot reach the target database {redact(url)}: {first}; check the URL, the "
            "account and the network")) from exc
    for statement in SESSION:
        conn.execute(statement)
    return conn


def has_postgis(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'"
                        ).fetchone() is not None


def _t(schema: str, name: str) -> sql.Composable:
    return sql.Identifier(schema, name)


def table_exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                        (f'"{schema}"."{table}"',)).fetchone()[0]


# -- what a copy table looks like --------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """The copy table: the key, the visible columns with the types the caller gets them
    in (masked ones text), the geometry type (None: a table resource) and ``signature``
    — a digest of all of it *and* of the access (fields, masks, regions, grant): when it
    changes, the copy is rebuilt in full rather than patched."""

    key: str
    key_type: str
    columns: tuple[tuple[str, str], ...]
    geometry: str | None
    signature: str

    @property
    def names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def ddl(self, *, constraints: bool) -> sql.Composable:
        cols = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in self.columns]
        if self.geometry is not None:
            cols.append(sql.SQL("geom geometry({}, 4490)").format(sql.SQL(self.geometry))
                        if constraints else sql.SQL("geom geometry"))
        return sql.SQL(", ").join(cols)

    def copy_columns(self, *, alias: str | None = None) -> list[sql.Composable]:
        names = [*self.names, *(["geom"] if self.geometry is not None else [])]
        if alias is None:
            return [sql.Identifier(n) for n in names]
        return [sql.Identifier(alias, n) for n in names]


def content(conn: psycopg.Connection, source: sql.Composable, columns: Sequence[sql.Composable],
            params: Sequence[Any] = ()) -> tuple[int, str]:
    """Row count and content hash of ``source`` (a FROM item aliased ``f``) over
    ``columns`` — THE reconciliation measure, the same SQL on both sides."""
    q = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h COLLATE \"C\"), '')) "
        "FROM (SELECT md5(ROW({cols})::text) AS h FROM {src}) x").format(
            cols=sql.SQL(", ").join(columns), src=source)
    count, digest = conn.execute(q, list(params)).fetchone()
    return int(count), digest


def copy_content(conn: psycopg.Connection, schema: str, table: str,
                 shape: Shape) -> tuple[int, str] | None:
    """:func:`content` of the copy table (None when it is not there)."""
    if not table_exists(conn, schema, table):
        return None
    return content(conn, sql.SQL("{} f").format(_t(schema, table)),
                   shape.copy_columns(alias="f"))


# -- the metadata row ---------------------------------------------------------------------

def read_meta(conn: psycopg.Connection, schema: str, table: str) -> dict[str, Any] | None:
    """The metadata row of ``schema.table`` (None: never synced here)."""
    if not table_exists(conn, schema, META):
        return None
    return conn.cursor(row_factory=dict_row).execute(
        sql.SQL("SELECT * FROM {} WHERE table_name = %s").format(_t(schema, META)),
        (table,)).fetchone()


def write_meta(conn: psycopg.Connection, schema: str, table: str, **values: Any) -> None:
    """Create the schema and the metadata table if needed; upsert the row of ``table``
    (in the caller's transaction)."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (table_name text PRIMARY KEY, copy_id integer, "
        "resource text, grant_id integer, version integer, status text, signature text, "
        "synced_at timestamptz, row_count bigint, content_hash text)").format(
            _t(schema, META)))
    cols = ["table_name", *values]
    conn.execute(sql.SQL(
        "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT (table_name) DO UPDATE SET "
        "{sets}, synced_at = now()").format(
            t=_t(schema, META), cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
            vals=sql.SQL(", ").join(sql.Placeholder() * len(cols)),
            sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                    for c in values)),
        [table, *values.values()])


# -- writing data (each in the caller's target transaction) ------------------------------

def _pipe(source: psycopg.Connection, query: str, target: psycopg.Connection,
          copy_in: sql.Composable) -> tuple[int, int]:
    """COPY ``query``'s rows from the platform into the target; (rows, bytes)."""
    nbytes = 0
    with source.cursor() as src, target.cursor() as dst:
        with src.copy(sql.SQL("COPY ({}) TO STDOUT").format(sql.SQL(query))) as out, \
                dst.copy(copy_in) as into:
            for block in out:
                into.write(block)
                nbytes += len(block)
        return max(dst.rowcount, 0), nbytes


def _index_name(table: str, suffix: str) -> str:
    return f"{table[:63 - len(suffix)]}{suffix}"


def rebuild(source: psycopg.Connection, query: str, target: psycopg.Connection, schema: str,
            table: str, shape: Shape, comment: str, copy_id: int) -> tuple[int, int]:
    """Full copy: load a new table from ``query`` (the view's columns, then the raw
    geometry), index it, and swap it in for the old one; (rows, bytes)."""
    target.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    new = f"_jmgeo_new_{copy_id}"
    target.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_t(schema, new)))
    target.execute(sql.SQL("CREATE TABLE {} ({})").format(_t(schema, new),
                                                          shape.ddl(constraints=True)))
    rows, nbytes = _pipe(source, query, target, sql.SQL("COPY {} ({}) FROM STDIN").format(
        _t(schema, new), sql.SQL(", ").join(shape.copy_columns())))
    target.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
        _t(schema, new), sql.Identifier(f"{new}_pkey"), sql.Identifier(shape.key)))
    if shape.geometry is not None:
        target.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
            sql.Identifier(f"{new}_geom"), _t(schema, new)))
    target.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_t(schema, table)))
    target.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(_t(schema, new),
                                                                 sql.Identifier(table)))
    target.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
        _t(schema, f"{new}_pkey"), sql.Identifier(_index_name(table, "_pkey"))))
    if shape.geometry is not None:
        target.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
            _t(schema, f"{new}_geom"), sql.Identifier(_index_name(table, "_geom_idx"))))
    target.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(_t(schema, table),
                                                              sql.Literal(comment)))
    return rows, nbytes


def apply_changes(source: psycopg.Connection, query: str, target: psycopg.Connection,
                  schema: str, table: str, shape: Shape) -> tuple[int, int]:
    """Incremental copy: the change set (``__op``, ``__key``, the view's columns, the raw
    geometry) into a temporary table, then delete by key and insert the new rows —
    an upsert by key; (changed rows, bytes)."""
    target.execute(sql.SQL(
        "CREATE TEMP TABLE _jmgeo_delta (__op text, __key text, {}) ON COMMIT DROP").format(
            shape.ddl(constraints=False)))
    rows, nbytes = _pipe(source, query, target, sql.SQL(
        "COPY _jmgeo_delta (__op, __key, {}) FROM STDIN").format(
            sql.SQL(", ").join(shape.copy_columns())))
    key = sql.Identifier(shape.key)
    target.execute(sql.SQL("DELETE FROM {t} c USING _jmgeo_delta d WHERE c.{k} = "
                           "d.__key::{typ}").format(t=_t(schema, table), k=key,
                                                    typ=sql.SQL(shape.key_type)))
    cols = sql.SQL(", ").join(shape.copy_columns())
    target.execute(sql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM _jmgeo_delta "
                           "WHERE __op <> 'delete'").format(t=_t(schema, table), c=cols))
    return rows, nbytes


def drop_copy(target: psycopg.Connection, schema: str, table: str) -> bool:
    """Drop the copy's data (grant revoked or expired); True when there was a table."""
    existed = table_exists(target, schema, table)
    target.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_t(schema, table)))
    return existed
