"""A version's own extent, from its data: what a collection tells clients it covers.

Computed once per version — a version's table never changes — when it is published and
when a rollback makes it current again (a version published before migration 0021 gets
it then), and stored in ``layer_version.extent``:

* ``bbox``: ``ST_Extent`` of the geometries, in CRS84 lon/lat (EPSG:4490 as stored: the
  same numbers to centimetres), 7 decimals; none for a table (no geometry) or an empty
  layer;
* ``temporal``: the ``[earliest, latest]`` values of the layer's first date or
  timestamp field in column order (ISO 8601; a timestamp with time zone in UTC, ``Z``),
  with the field's name; none when the layer has no such field or it is empty.

Raster layers carry their bbox in the file (``jmgeo.ogc.coverages``): nothing stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

TIME_TYPES = ("date", "timestamp without time zone", "timestamp with time zone")


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def compute(conn: psycopg.Connection, table: str) -> dict[str, Any] | None:
    """The extent of one version table (None: nothing to say — no geometry, no time)."""
    from layers.registry import table_columns

    cols = table_columns(conn, table)
    if not cols:
        return None
    schema, name = table.split(".", 1)
    ident = sql.Identifier(schema, name)
    out: dict[str, Any] = {}
    cur = conn.cursor(row_factory=dict_row)
    if "geom" in cols:
        row = cur.execute(sql.SQL(
            "SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1 "
            "FROM (SELECT ST_Extent(geom) AS e FROM {}) s").format(ident)).fetchone()
        if row and row["x0"] is not None:
            out["bbox"] = [round(float(row[k]), 7) for k in ("x0", "y0", "x1", "y1")]
    field = next((c for c, t in cols.items() if t.split("(")[0] in TIME_TYPES), None)
    if field is not None:
        row = cur.execute(sql.SQL("SELECT min({c}) AS lo, max({c}) AS hi FROM {t}").format(
            c=sql.Identifier(field), t=ident)).fetchone()
        if row and row["lo"] is not None:
            out["temporal"] = {"field": field, "interval": [_iso(row["lo"]), _iso(row["hi"])]}
    return out or None


def refresh(conn: psycopg.Connection, layer_id: int, version: int) -> dict[str, Any] | None:
    """Compute and store the extent of version ``version`` (in the caller's transaction);
    a raster's or a pruned version's is left as it is."""
    row = conn.execute("SELECT table_name FROM layer_version WHERE layer_id = %s AND "
                       "version = %s", (layer_id, version)).fetchone()
    table = (row["table_name"] if isinstance(row, dict) else row[0]) if row else None
    if not table or "." not in table or table.startswith(("file:", "/")):
        return None  # a raster's file
    gone = conn.execute("SELECT to_regclass(%s) IS NULL", (table,)).fetchone()
    if (gone[0] if not isinstance(gone, dict) else next(iter(gone.values()))):
        return None  # pruned
    extent = compute(conn, table)
    conn.execute("UPDATE layer_version SET extent = %s WHERE layer_id = %s AND version = %s",
                 (Jsonb(extent) if extent is not None else None, layer_id, version))
    return extent
