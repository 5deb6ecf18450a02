"""How sensitive fields are masked in SQL (ID numbers, phone numbers, private names).

The policy decides *whether* a field is masked; this module only says *how*, as SQL
expressions, so masking happens in PostGIS and the clear value never reaches Python.
"""

from __future__ import annotations

from psycopg import sql

MASK_KINDS = ("id_number", "phone", "person_name", "full")


def mask_expression(kind: str, column: sql.Composable) -> sql.Composable:
    """SQL that masks ``column`` (text): 4407**********4512, 138****1234, 陈*明, ****."""
    col = sql.SQL("({})::text").format(column)
    if kind == "id_number":  # keep the first 4 and the last 4 characters
        return sql.SQL(
            "CASE WHEN length({c}) > 8 THEN left({c}, 4) || repeat('*', length({c}) - 8)"
            " || right({c}, 4) ELSE repeat('*', length({c})) END").format(c=col)
    if kind == "phone":  # keep the first 3 and the last 4 digits
        return sql.SQL(
            "CASE WHEN length({c}) > 7 THEN left({c}, 3) || repeat('*', length({c}) - 7)"
            " || right({c}, 4) ELSE repeat('*', length({c})) END").format(c=col)
    if kind == "person_name":  # keep the surname character and, for 3+, the last one
        return sql.SQL(
            "CASE WHEN length({c}) <= 1 THEN {c} WHEN length({c}) = 2 THEN left({c}, 1) || '*'"
            " ELSE left({c}, 1) || repeat('*', length({c}) - 2) || right({c}, 1) END"
        ).format(c=col)
    return sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE '****' END").format(c=col)
