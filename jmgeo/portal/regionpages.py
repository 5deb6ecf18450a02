"""What a region page (a county or town) shows: the region, its parent and children,
and for each layer whose data the caller may read, how many of its features lie there
— ``spatial.regions.region_stats`` within the caller's row scope, as ``GET
/regions/{code}/stats`` answers it."""

from __future__ import annotations

from typing import Any

import psycopg

from catalog import lifecycle, store
from jmgeo.ogc.access import table_columns
from layers import policy
from layers.access_sql import AccessSQL
from layers.policy import Caller
from spatial import regions


def region_index(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The city and its counties with their towns (the ``/regions`` tree)."""
    return regions.region_tree(conn)


def _find(tree: list[dict[str, Any]], code: str, parent=None):
    for node in tree:
        if node["code"] == code:
            return node, parent
        hit = _find(node["children"], code, node)
        if hit[0] is not None:
            return hit
    return None, None


def region_page(conn: psycopg.Connection, caller: Caller,
                code: str) -> dict[str, Any] | None:
    """The region ``code`` with its layers' figures (None: no such region). Each
    non-open layer counted is audited by the route (returned in ``audited``)."""
    node, parent = _find(regions.region_tree(conn), code)
    if node is None:
        return None
    feature = regions.region_feature(conn, code)
    layers, audited = [], []
    unbounded = False
    for row, access in policy.visible_layers(conn, caller):
        if row["kind"] != "vector":
            continue
        rules = AccessSQL(access, table_columns(row["table_name"]))
        scope, params = rules.row_scope(prefilter=True)
        try:
            with conn.transaction():
                stats = regions.region_stats(
                    conn, code, row["table_name"],
                    scope=None if scope is None else (scope, params))
        except ValueError:
            unbounded = True  # no boundary for this region (a town without a polygon)
            break
        if stats is None or not stats["totals"]["count"]:
            continue
        entry = store.get_entry(conn, layer_name=row["name"])
        layers.append({"name": row["name"], "title": row["title"],
                       "owner": row["owner_name"], "family": row.get("geometry_type"),
                       # linked only where the catalog's own rule lists the entry
                       "entry_id": entry["id"] if entry and lifecycle.visible(caller, entry)
                       else None, "totals": stats["totals"], "rows": stats["rows"]})
        if access.audited:
            audited.append((access, stats["totals"]["count"]))
    return {"region": node, "parent": parent, "bbox": (feature or {}).get("bbox"),
            "has_geometry": bool(feature and feature.get("geometry")), "layers": layers,
            "unbounded": unbounded, "audited": audited}
