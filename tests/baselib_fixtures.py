"""Helpers of the base-library tests: small source tables, a clean library configuration.

The libraries (``persons``, ``legal_persons``) are global names in a session database, so
each test module starts by retiring every source of the library it integrates
(:func:`reset_sources`) and names its own source resources with its own prefix.
"""

from __future__ import annotations

from datetime import date

from layers.identifiers import make_ric, make_uscc


def ric(i: int, region: str = "440703", born: date = date(1985, 6, 1)) -> str:
    return make_ric(region, born, i)


def uscc(i: int, region: str = "440703") -> str:
    return make_uscc("91", region, f"MA{i:06d}")


def setup(conn) -> None:
    from baselib import libraries
    from baselib.demo import ensure_baselib_departments

    ensure_baselib_departments(conn)
    from layers.departments import ensure_departments
    from layers.identity import DEMO_EXTRA_DEPARTMENTS

    ensure_departments(conn, DEMO_EXTRA_DEPARTMENTS)
    for lib in libraries.LIBRARIES:
        libraries.ensure_default_authorities(conn, lib)


def reset_sources(conn, library: str) -> None:
    conn.execute("UPDATE baselib_source SET active = false WHERE library = %s", (library,))


def current_version(conn, name: str) -> int | None:
    row = conn.execute("SELECT current_version FROM layer WHERE name = %s", (name,)).fetchone()
    return row[0] if row else None


def golden(conn, library: str) -> dict[str, dict]:
    from psycopg.rows import dict_row

    table = conn.execute(
        "SELECT v.table_name FROM layer l JOIN layer_version v ON v.layer_id = l.id AND "
        "v.version = l.current_version WHERE l.name = %s", (library,)).fetchone()[0]
    key = "id_number" if library == "persons" else "uscc"
    rows = conn.cursor(row_factory=dict_row).execute(f"SELECT * FROM {table}").fetchall()
    return {r[key]: r for r in rows}
