"""The declared key column: checked on the staged table, and the diff between versions.

A key must be present in every record and unique. The check runs in SQL on the staging
table (one GROUP BY, no per-row Python); refusals name the records by the row a person
finds in the file — the CSV line or sheet row for a table (``row_offset`` says how
records map to rows), the feature number for a layer — the first 20 of them, and the
transaction is rolled back, so nothing is stored.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from layers import changes, registry
from loaders.errors import LoaderError

SHOWN = 20  # rows named in a refusal


def _rows(fids: list[int], offset: int) -> str:
    return ", ".join(str(f + offset) for f in fids)


def check_key(conn: psycopg.Connection, table: str, key_col: str, key: str, display: str,
              *, row_offset: int = 0, is_table: bool = False) -> dict[str, Any]:
    """Refuse empty or duplicate keys naming their rows; returns the report's key part."""
    t = sql.Identifier(*table.split(".", 1))
    k = sql.Identifier(key_col)
    nulls, null_fids = conn.execute(sql.SQL(
        "SELECT count(*), (array_agg(fid ORDER BY fid))[1:{n}] FROM {t} WHERE {k} IS NULL"
    ).format(t=t, k=k, n=sql.Literal(SHOWN))).fetchone()
    dups = conn.execute(sql.SQL(
        "SELECT {k}::text, count(*), (array_agg(fid ORDER BY fid))[1:{n}], count(*) OVER () "
        "FROM {t} WHERE {k} IS NOT NULL GROUP BY {k} HAVING count(*) > 1 "
        "ORDER BY min(fid) LIMIT {n}").format(k=k, t=t, n=sql.Literal(SHOWN))).fetchall()
    if not nulls and not dups:
        return {"field": key, "column": key_col, "duplicates": 0, "nulls": 0}
    row_zh, row_en = ("行", "rows") if is_table else ("个要素", "features")
    shown, groups_zh, groups_en = 0, [], []
    for value, n, fids, _ in dups:
        fids = fids[:max(SHOWN - shown, 1)]
        shown += len(fids)
        groups_zh.append(f"{value!r}×{n}（第 {_rows(fids, row_offset)} {row_zh}）")
        groups_en.append(f"{value!r}×{n} ({row_en} {_rows(fids, row_offset)})")
        if shown >= SHOWN:
            break
    n_dup = dups[0][3] if dups else 0
    parts_zh, parts_en = [], []
    if dups:
        parts_zh.append(f"{n_dup} 个键值重复：{'；'.join(groups_zh)}")
        parts_en.append(f"{n_dup} duplicated values: {'; '.join(groups_en)}")
    if nulls:
        parts_zh.append(f"{nulls} 个为空（第 {_rows(null_fids, row_offset)} {row_zh}）")
        parts_en.append(f"{nulls} empty ({row_en} {_rows(null_fids, row_offset)})")
    more = nulls > SHOWN or n_dup > len(groups_zh)
    raise LoaderError(
        "key_not_unique" if dups else "key_empty",
        f"键字段 {key} 不唯一或有空值：{'；'.join(parts_zh)}{'（仅列出前20个）' if more else ''}，"
        "未装载任何数据",
        f"the key field {key} must be unique and filled: {'; '.join(parts_en)}"
        f"{' (first 20 shown)' if more else ''}; nothing was stored", file=display,
        fix_zh=f"在文件中修正这些{row_zh}的 {key} 后重新装载，或换一个唯一的字段作 --key",
        fix_en=f"correct {key} in those {row_en} of the file and load again, or choose a "
        "unique --key")


def key_diff(conn: psycopg.Connection, layer: str, table: str,
             key_col: str) -> dict[str, Any] | None:
    """Records added, removed and changed (by key) against the current version — a dry
    run's report (a real load records them once, at publish: ``layers.changes``)."""
    row = conn.execute(
        "SELECT v.table_name, v.version FROM layer l JOIN layer_version v ON v.layer_id = l.id "
        "AND v.version = l.current_version WHERE l.name = %s AND to_regclass(v.table_name) "
        "IS NOT NULL", (layer,)).fetchone()
    if row is None:
        return None
    old, old_version = row
    if key_col not in registry.table_columns(conn, old):
        return {"against_version": old_version, "note": "previous version has no such key"}
    return {"against_version": old_version, **changes.diff_counts(conn, old, table, key_col)}
