"""The registry's description of a resource, kept per version, so a rollback restores it.

``layer`` (the registry row) describes the CURRENT data: its kind (vector / raster /
table), geometry type, source CRS and encoding, key field, field labels, sensitive
fields and map style. A rollback makes another version's data current, so it must make
that version's description current too — rolling back across a vector → raster change
once left the raster's kind on a vector table (its collections answered as a coverage).

* :func:`capture` copies the registry row's description into ``layer_version.registry``
  (at publish, and when a version stops being current: a style set meanwhile is its).
* :func:`restore` writes a version's description back into the registry row; versions
  published before migration 0023 get what their load report tells (kind, geometry
  type, source CRS, key field). Sensitive fields are never unmasked by a rollback: the
  restored set is the version's own plus every currently sensitive field its table has.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

#: the registry columns that describe a version's data (and only those: title, sharing
#: class, owner, theme are the resource's, not a version's)
STATE_COLUMNS = ("kind", "geometry_type", "source_crs", "source_encoding", "key_field",
                 "field_labels", "sensitive_fields", "style")


def capture(conn: psycopg.Connection, layer_id: int, version: int | None) -> None:
    """Record the registry row's description as version ``version``'s."""
    if version is None:
        return
    fields = sql.SQL(", ").join(sql.SQL("{}, l.{}").format(sql.Literal(c), sql.Identifier(c))
                                for c in STATE_COLUMNS)
    conn.execute(sql.SQL(
        "UPDATE layer_version v SET registry = jsonb_build_object({}) FROM layer l "
        "WHERE l.id = v.layer_id AND v.layer_id = %s AND v.version = %s").format(fields),
        (layer_id, version))


def _from_report(row: dict[str, Any]) -> dict[str, Any]:
    """What a version published before migration 0023 tells of itself (its report)."""
    report = row.get("report") or {}
    target = report.get("target") or {}
    kind = target.get("kind") or ("raster" if str(row["table_name"]).endswith(".tif")
                                  else "vector")
    state: dict[str, Any] = {"kind": kind, "geometry_type": target.get("geometry_type")}
    crs = report.get("crs") or {}
    if crs.get("crs"):
        state["source_crs"] = crs["crs"]
    if kind == "raster":
        state.update(geometry_type=None, key_field=None, source_encoding=None)
    key = target.get("key_field") or (report.get("key") or {}).get("field")
    if key:
        state["key_field"] = key
    return state


def restore(conn: psycopg.Connection, layer: dict[str, Any], version: int) -> dict[str, Any]:
    """Make the registry row describe version ``version``; returns what was written."""
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT table_name, report, registry FROM layer_version WHERE layer_id = %s AND "
        "version = %s", (layer["id"], version)).fetchone()
    state = dict(row["registry"]) if row["registry"] is not None else _from_report(row)
    state = {k: v for k, v in state.items() if k in STATE_COLUMNS}
    if state.get("kind") != "raster":  # never unmask: keep what is sensitive now
        from layers.registry import table_columns

        cols = table_columns(conn, row["table_name"])
        sensitive = dict(state.get("sensitive_fields") or {})
        for col, mkind in (layer.get("sensitive_fields") or {}).items():
            if col in cols:
                sensitive.setdefault(col, mkind)
        if sensitive or "sensitive_fields" in state:
            state["sensitive_fields"] = sensitive
    if not state:
        return {}
    for k in ("field_labels", "sensitive_fields"):  # NOT NULL columns
        if k in state and state[k] is None:
            state[k] = {}
    values = [Jsonb(v) if k in ("field_labels", "sensitive_fields", "style") and v is not None
              else v for k, v in state.items()]
    conn.execute(sql.SQL("UPDATE layer SET {}, updated_at = now() WHERE id = %s").format(
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in state)),
        [*values, layer["id"]])
    return state
