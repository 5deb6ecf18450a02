"""What the portal's pages show, read through the same functions the APIs use.

* catalog entries: ``catalog.store.list_entries`` / ``facet_counts`` / ``entry_for`` — the
  policy's ``catalog_filter`` decides what is listed (the public: open entries);
* data: ``layers.policy.access_for`` — a resource whose data the caller may not have
  shows no map, preview or downloads; its columns and rows through
  ``layers.access_sql.AccessSQL`` (masks in SQL, the grant's region scope);
* downloads: the formats ``jmgeo.downloads`` offers for the resource's kind;
* freshness: ``supervision.freshness`` (the supervision package's ladder, when installed).
"""

from __future__ import annotations

import math
from typing import Any

import psycopg
from psycopg import sql

from catalog import store, sync, vocab
from exchange import clock
from jmgeo.catalog_api import serialize
from jmgeo.downloads.files import formats_for
from jmgeo.ogc.access import table_columns
from jmgeo.ogc.provider import split_table
from layers import policy, registry
from layers.access_sql import AccessSQL
from layers.policy import Access, Caller
from layers.styles import DEFAULT_COLOUR, THEME_COLOURS, geometry_family

PAGE_SIZE = 20
PREVIEW_ROWS = 20
FACET_KEYS = ("category", "dept", "format", "update_cycle", "kind")
FORMAT_LABELS = {  # download format → (中文, English)
    "gpkg": ("GeoPackage", "GeoPackage"),
    "shp": ("Shapefile（UTF-8，zip）", "Shapefile (UTF-8, zip)"),
    "shp-gbk": ("Shapefile（GBK，旧版软件）", "Shapefile (GBK, older software)"),
    "geojson": ("GeoJSON", "GeoJSON"),
    "csv": ("CSV（UTF-8）", "CSV (UTF-8)"),
    "csv-gbk": ("CSV（GBK）", "CSV (GBK)"),
    "xlsx": ("Excel 表格", "Excel (xlsx)"),
}
KIND_LABELS_EN = {"vector": "vector layer", "raster": "raster layer", "table": "data table",
                  "entry": "catalogue entry only"}


def search(conn: psycopg.Connection, caller: Caller, q: str | None,
           filters: dict[str, str | None], page: int) -> dict[str, Any]:
    """One page of the catalog search with its facets."""
    sync.ensure_synced(conn)
    rows, total = store.list_entries(conn, caller, q=q or None, filters=filters,
                                     limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
                                     sort=None if q else "-updated")
    fuzzy = any(r.get("match") == "fuzzy" for r in rows)
    facets = store.facet_counts(conn, caller, q=q or None, filters=filters, fuzzy=fuzzy)
    kinds = _kinds(conn, [r["layer_name"] for r in rows if r.get("layer_name")])
    entries = []
    for r in rows:
        e = serialize(r, caller)
        e["kind"] = kinds.get(r.get("layer_name") or "", "entry")
        entries.append(e)
    return {"entries": entries, "total": total, "fuzzy": fuzzy, "page": page,
            "pages": max(1, math.ceil(total / PAGE_SIZE)),
            "facets": [(k, facets.get(k, [])) for k in FACET_KEYS]}


def _kinds(conn, names: list[str]) -> dict[str, str]:
    if not names:
        return {}
    return {r["name"]: r["kind"] for r in conn.execute(
        "SELECT name, kind FROM layer WHERE name = ANY(%s)", (names,))}


def summary(conn: psycopg.Connection, caller: Caller) -> dict[str, Any]:
    """The home page's figures: entries the caller may see, by kind and theme."""
    sync.ensure_synced(conn)
    facets = store.facet_counts(conn, caller)
    kinds = {f["value"]: f["count"] for f in facets["kind"]}
    return {"entries": sum(kinds.values()), "layers": kinds.get("vector", 0)
            + kinds.get("raster", 0), "tables": kinds.get("table", 0),
            "themes": facets["category"], "depts": facets["dept"]}


def latest(conn: psycopg.Connection, caller: Caller, n: int = 6) -> list[dict[str, Any]]:
    rows, _ = store.list_entries(conn, caller, limit=n, sort="-updated")
    return [serialize(r, caller) for r in rows]


