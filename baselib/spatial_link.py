"""Spatial link (空间关联): a legal person's registered address → county and town codes.

The address table is the framework's own region table (``public.region``: the GB/T 2260
county codes and the 9-digit town and street codes with their names). A registered
address written as the registers write it — ``江门市蓬江区棠下镇…路12号`` — names its town
(镇 / 街道); the town whose name appears in the address is the one, preferring a town
whose county's name appears too (two counties may have towns of one name) and the longer
name. Without a town the county named in the address gives the county code alone. An
address naming neither stays unlocated (NULL): counted, never guessed.

With the codes, "how many enterprises per town" is a region statistic
(:func:`per_region`), and a theme joins by them (``baselib.themes``).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

TOWN_KINDS = ("town", "street")
COUNTY_KINDS = ("district", "county_city", "county")


def locate_addresses(conn, table: str, address: str = "address") -> dict[str, int]:
    """Fill ``county_code`` and ``town_code`` of a library table from its addresses;
    returns how many rows got a town, a county only, nothing."""
    t = sql.Identifier(*table.split("."))
    a = sql.Identifier(address)
    conn.execute(sql.SQL(
        "CREATE TEMP TABLE _bl_towns ON COMMIT DROP AS SELECT r.code, r.name, r.parent_code, "
        "p.name AS county FROM region r JOIN region p ON p.code = r.parent_code AND "
        "p.valid_to IS NULL WHERE r.kind = ANY(%s) AND r.valid_to IS NULL"), (list(TOWN_KINDS),))
    conn.execute(sql.SQL(
        "UPDATE {t} x SET town_code = m.code, county_code = m.parent_code FROM (SELECT y.fid, "
        "(SELECT w.code FROM _bl_towns w WHERE strpos(y.{a}, w.name) > 0 ORDER BY "
        "(strpos(y.{a}, w.county) > 0) DESC, length(w.name) DESC, w.code LIMIT 1) AS code "
        "FROM {t} y WHERE y.{a} IS NOT NULL) s JOIN _bl_towns m ON m.code = s.code "
        "WHERE x.fid = s.fid").format(t=t, a=a))
    conn.execute(sql.SQL(
        "UPDATE {t} x SET county_code = (SELECT c.code FROM region c WHERE c.kind = ANY(%s) "
        "AND c.valid_to IS NULL AND strpos(x.{a}, c.name) > 0 ORDER BY length(c.name) DESC, "
        "c.code LIMIT 1) WHERE x.county_code IS NULL AND x.{a} IS NOT NULL").format(t=t, a=a),
        (list(COUNTY_KINDS),))
    row = conn.execute(sql.SQL(
        "SELECT count(*) FILTER (WHERE town_code IS NOT NULL), count(*) FILTER (WHERE "
        "town_code IS NULL AND county_code IS NOT NULL), count(*) FILTER (WHERE county_code "
        "IS NULL) FROM {t}").format(t=t)).fetchone()
    return {"town": row[0], "county_only": row[1], "unlocated": row[2]}


def per_region(conn, table: str, level: str = "town") -> list[dict[str, Any]]:
    """Records per town (or county) with the region's name: the region statistic."""
    col = sql.Identifier("town_code" if level == "town" else "county_code")
    return conn.cursor(row_factory=dict_row).execute(sql.SQL(
        "SELECT x.{c} AS code, r.name, count(*) AS n FROM {t} x LEFT JOIN region r ON "
        "r.code = x.{c} AND r.valid_to IS NULL GROUP BY x.{c}, r.name ORDER BY x.{c} "
        "NULLS LAST").format(c=col, t=sql.Identifier(*table.split(".")))).fetchall()
