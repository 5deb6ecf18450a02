"""Spatial link (空间关联): an address → county and town codes — the registered address of
a legal person, the address (住址) of a person.

The address table is the framework's own region table (``public.region``: the GB/T 2260
county codes and the 9-digit town and street codes with their names). A registered
address written as the registers write it — ``江门市蓬江区棠下镇…路12号`` — names its town
(镇 / 街道); the town whose name appears in the address is the one, preferring a town
whose county's name appears too (two counties may have towns of one name) and the longer
name. Without a town the county named in the address gives the county code alone. An
address naming neither stays unlocated (NULL): counted, never guessed.

Two passes, so a million persons cost one regular expression and one hash join each,
not a scan of every town per row: first the address as the registers write it
(``[广东省][江门市]<county><town>…``) is split by a regular expression and joined on the
(county, town) pair; only the rows that did not split that way take the search above.

With the codes, "how many enterprises (persons) per town" is a region statistic
(:func:`per_region`), and a theme joins by them (``baselib.themes``). A person's codes
are part of a private address: the library masks them like the address (only the
counts per region are shown to everybody who may read the library).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

TOWN_KINDS = ("town", "street")
COUNTY_KINDS = ("district", "county_city", "county")
# "[广东省][江门市]<county: 蓬江区 / 台山市 / …><town: 棠下镇 / 会城街道>…"
REGISTER_FORM = r"^(?:广东省)?(?:江门市)?(.{2,4}?[区市县])(.{1,6}?(?:镇|街道))"


def prepare_towns(conn) -> None:
    """``_bl_towns``: the towns and streets in force, with their county's name (once per
    transaction)."""
    if conn.execute("SELECT to_regclass('pg_temp._bl_towns')").fetchone()[0]:
        return
    conn.execute(sql.SQL(
        "CREATE TEMP TABLE _bl_towns ON COMMIT DROP AS SELECT r.code, r.name, r.parent_code, "
        "p.name AS county FROM region r JOIN region p ON p.code = r.parent_code AND "
        "p.valid_to IS NULL WHERE r.kind = ANY(%s) AND r.valid_to IS NULL"), (list(TOWN_KINDS),))
    conn.execute("CREATE UNIQUE INDEX ON _bl_towns (county, name)")


def register_form_join(address: sql.Composable) -> tuple[sql.Composable, sql.Composable,
                                                         sql.Composable]:
    """The first pass as part of a query (after :func:`prepare_towns`): a join clause on
    ``address`` split in the register form, and the town and county code it gives —
    so a table being written gets its codes as it is written, not by a second pass
    rewriting every row."""
    join = sql.SQL("LEFT JOIN LATERAL (SELECT regexp_match({a}, {re}) AS m) _rf ON true "
                   "LEFT JOIN _bl_towns _rw ON _rw.county = _rf.m[1] AND "
                   "_rw.name = _rf.m[2]").format(a=address, re=sql.Literal(REGISTER_FORM))
    return join, sql.SQL("_rw.code"), sql.SQL("_rw.parent_code")


def locate_addresses(conn, table: str, address: str = "address") -> dict[str, int]:
    """The passes after the register form (which :func:`register_form_join` did as the
    table was written): the town named anywhere in the address, else the county alone;
    returns how many rows got a town, a county only, nothing."""
    t = sql.Identifier(*table.split("."))
    a = sql.Identifier(address)
    prepare_towns(conn)
    conn.execute(sql.SQL(
        "UPDATE {t} x SET town_code = m.code, county_code = m.parent_code FROM (SELECT y.fid, "
        "(SELECT w.code FROM _bl_towns w WHERE strpos(y.{a}, w.name) > 0 ORDER BY "
        "(strpos(y.{a}, w.county) > 0) DESC, length(w.name) DESC, w.code LIMIT 1) AS code "
        "FROM {t} y WHERE y.{a} IS NOT NULL AND y.town_code IS NULL) s JOIN _bl_towns m ON "
        "m.code = s.code WHERE x.fid = s.fid").format(t=t, a=a))
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
    """Records per town (or county) with the region's name: the region statistic (the
    unlocated as one row with a NULL code)."""
    col = sql.Identifier("town_code" if level == "town" else "county_code")
    return conn.cursor(row_factory=dict_row).execute(sql.SQL(
        "SELECT x.{c} AS code, r.name, count(*) AS n FROM {t} x LEFT JOIN region r ON "
        "r.code = x.{c} AND r.valid_to IS NULL GROUP BY x.{c}, r.name ORDER BY x.{c} "
        "NULLS LAST").format(c=col, t=sql.Identifier(*table.split(".")))).fetchall()