def dataset(conn: psycopg.Connection, caller: Caller, entry_id: int) -> dict[str, Any] | None:
    """Everything a dataset page shows, or None when the caller may not see the entry
    (hidden and missing answer alike)."""
    sync.ensure_synced(conn)
    try:
        raw = store.entry_for(conn, entry_id, caller)
    except store.NotFound:
        return None
    entry = serialize(raw, caller)
    out: dict[str, Any] = {"entry": entry, "resource": None, "kind": "entry"}
    name = raw.get("layer_name")
    found = policy.access_for(conn, caller, name) if name else None
    if found is None:
        return out
    row, access = found
    out["kind"] = row["kind"]
    fields = _fields(raw, row, access)
    out["fields"] = fields
    # a region-limited grant sees its rows only: no whole-layer counts or box, which
    # would say what lies outside the grant
    whole = access is None or access.regions is None
    out["resource"] = {
        "name": row["name"], "kind": row["kind"], "title": row["title"],
        "owner": row["owner_name"], "version": row["current_version"],
        "geometry_type": row.get("geometry_type"),
        "family": geometry_family(row.get("geometry_type")),
        "colour": THEME_COLOURS.get(row.get("theme") or "", DEFAULT_COLOUR),
        "access": access,
        "downloads": [(f, FORMAT_LABELS[f]) for f in formats_for(row["kind"])],
        "extent": entry["layer"]["extent"] if entry.get("layer") and whole else None,
    }
    versions = [v for v in registry.history(conn, row["name"])]
    current = next((v for v in versions if v["current"]), None)
    out["versions"] = [{**{k: v[k] for k in ("version", "loaded_at", "status", "current")},
                        "feature_count": v["feature_count"] if whole else None}
                       for v in versions]
    out["quality"] = _quality(current)
    out["freshness"] = freshness_state(conn, row)
    return out


def _fields(raw: dict[str, Any], row: dict[str, Any], access: Access) -> list[dict[str, Any]]:
    """The catalog's data items (Chinese names, types) with what this caller gets of each
    column: hidden by the grant, masked, or clear."""
    cols = AccessSQL(access, table_columns(row["table_name"])).columns() \
        if row.get("table_name") else []
    out = []
    for it in raw["items"]:
        col = it.get("field")
        state = "clear"
        if col and col != "geom" and cols and col not in cols:
            state = "hidden"
        elif col in access.masks:
            state = "masked"
        out.append({"name": it["name"], "field": col, "data_type": it["data_type"],
                    "type_label": vocab.DATA_TYPE_NAMES.get(it["data_type"], it["data_type"]),
                    "length": it.get("length"), "state": state})
    return out


def _quality(version: dict[str, Any] | None) -> dict[str, Any] | None:
    """The load report's quality figures of the current version (no source paths, no
    example rows: those stay with the owner)."""
    report = (version or {}).get("report") or {}
    q = report.get("quality")
    if not q:
        return None
    return {"score": q.get("score"),
            "measures": [(k, q[k]) for k in ("completeness", "geometry_validity",
                                             "inside_extent", "key_uniqueness") if k in q],
            "warnings": len(report.get("warnings") or [])}


def freshness_state(conn: psycopg.Connection, row: dict[str, Any]) -> dict[str, Any] | None:
    """The resource's place on the supervision ladder today (fresh / due / overdue /
    delinquent) — ``supervision.freshness``'s answer; None where that package or its
    rules are not installed (the page then shows the cycle and the last update only)."""
    try:
        from supervision import freshness as sf
    except ImportError:
        return None
    try:
        with conn.transaction():
            states = sf.freshness(conn, clock.today(), row["owner_code"])
    except psycopg.Error:
        return None
    return next((s for s in states if s["resource"] == row["name"]), None)


def preview(conn: psycopg.Connection, row: dict[str, Any], access: Access,
            limit: int = PREVIEW_ROWS) -> dict[str, Any]:
    """The first rows of a table resource as the caller may have them (fields, masks and
    scope by ``AccessSQL``, as every way out)."""
    rules = AccessSQL(access, table_columns(row["table_name"]), geom=None)
    cols = [c for c in rules.columns() if c != "fid"]
    scope, params = rules.row_scope()
    schema, name = split_table(row["table_name"])
    query = sql.SQL("SELECT {cols} FROM {t} AS t{where} ORDER BY t.fid LIMIT {n}").format(
        cols=sql.SQL(", ").join(rules.select_list(cols)), t=sql.Identifier(schema, name),
        where=sql.SQL(" WHERE {}").format(scope) if scope is not None else sql.SQL(""),
        n=sql.Literal(limit))
    rows = conn.execute(query, params).fetchall() if cols else []
    labels = dict(row.get("field_labels") or {})
    return {"columns": [(c, labels.get(c) or c) for c in cols],
            "rows": [[r[c] for c in cols] for r in rows]}
