"""系统对接 feeds: a resource's records, in full or changed since a version, as one caller
may have them — the one reader behind the pull API, the pushes' change sets and the
front-end-processor copies.

A feed is keyed: a record is known to a department system by the resource's declared
key (宗地代码, 统一社会信用代码 …), and a delete can only be said by key. So a feed needs
the key declared, visible and unmasked for the caller (the rule of every filter, DESIGN
§5: a value the caller may not see is never a handle) — otherwise :class:`FeedRefused`.

What each record holds is the caller's view (``layers.access_sql``: the grant's fields,
masks, region scope); *which* records changed is ``layers.changes`` (exact per caller).
Records stream from a server-side cursor: a full pull of 1,000,000 parcels never sits in
memory. The caller of :meth:`Feed.records` owns the transaction (any isolation level: the
version range is fixed by :meth:`Feed.open` and the version tables never change).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from jmgeo.errors import UserError
from layers import changes
from layers.access_sql import AccessSQL
from layers.policy import Access
from layers.registry import table_columns

BATCH = 5_000  # rows per fetch of the server-side cursor


class FeedRefused(UserError):
    """The resource cannot be fed to this caller (no key, key withheld, bad field)."""

    status = 400


@dataclass
class Feed:
    """One pull: the resource row (``layers.policy.access_row``), the caller's access,
    the version range (:attr:`plan`) and the fields each record carries."""

    layer: dict[str, Any]
    access: Access
    plan: changes.Plan
    key: str
    key_type: str
    names: list[str]
    new: AccessSQL
    old: AccessSQL | None

    @property
    def is_table(self) -> bool:
        return self.layer["kind"] == "table"

    @classmethod
    def open(cls, conn: psycopg.Connection, layer: dict[str, Any], access: Access,
             since: int | None, fields: Sequence[str] | None = None) -> Feed:
        """Check the caller may be fed this resource and resolve ``since``; raises
        :class:`FeedRefused`, :class:`layers.changes.BadVersion` or
        :class:`layers.changes.HistoryGone` (each a ``UserError`` naming the fix)."""
        name, key = layer["name"], layer.get("key_field")
        if layer["kind"] == "raster":
            raise FeedRefused(f"栅格图层 {name} 没有记录，不提供数据推送；请用 OGC API - Coverages "
                              f"/ {name} is a raster layer: it has no records to feed; use "
                              "OGC API - Coverages")
        if not key:
            raise FeedRefused(f"资源 {name} 未声明键字段，不能按键增量同步；请所有者以 --key 重新装载 / "
                              f"resource {name} declares no key field, so changes cannot be "
                              "said by key: the owner must load it with --key")
        geom = None if layer["kind"] == "table" else "geom"
        new = AccessSQL(access, table_columns(conn, layer["table_name"]), geom=geom, alias="n")
        if not new.visible(key) or new.masked(key):
            raise FeedRefused(f"您的授权不含未脱敏的键字段 {key}，不能订阅或同步该资源；请提出共享申请并"
                              f"写明该字段 / your access does not include the key field {key} "
                              "unmasked, so records cannot be fed to you by key: file a share "
                              "request naming that field")
        visible = [c for c in new.columns() if c != "fid"]
        if fields is not None:
            for f in fields:
                if f not in visible:
                    raise FeedRefused(f"参数 fields：未知字段 {f} / parameter fields: unknown "
                                      f"field {f}")
            names = list(dict.fromkeys([key, *fields]))
        else:
            names = visible
        p = changes.plan(conn, layer, since)
        old = None
        if p.old_table is not None:
            old = AccessSQL(access, table_columns(conn, p.old_table), geom=geom, alias="o")
        return cls(layer, access, p, key, new.table_columns[key], names, new, old)

    def query(self, wkt: bool = False, *, raw_geometry: bool = False
              ) -> tuple[sql.Composed, list[Any]]:
        """The SELECT of this pull (``layers.changes.change_query``); the geometry as
        GeoJSON text, WKT with ``wkt``, or the stored geometry itself with
        ``raw_geometry`` (its text form is hex EWKB: lossless for a database copy)."""
        geometry = None if self.is_table else (
            "raw" if raw_geometry else "wkt" if wkt else "geojson")
        return changes.change_query(self.plan, self.key, self.key_type, self.old, self.new,
                                    self.names, geometry, self.layer["id"])

    def records(self, conn: psycopg.Connection, *, wkt: bool = False
                ) -> Iterator[dict[str, Any]]:
        """Each change as ``{"op", "key", "properties", "geometry"}`` (``properties`` and
        ``geometry`` None for a delete; ``geometry`` GeoJSON text — WKT with ``wkt`` —
        absent for a table).
        ``conn`` must be in a transaction (the server-side cursor lives in it)."""
        if self.plan.empty:
            return
        q, params = self.query(wkt)
        n = len(self.names)
        with conn.cursor(name="jmgeo_feed", row_factory=tuple_row) as cur:
            cur.itersize = BATCH
            cur.execute(q, params)
            for row in cur:
                op, key = row[0], row[1]
                rec: dict[str, Any] = {"op": op, "key": key}
                if op == "delete":
                    rec["properties"] = None
                    if not self.is_table:
                        rec["geometry"] = None
                else:
                    rec["properties"] = dict(zip(self.names, row[2:2 + n], strict=True))
                    if not self.is_table:
                        rec["geometry"] = row[2 + n]
                yield rec

    def lines(self, conn: psycopg.Connection, fmt: str) -> Iterator[str]:
        """Each change as one encoded line, built by PostgreSQL: ``ndjson`` (the shape of
        :meth:`records`, geometry as a GeoJSON object) or ``geojsonseq`` (RFC 8142: RS, a
        Feature with ``id`` the key and ``op`` a foreign member, LF). JSON in SQL is C,
        not one Python object per record: the feed of 1,000,000 parcels streams at the
        database's pace. ``conn`` must be in a transaction."""
        if self.plan.empty:
            return
        q, params = self.query()
        props = sql.SQL("CASE WHEN f.__op = 'delete' THEN NULL ELSE (SELECT to_json(p) FROM "
                        "(SELECT {}) p) END").format(sql.SQL(", ").join(
                            sql.SQL("f.{c} AS {c}").format(c=sql.Identifier(c))
                            for c in self.names) if self.names else sql.SQL("NULL"))
        geom = sql.SQL("f.__geometry::json")
        if fmt == "ndjson":
            members = [sql.SQL("'op', f.__op, 'key', f.__key, 'properties', {}").format(props)]
            if not self.is_table:
                members.append(sql.SQL("'geometry', {}").format(geom))
            line = sql.SQL("json_build_object({})::text || E'\\n'").format(
                sql.SQL(", ").join(members))
        elif fmt == "geojsonseq":
            line = sql.SQL(
                "E'\\x1e' || json_build_object('type', 'Feature', 'id', f.__key, 'op', f.__op, "
                "'properties', {}, 'geometry', {})::text || E'\\n'").format(
                    props, sql.SQL("NULL::json") if self.is_table else geom)
        else:
            raise ValueError(f"no line format {fmt!r}")
        with conn.cursor(name="jmgeo_feed_lines", row_factory=tuple_row) as cur:
            cur.itersize = BATCH
            cur.execute(sql.SQL("SELECT {} FROM ({}) f").format(line, q), params)
            for (text,) in cur:
                yield text

    def describe(self) -> dict[str, Any]:
        """The version range and shape of this pull (response headers / push bodies)."""
        return {"resource": self.layer["name"], "key_field": self.key,
                "from_version": self.plan.from_version, "to_version": self.plan.to_version,
                "full": self.plan.old_table is None, "fields": self.names}
