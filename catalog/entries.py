"""The SQL of the catalog tables: read and search entries, write them, record history.

What a caller may list is the policy's answer (``layers.policy.catalog_filter``): this
module only applies it. The lifecycle (who may submit, review, publish) is in
:mod:`catalog.lifecycle`; the content rules in :mod:`catalog.content`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb

from catalog import search, vocab
from catalog.content import (
    ENTRY_FIELDS,
    CatalogError,
    Conflict,
    Problem,
    _diff,
    _jsonable,
    content_of,
    normalise,
    validate,
)
from layers import policy
from layers.policy import Caller


def _cur(conn: psycopg.Connection) -> psycopg.Cursor:
    return conn.cursor(row_factory=dict_row)


def actor_name(caller: Caller) -> str:
    return caller.name or caller.kind


# --------------------------------------------------------------------------- reading

_ENTRY_SELECT = (
    "SELECT e.*, d.code AS provider_code, d.name AS provider_name, d.uscc AS provider_uscc "
    "FROM catalog_entry e JOIN department d ON d.id = e.provider_dept_id ")


def _items(conn, entry_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in entry_ids}
    if not entry_ids:
        return out
    for r in _cur(conn).execute(
            "SELECT entry_id, name, data_type, length, sharing_type, field FROM catalog_item "
            "WHERE entry_id = ANY(%s) ORDER BY entry_id, position", (entry_ids,)):
        eid = r.pop("entry_id")
        out[eid].append(r)
    return out


def _finish(conn, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = _items(conn, [r["id"] for r in rows])
    for r in rows:
        r["items"] = items[r["id"]]
        r.pop("search_vec", None)
        r.pop("search_text", None)
        r["sharing_class"] = vocab.sharing_class(r["sharing_type"], r["is_open"])
    return rows


def get_entry(conn, entry_id: int | None = None, *, code: str | None = None,
              layer_name: str | None = None) -> dict[str, Any] | None:
    if entry_id is not None:
        where, arg = "e.id = %s", entry_id
    elif code is not None:
        where, arg = "e.code = %s", vocab.norm_key(code)
    else:
        where, arg = "e.layer_name = %s", layer_name
    row = _cur(conn).execute(_ENTRY_SELECT + "WHERE " + where, (arg,)).fetchone()
    return _finish(conn, [row])[0] if row else None



def entry_filter(caller: Caller) -> policy.SQLFilter:
    """Which entries the caller may list: the policy's filter over this module's columns
    (``e`` = catalog_entry, ``d`` = its provider department). :func:`catalog.lifecycle.
    visible` asks the policy the same question for one entry; a test holds the two
    together."""
    return policy.catalog_filter(caller, status="e.status", owner="d.code",
                                 is_open="e.is_open", sharing_type="e.sharing_type")


# the registry kind of an entry's resource (vector / raster / table), "entry" for one
# catalogued without data on the platform
KIND_SQL = "coalesce((SELECT l.kind FROM layer l WHERE l.name = e.layer_name), 'entry')"
KIND_LABELS = {"vector": "矢量图层", "raster": "栅格图层", "table": "数据表",
               "entry": "仅目录（数据不在平台）"}

FILTERS = {  # API filter name → (column, vocabulary to read a Chinese label)
    "class_code": ("e.class_code", vocab.CLASSES),
    "dept": ("d.code", None),
    "sharing_type": ("e.sharing_type", vocab.SHARING_TYPES),
    "format": ("e.format", vocab.FORMATS),
    "update_cycle": ("e.update_cycle", vocab.UPDATE_CYCLES),
    "status": ("e.status", None),
    "code": ("e.code", None),
    "category": ("e.category_code", None),  # 目: a layer's theme (catalog.sync)
    "kind": (KIND_SQL, None),
}
# facet → (value, label) SQL: what a search page offers to narrow by, with counts
FACETS = {
    "category": ("e.category_code", "max(e.category_name)"),
    "dept": ("d.code", "max(d.name)"),
    "format": ("e.format", None),
    "update_cycle": ("e.update_cycle", None),
    "kind": (KIND_SQL, None),
}


def _conditions(caller: Caller, filters: dict[str, str | None] | None, open_only: bool,
                bbox: tuple[float, float, float, float] | None = None,
                published_between: tuple[Any, Any] | None = None,
                ) -> tuple[list[str], list[Any]]:
    """The WHERE conditions (and parameters) of a listing: the policy's visibility first,
    then the filters — shared by :func:`list_entries` and :func:`facet_counts`."""
    vis = entry_filter(caller)
    where, args = [vis.sql], list(vis.params)
    if bbox is not None:
        where.append("e.extent IS NOT NULL AND e.extent[1] <= %s AND e.extent[3] >= %s "
                     "AND e.extent[2] <= %s AND e.extent[4] >= %s")
        args += [bbox[2], bbox[0], bbox[3], bbox[1]]
    if published_between is not None:
        lo, hi = published_between
        if lo is not None:
            where.append("e.publish_date >= %s")
            args.append(lo)
        if hi is not None:
            where.append("e.publish_date <= %s")
            args.append(hi)
    for key, value in (filters or {}).items():
        if value in (None, ""):
            continue
        col, vv = FILTERS[key]
        if vv is not None:
            value = vv.parse(value) or value
        where.append(f"{col} = %s")
        args.append(value)
    if open_only:
        where.append("e.is_open AND e.sharing_type = 'unconditional'")
    return where, args


def list_entries(conn, caller: Caller, *, q: str | None = None,
                 filters: dict[str, str | None] | None = None, open_only: bool = False,
                 limit: int = 50, offset: int = 0, sort: str | None = None,
                 bbox: tuple[float, float, float, float] | None = None,
                 published_between: tuple[Any, Any] | None = None,
                 ) -> tuple[list[dict[str, Any]], int]:
    """Entries the caller may see, filtered and (with ``q``) ranked; and the total.
    ``bbox`` (lon/lat) keeps entries whose extent intersects it."""
    where, args = _conditions(caller, filters, open_only, bbox, published_between)
    rank_sql, rank_args, order = "0", [], "e.code"
    if sort in ("name", "-name", "updated", "-updated", "code", "-code", "publish_date",
                "-publish_date"):
        col = {"name": "e.name", "updated": "e.updated_at", "code": "e.code",
               "publish_date": "e.publish_date"}[sort.lstrip("-")]
        order = f"{col} {'DESC' if sort.startswith('-') else 'ASC'} NULLS LAST, e.code"
    tsq = search.build_query(q) if q else None
    if q and tsq is None:
        return [], 0
    base_where, base_args = list(where), list(args)
    if tsq is not None:
        qn = vocab.clean_text(q)
        where.append("e.search_vec @@ %s::tsquery")
        args.append(tsq)
        rank_sql = ("(CASE WHEN e.name = %s THEN 4 WHEN e.name LIKE %s THEN 3 "
                    "WHEN e.name LIKE %s THEN 2 ELSE 0 END + "
                    "ts_rank('{0.1, 0.2, 0.4, 1.0}', e.search_vec, %s::tsquery))")
        like = qn.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rank_args = [qn, like + "%", "%" + like + "%", tsq]
        if sort is None:
            order = "rank DESC, length(e.name), e.code"
    sql_where = " AND ".join(where)
    total = _cur(conn).execute(
        "SELECT count(*) AS n FROM catalog_entry e JOIN department d "
        f"ON d.id = e.provider_dept_id WHERE {sql_where}", args).fetchone()["n"]
    rows = _cur(conn).execute(
        f"SELECT e.*, d.code AS provider_code, d.name AS provider_name, "
        f"d.uscc AS provider_uscc, {rank_sql} AS rank FROM catalog_entry e "
        f"JOIN department d ON d.id = e.provider_dept_id WHERE {sql_where} "
        f"ORDER BY {order} LIMIT %s OFFSET %s",
        [*rank_args, *args, limit, offset]).fetchall()
    if tsq is not None and total == 0 and len(vocab.clean_text(q)) >= 3:
        return _fuzzy(conn, vocab.clean_text(q), base_where, base_args, limit, offset)
    return _finish(conn, rows), total


def facet_counts(conn, caller: Caller, *, q: str | None = None,
                 filters: dict[str, str | None] | None = None, open_only: bool = False,
                 fuzzy: bool = False) -> dict[str, list[dict[str, Any]]]:
    """For each of :data:`FACETS`: its values among the entries the caller may see that
    match ``q`` and the *other* filters, with counts (``{"value", "label", "count"}``,
    most first) — so choosing a value shows what else the same search holds. ``fuzzy``:
    the listing fell back to similar names (:func:`_fuzzy`); count those."""
    out: dict[str, list[dict[str, Any]]] = {}
    tsq = search.build_query(q) if q else None
    if q and tsq is None:
        return {f: [] for f in FACETS}
    for facet, (value_sql, label_sql) in FACETS.items():
        others = {k: v for k, v in (filters or {}).items() if k != facet}
        where, args = _conditions(caller, others, open_only)
        if fuzzy and q:
            where.append("e.name %% %s")
            args.append(vocab.clean_text(q))
        elif tsq is not None:
            where.append("e.search_vec @@ %s::tsquery")
            args.append(tsq)
        rows = _cur(conn).execute(
            f"SELECT {value_sql} AS value, {label_sql or 'NULL'} AS label, count(*) AS n "
            "FROM catalog_entry e JOIN department d ON d.id = e.provider_dept_id "
            f"WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 3 DESC, 1", args).fetchall()
        out[facet] = [{"value": r["value"], "label": r["label"] or _facet_label(facet,
                                                                                r["value"]),
                       "count": r["n"]} for r in rows if r["value"] is not None]
    return out


def _facet_label(facet: str, value: str) -> str:
    if facet == "kind":
        return KIND_LABELS.get(value, value)
    vv = FILTERS[facet][1] or {"format": vocab.FORMATS,
                               "update_cycle": vocab.UPDATE_CYCLES}.get(facet)
    return vv.label(value) if vv is not None else value


def _fuzzy(conn, q: str, where: list[str], args: list[Any], limit: int,
           offset: int) -> tuple[list[dict[str, Any]], int]:
    """No exact hit: names similar by trigrams (a typo such as 道理中心线), marked
    ``match = "fuzzy"``; uses the pg_trgm GIN index on the name."""
    sql_where = " AND ".join([*where, "e.name %% %s"])
    total = _cur(conn).execute(
        "SELECT count(*) AS n FROM catalog_entry e JOIN department d "
        f"ON d.id = e.provider_dept_id WHERE {sql_where}", [*args, q]).fetchone()["n"]
    rows = _cur(conn).execute(
        "SELECT e.*, d.code AS provider_code, d.name AS provider_name, "
        "d.uscc AS provider_uscc, similarity(e.name, %s) AS rank FROM catalog_entry e "
        f"JOIN department d ON d.id = e.provider_dept_id WHERE {sql_where} "
        "ORDER BY rank DESC, e.code LIMIT %s OFFSET %s",
        [q, *args, q, limit, offset]).fetchall()
    for r in rows:
        r["match"] = "fuzzy"
    return _finish(conn, rows), total


def history(conn, entry_id: int) -> list[dict[str, Any]]:
    return _cur(conn).execute(
        "SELECT at, actor, dept_code, action, status_from, status_to, comment, changes "
        "FROM catalog_history WHERE entry_id = %s ORDER BY at, id", (entry_id,)).fetchall()


# --------------------------------------------------------------------------- writing

def _dept(conn, code: str) -> dict[str, Any]:
    row = _cur(conn).execute("SELECT id, code, name, uscc FROM department WHERE code = %s",
                             (code,)).fetchone()
    if row is None:
        raise CatalogError(f"部门 {code!r} 不存在 / unknown department {code!r}",
                           [Problem("provider_code", f"提供方「{code}」未登记",
                                    f"unknown provider department {code!r}")])
    return row


def _lock(conn, key: str) -> None:
    k = int.from_bytes(hashlib.sha1(f"jmgeo.catalog:{key}".encode()).digest()[:8], "big",
                       signed=True)
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (k,))


def _vector(content: dict[str, Any], provider_name: str) -> tuple[str, str]:
    items = " ".join(it.get("name") or "" for it in content.get("items") or [])
    classes = " ".join(x or "" for x in (content.get("item_name"),
                                         content.get("category_name"),
                                         content.get("subcategory_name")))
    parts = [("A", content.get("name") or ""), ("A", (content.get("code") or "")
                                                  .replace("/", " ")),
             ("B", items), ("C", content.get("abstract") or ""), ("C", classes),
             ("C", vocab.FORMATS.label(content.get("format"))), ("D", provider_name)]
    return search.build_vector(parts), search.search_text(parts)


def _next_seq(conn, prefix: str) -> int:
    _lock(conn, "code:" + prefix)
    row = conn.execute("SELECT coalesce(max(code_seq), 0) + 1 FROM catalog_entry "
                       "WHERE code_prefix = %s", (prefix,)).fetchone()
    return int(row[0] if not isinstance(row, dict) else next(iter(row.values())))


def _check_unique(conn, content: dict[str, Any], dept_id: int,
                  entry_id: int | None) -> list[Problem]:
    p = []
    row = _cur(conn).execute(
        "SELECT id, code FROM catalog_entry WHERE provider_dept_id = %s AND name = %s "
        "AND status <> 'retired' AND id IS DISTINCT FROM %s",
        (dept_id, content["name"], entry_id)).fetchone()
    if row:
        p.append(Problem("name", f"本部门已有同名信息资源「{content['name']}」（{row['code']}）",
                         f"the department already has a resource named {content['name']!r}"))
    if content.get("code"):
        row = _cur(conn).execute(
            "SELECT e.id, e.name, d.name AS dept FROM catalog_entry e JOIN department d "
            "ON d.id = e.provider_dept_id WHERE e.code = %s AND e.id IS DISTINCT FROM %s",
            (vocab.norm_key(content["code"]), entry_id)).fetchone()
        if row:
            p.append(Problem("code", f"信息资源代码「{content['code']}」已被「{row['name']}」"
                                     f"（{row['dept']}）使用",
                             f"resource code {content['code']} is already used"))
    return p


def _write_items(conn, entry_id: int, content: dict[str, Any]) -> None:
    conn.execute("DELETE FROM catalog_item WHERE entry_id = %s", (entry_id,))
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.executemany(
            "INSERT INTO catalog_item (entry_id, position, name, data_type, length, "
            "sharing_type, field) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(entry_id, i + 1, it["name"], it["data_type"], it.get("length") or None,
              it.get("sharing_type") or content["sharing_type"], it.get("field"))
             for i, it in enumerate(content["items"])])


def record_history(conn, entry_id: int, caller: Caller, action: str, status_from: str | None,
            status_to: str | None, comment: str | None = None,
            changes: dict[str, Any] | None = None) -> None:
    conn.execute(
        "INSERT INTO catalog_history (entry_id, actor, dept_code, action, status_from, "
        "status_to, comment, changes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (entry_id, actor_name(caller), caller.dept_code, action, status_from, status_to,
         comment, Jsonb(changes or {})))



def save(conn, content: dict[str, Any], caller: Caller, *, entry_id: int | None = None,
         status: str | None = None, action: str | None = None,
         layer: dict[str, Any] | None = None) -> tuple[int, str]:
    """Create (``entry_id`` None) or update an entry from validated content, in one
    transaction; returns (id, what happened: created | updated | unchanged). A writer
    racing this one for the same name or code gets :class:`Conflict`, not a crash."""
    try:
        return _save(conn, content, caller, entry_id=entry_id, status=status,
                     action=action, layer=layer)
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict("信息资源名称或代码已被同时提交的另一条目占用，请重试 / the name or code "
                       "was taken by a concurrent write: retry",
                       [Problem("name", "名称或代码重复", "duplicate name or code")]) from exc


def _save(conn, content: dict[str, Any], caller: Caller, *, entry_id: int | None,
          status: str | None, action: str | None,
          layer: dict[str, Any] | None) -> tuple[int, str]:
    content = normalise(content)
    problems = validate(conn, content)
    if problems:
        raise CatalogError("信息资源校验未通过 / the entry is not valid", problems)
    with conn.transaction():
        dept = _dept(conn, content["provider_code"])
        problems = _check_unique(conn, content, dept["id"], entry_id)
        if problems:
            raise Conflict("信息资源名称或代码重复 / duplicate name or code", problems)
        prefix = vocab.classification_prefix(content["class_code"], content["item_code"],
                                             content["category_code"],
                                             content.get("subcategory_code"))
        old = get_entry(conn, entry_id) if entry_id is not None else None
        if old is not None and not content.get("code"):
            old_prefix = old["code_prefix"]
            content["code"] = old["code"] if old_prefix == prefix else None
        if content.get("code"):
            prefix, seq = vocab.parse_code(content["code"])
        else:
            seq = _next_seq(conn, prefix)
            content["code"] = vocab.format_code(prefix, seq)
        vec, text = _vector(content, dept["name"])
        cols = {f: content[f] for f in ENTRY_FIELDS if f != "provider_code"}
        cols.update(code=content["code"], code_prefix=prefix, code_seq=seq,
                    provider_dept_id=dept["id"], search_text=text,
                    updated_by=actor_name(caller))
        if layer:
            cols.update(layer)
        if old is None:
            cols.update(status=status or "draft", created_by=actor_name(caller))
            names = list(cols)
            row = conn.execute(
                f"INSERT INTO catalog_entry ({', '.join(names)}, search_vec) VALUES "
                f"({', '.join(['%s'] * len(names))}, %s::tsvector) RETURNING id",
                [*cols.values(), vec]).fetchone()
            new_id = row["id"] if isinstance(row, dict) else row[0]
            _write_items(conn, new_id, content)
            record_history(conn, new_id, caller, action or "create", None, cols["status"],
                    changes={"code": content["code"]})
            return new_id, "created"
        fields = {it["name"]: it.get("field") for it in old["items"]}
        for it in content["items"]:  # a sheet or a form does not carry the column names
            if it.get("field") is None:
                it["field"] = fields.get(it["name"])
        changes = _diff(content_of(old), content)
        if layer:
            for k, v in layer.items():
                if old.get(k) != v and k != "extent":
                    changes[k] = [_jsonable(old.get(k)), _jsonable(v)]
        new_status = status or old["status"]
        if not changes and new_status == old["status"]:
            return old["id"], "unchanged"
        cols["status"] = new_status
        conn.execute(
            f"UPDATE catalog_entry SET {', '.join(f'{k} = %s' for k in cols)}, "
            "search_vec = %s::tsvector, updated_at = now() WHERE id = %s",
            [*cols.values(), vec, old["id"]])
        _write_items(conn, old["id"], content)
        record_history(conn, old["id"], caller, action or "edit", old["status"], new_status,
                changes=changes)
        return old["id"], "updated"

