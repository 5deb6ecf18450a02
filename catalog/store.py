"""The SQL of the catalog tables: write entries, run the lifecycle, record history, search.

An entry's *content* is a plain dict (see :data:`CONTENT_FIELDS`) — what a department
fills in on the survey sheet or posts to the API. :func:`validate` checks it against the
national rules and returns every problem, each tied to its field (and data item), so
the Excel import can point at the cell and the API at the JSON member.

Lifecycle: ``draft`` → submit → ``submitted`` → review (approve | return with reasons;
return sends it back to ``draft``) → publish (approved only) → ``published`` → retire →
``retired``. Every write records who and when in ``catalog_history``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb

from catalog import search, vocab
from jmgeo.errors import UserError
from layers import policy
from layers.policy import Caller

ENTRY_FIELDS = (
    "class_code", "item_code", "item_name", "category_code", "category_name",
    "subcategory_code", "subcategory_name", "name", "provider_code", "abstract", "format",
    "sharing_type", "sharing_condition", "sharing_method", "is_open", "open_condition",
    "update_cycle", "publish_date", "related_codes",
)
ITEM_FIELDS = ("name", "data_type", "length", "sharing_type", "field")
CONTENT_FIELDS = (*ENTRY_FIELDS, "code", "items")
REQUIRED = ("class_code", "item_code", "item_name", "category_code", "category_name", "name",
            "provider_code", "abstract", "format", "sharing_type", "sharing_method",
            "update_cycle")
FIELD_LABELS = {
    "class_code": "类", "item_code": "项", "item_name": "项", "category_code": "目",
    "category_name": "目", "subcategory_code": "细目", "subcategory_name": "细目",
    "name": "信息资源名称", "code": "信息资源代码", "provider_code": "信息资源提供方代码",
    "abstract": "信息资源摘要", "format": "信息资源格式", "sharing_type": "共享类型",
    "sharing_condition": "共享条件", "sharing_method": "共享方式", "is_open": "是否向社会开放",
    "open_condition": "开放条件", "update_cycle": "更新周期", "publish_date": "发布日期",
    "related_codes": "关联资源代码", "items": "信息项",
}
ITEM_LABELS = {"name": "信息项名称", "data_type": "数据类型", "length": "数据长度",
               "sharing_type": "信息项共享类型", "field": "字段"}


class CatalogError(UserError, ValueError):
    """A request the catalog refuses; ``errors`` lists every problem found."""

    status = 400

    def __init__(self, message: str, errors: list[Problem] | None = None):
        super().__init__(message)
        self.errors = errors or []


class NotFound(CatalogError):
    status = 404


class Forbidden(CatalogError):
    status = 403


class Conflict(CatalogError):
    status = 409


@dataclass(frozen=True)
class Problem:
    """One validation problem: which field (and data item), in Chinese and English."""

    field: str
    zh: str
    en: str
    item: int | None = None  # index into content["items"]

    def as_dict(self) -> dict[str, Any]:
        d = {"field": self.field, "message": f"{self.zh} / {self.en}"}
        if self.item is not None:
            d["item"] = self.item
        return d


def _cur(conn: psycopg.Connection) -> psycopg.Cursor:
    return conn.cursor(row_factory=dict_row)


def actor_name(caller: Caller) -> str:
    return caller.name or caller.kind


# ------------------------------------------------------------------------ validation

def validate(conn: psycopg.Connection | None, content: dict[str, Any]) -> list[Problem]:
    """Every rule of the national metadata that one entry's content breaks."""
    p: list[Problem] = []
    for f in REQUIRED:
        v = content.get(f)
        if v is None or (isinstance(v, str) and not v.strip()):
            p.append(Problem(f, f"{FIELD_LABELS[f]}为必填项", f"{f} is required"))
    cc = content.get("class_code")
    if cc and cc not in vocab.CLASSES.labels:
        p.append(Problem("class_code", f"类「{cc}」无效，应为1基础、2主题或3部门",
                         "class must be 1 (base), 2 (theme) or 3 (department)"))
    ic, cat, sub = content.get("item_code"), content.get("category_code"), \
        content.get("subcategory_code")
    if ic and not (isinstance(ic, str) and len(ic) == 2 and ic.isdigit()):
        p.append(Problem("item_code", f"项代码「{ic}」应为2位数字", "item code: 2 digits"))
    elif cc == "1" and ic and ic not in vocab.BASE_ITEMS:
        p.append(Problem("item_code", f"基础信息资源的项「{ic}」应为 " + "、".join(
            f"{k} {v}" for k, v in vocab.BASE_ITEMS.items()),
            "a base resource's item must be one of the five national base libraries"))
    if cat and not (isinstance(cat, str) and len(cat) == 3 and cat.isdigit()):
        p.append(Problem("category_code", f"目代码「{cat}」应为3位数字",
                         "category code: 3 digits"))
    if sub and not (isinstance(sub, str) and 1 <= len(sub) <= 6 and sub.isdigit()):
        p.append(Problem("subcategory_code", f"细目代码「{sub}」应为1–6位数字",
                         "sub-category code: 1–6 digits"))
    if sub and not (content.get("subcategory_name") or "").strip():
        p.append(Problem("subcategory_name", "细目须填写名称", "sub-category needs a name"))
    for f, vv in (("format", vocab.FORMATS), ("sharing_type", vocab.SHARING_TYPES),
                  ("sharing_method", vocab.SHARING_METHODS),
                  ("update_cycle", vocab.UPDATE_CYCLES)):
        v = content.get(f)
        if v and v not in vv.labels:
            p.append(Problem(f, f"{vv.name}「{v}」不在可选值中（{'、'.join(vv.choices)}）",
                             f"{vv.name_en} {v!r} is not one of the allowed values"))
    st = content.get("sharing_type")
    cond = (content.get("sharing_condition") or "").strip()
    if st == "conditional" and not cond:
        p.append(Problem("sharing_condition", "有条件共享必须填写共享条件",
                         "conditional sharing needs its sharing condition"))
    if st == "not_shared" and not cond:
        p.append(Problem("sharing_condition",
                         "不予共享必须在共享条件中注明法律、行政法规或国务院政策依据",
                         "not shared: state the legal basis in the sharing condition"))
    if content.get("is_open") and st and st != "unconditional":
        p.append(Problem("is_open", "向社会开放的信息资源其共享类型须为无条件共享",
                         "a resource open to the public must be shared unconditionally"))
    if (content.get("open_condition") or "").strip() and not content.get("is_open"):
        p.append(Problem("open_condition", "不向社会开放的信息资源不应填写开放条件",
                         "open condition given for a resource that is not open"))
    pd = content.get("publish_date")
    if pd is not None and not isinstance(pd, dt.date):
        p.append(Problem("publish_date", f"发布日期「{pd}」无效", "invalid publish date"))
    prefix = None
    try:
        if cc and ic and cat:
            prefix = vocab.classification_prefix(cc, ic, cat, sub or None)
    except vocab.CodeError:
        pass
    code = content.get("code")
    if code:
        try:
            cprefix, _ = vocab.parse_code(code)
            if prefix and cprefix != prefix:
                p.append(Problem("code", f"信息资源代码「{code}」的前段码 {cprefix} 与分类"
                                         f"（类/项/目/细目）应得的 {prefix} 不符",
                                 f"code prefix {cprefix} does not match the classification "
                                 f"{prefix}"))
        except vocab.CodeError as exc:
            zh, _, en = str(exc).partition(" / ")
            p.append(Problem("code", zh, en))
    for rc in content.get("related_codes") or []:
        try:
            vocab.parse_code(rc)
        except vocab.CodeError:
            p.append(Problem("related_codes", f"关联资源代码「{rc}」格式错误，应如 103001/000001",
                             f"malformed related resource code {rc!r}"))
    items = content.get("items") or []
    if not items:
        p.append(Problem("items", "至少须填写一个信息项", "at least one data item is required"))
    seen: dict[str, int] = {}
    for i, it in enumerate(items):
        name = (it.get("name") or "").strip()
        if not name:
            p.append(Problem("name", "信息项名称为必填项", "data item name is required", i))
        elif name in seen:
            p.append(Problem("name", f"信息项「{name}」重复（与第{seen[name] + 1}项同名）",
                             f"duplicate data item {name!r}", i))
        else:
            seen[name] = i
        t = it.get("data_type")
        if not t:
            p.append(Problem("data_type", "数据类型为必填项", "data type is required", i))
        elif t not in vocab.DATA_TYPES.labels:
            p.append(Problem("data_type", f"数据类型「{t}」应为 C N Y D T L M G B I F 之一",
                             "data type must be one of C N Y D T L M G B I F", i))
        ln = it.get("length")
        if ln:
            parts = str(ln).split(",")
            if not (1 <= len(parts) <= 2 and all(x.isdigit() and int(x) >= 0 for x in parts)
                    and int(parts[0]) > 0):
                p.append(Problem("length", f"数据长度「{ln}」应为正整数（数值型可写“18,2”）",
                                 "length must be a positive integer (or 18,2)", i))
        elif t in vocab.LENGTH_REQUIRED:
            p.append(Problem("length", f"{vocab.DATA_TYPE_NAMES[t]}（{t}）须填写数据长度",
                             f"type {t} needs a length", i))
        ist = it.get("sharing_type")
        if ist and ist not in vocab.SHARING_TYPES.labels:
            p.append(Problem("sharing_type", f"信息项共享类型「{ist}」不在可选值中",
                             "unknown item sharing type", i))
        elif ist and st in vocab.SHARING_RANK and \
                vocab.SHARING_RANK[ist] < vocab.SHARING_RANK[st]:
            p.append(Problem("sharing_type",
                             f"信息项共享类型（{vocab.SHARING_TYPES.label(ist)}）不能比信息资源"
                             f"（{vocab.SHARING_TYPES.label(st)}）更宽松",
                             "a data item cannot be shared more widely than its resource", i))
    return p


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


def content_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The comparable content of a stored entry (what a sheet row or a POST carries)."""
    c = {f: entry.get(f) for f in ENTRY_FIELDS}
    c["related_codes"] = list(entry.get("related_codes") or [])
    c["code"] = entry.get("code")
    c["items"] = [{f: it.get(f) for f in ITEM_FIELDS} for it in entry.get("items") or []]
    return c


def visibility_sql(caller: Caller) -> tuple[str, list[Any]]:
    """Which entries a caller may see in the catalog (metadata, never data).

    Published entries follow ``layers.policy.listed`` — the one sharing rule: every
    department sees every entry, anonymous callers and auditors only open ones. Beyond
    that, a department sees its own entries in every state, and the bureau (admin), who
    keeps the catalog and reviews it, sees all. :func:`visible` is the same rule for one
    entry, asking the policy itself; a test holds the two together.
    """
    if caller.kind == "admin":
        return "TRUE", []
    if caller.data_dept is not None:
        return "(e.status = 'published' OR d.code = %s)", [caller.data_dept]
    return ("(e.status = 'published' AND e.is_open AND e.sharing_type = 'unconditional')", [])


FILTERS = {  # API filter name → (column, vocabulary to read a Chinese label)
    "class_code": ("e.class_code", vocab.CLASSES),
    "dept": ("d.code", None),
    "sharing_type": ("e.sharing_type", vocab.SHARING_TYPES),
    "format": ("e.format", vocab.FORMATS),
    "update_cycle": ("e.update_cycle", vocab.UPDATE_CYCLES),
    "status": ("e.status", None),
}


def list_entries(conn, caller: Caller, *, q: str | None = None,
                 filters: dict[str, str | None] | None = None, open_only: bool = False,
                 limit: int = 50, offset: int = 0, sort: str | None = None,
                 bbox: tuple[float, float, float, float] | None = None,
                 published_between: tuple[Any, Any] | None = None,
                 ) -> tuple[list[dict[str, Any]], int]:
    """Entries the caller may see, filtered and (with ``q``) ranked; and the total.
    ``bbox`` (lon/lat) keeps entries whose extent intersects it."""
    vis, args = visibility_sql(caller)
    where = [vis]
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


def normalise(content: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults the same way for every source (sheet, API, layer sync)."""
    c = {f: content.get(f) for f in CONTENT_FIELDS}
    for f in ENTRY_FIELDS:
        if isinstance(c[f], str):
            c[f] = vocab.clean_text(c[f]) or None
    c["is_open"] = bool(c.get("is_open"))
    c["related_codes"] = [vocab.norm_key(x) for x in (c.get("related_codes") or []) if x]
    c["code"] = vocab.norm_key(c["code"]) if c.get("code") else None
    items = []
    for it in content.get("items") or []:
        d = {f: it.get(f) for f in ITEM_FIELDS}
        d["name"] = vocab.clean_text(d["name"]) or None
        d["length"] = vocab.norm_key(d["length"]) if d.get("length") not in (None, "") \
            else None
        d["sharing_type"] = d.get("sharing_type") or c.get("sharing_type")
        items.append(d)
    c["items"] = items
    if c.get("is_open") is False:
        c["open_condition"] = c.get("open_condition") or None
    return c


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for f in CONTENT_FIELDS:
        a, b = old.get(f), new.get(f)
        if f == "code" and not b:
            continue
        if a != b:
            out[f] = [_jsonable(a), _jsonable(b)]
    return out


def _jsonable(v):
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


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


# ------------------------------------------------------------------------- lifecycle

def _may_edit(caller: Caller, entry: dict[str, Any]) -> bool:
    return caller.kind == "admin" or (caller.data_dept is not None and
                                      caller.data_dept == entry["provider_code"])


def visible(caller: Caller, entry: dict[str, Any]) -> bool:
    """May the caller see this entry (see :func:`visibility_sql`)?"""
    if caller.kind == "admin":
        return True
    if caller.data_dept is not None and caller.data_dept == entry["provider_code"]:
        return True
    if entry["status"] != "published":
        return False
    return policy.listed(caller, {"name": entry.get("layer_name") or entry["code"],
                                  "sharing_class": entry["sharing_class"],
                                  "owner_code": entry["provider_code"],
                                  "sensitive_fields": {}})


def entry_for(conn, entry_id: int, caller: Caller) -> dict[str, Any]:
    entry = get_entry(conn, entry_id)
    if entry is None or not visible(caller, entry):
        raise NotFound(f"信息资源 {entry_id} 不存在 / no catalog entry {entry_id}")
    return entry


def create(conn, content: dict[str, Any], caller: Caller) -> int:
    """A department drafts an entry of its own; the bureau may draft for anyone."""
    if caller.kind != "admin":
        if not caller.is_department:
            raise Forbidden("只有部门或统筹局可以编目 / only departments and the bureau "
                            "may catalogue")
        if content.get("provider_code") not in (None, caller.dept_code):
            raise Forbidden("部门只能为本部门编目 / a department catalogues its own "
                            "resources only")
        content = {**content, "provider_code": caller.dept_code}
    entry_id, _ = save(conn, content, caller, status="draft", action="create")
    return entry_id


def edit(conn, entry_id: int, content: dict[str, Any], caller: Caller) -> str:
    """Edit a draft (the owner or the bureau); the bureau may also correct a submitted
    or published entry. Unchanged content records nothing."""
    entry = entry_for(conn, entry_id, caller)
    if not _may_edit(caller, entry):
        raise Forbidden("只能修改本部门的信息资源 / you may only edit your own entries")
    if entry["status"] == "retired" or (entry["status"] != "draft" and caller.kind != "admin"):
        raise Conflict(f"「{vocab.STATUSES[entry['status']]}」状态的信息资源不能由部门修改，"
                       "请联系统筹局退回 / only drafts can be edited by the department")
    merged = {**content_of(entry), **content}
    if caller.kind != "admin":
        merged["provider_code"] = entry["provider_code"]
    if "code" not in content:
        merged["code"] = entry["code"] if merged.get("class_code") == entry["class_code"] and \
            merged.get("item_code") == entry["item_code"] and \
            merged.get("category_code") == entry["category_code"] and \
            merged.get("subcategory_code") == entry["subcategory_code"] else None
    _, outcome = save(conn, merged, caller, entry_id=entry_id, action="edit")
    return outcome


TRANSITIONS = {  # action → (from statuses, to status, who)
    "submit": (("draft",), "submitted", "owner"),
    "approve": (("submitted",), "submitted", "admin"),
    "return": (("submitted",), "draft", "admin"),
    "publish": (("submitted",), "published", "admin"),
    "retire": (("published", "draft", "submitted"), "retired", "owner_or_admin"),
}


def transition(conn, entry_id: int, action: str, caller: Caller,
               comment: str | None = None) -> dict[str, Any]:
    if action not in TRANSITIONS:
        raise CatalogError(f"未知操作 {action!r} / unknown action {action!r}")
    sources, target, who = TRANSITIONS[action]
    with conn.transaction():
        _lock(conn, f"entry:{entry_id}")
        entry = entry_for(conn, entry_id, caller)
        owner = caller.data_dept is not None and caller.data_dept == entry["provider_code"]
        allowed = {"owner": owner or caller.kind == "admin", "admin": caller.kind == "admin",
                   "owner_or_admin": owner or caller.kind == "admin"}[who]
        if not allowed:
            raise Forbidden("无权执行该操作：审核与发布由市网信统筹局负责 / not allowed: "
                            "review and publication are the bureau's" if who == "admin" else
                            "只能操作本部门的信息资源 / only the owner department may do this")
        if entry["status"] not in sources:
            raise Conflict(f"「{vocab.STATUSES[entry['status']]}」状态不能{_ACTION_ZH[action]} / "
                           f"cannot {action} an entry that is {entry['status']}")
        sets = {"status": target}
        if action == "return":
            if not (comment or "").strip():
                raise CatalogError("退回须说明理由 / a return needs its reasons",
                                   [Problem("comment", "退回须说明理由", "reasons required")])
            sets.update(review_state="returned", review_comment=comment,
                        reviewed_by=actor_name(caller))
        elif action == "approve":
            sets.update(review_state="approved", review_comment=comment,
                        reviewed_by=actor_name(caller))
        elif action == "submit":
            sets.update(review_state=None, review_comment=None, reviewed_by=None)
        elif action == "publish":
            if entry.get("review_state") != "approved":
                raise Conflict("须先审核通过才能发布 / approve the entry before publishing it")
            if entry.get("publish_date") is None:
                sets["publish_date"] = dt.date.today()
        assign = ", ".join(f"{k} = %s" for k in sets)
        extra = ", reviewed_at = now()" if action in ("approve", "return") else ""
        conn.execute(f"UPDATE catalog_entry SET {assign}{extra}, updated_at = now(), "
                     "updated_by = %s WHERE id = %s",
                     [*sets.values(), actor_name(caller), entry_id])
        record_history(conn, entry_id, caller, action, entry["status"], target, comment)
    return get_entry(conn, entry_id)


_ACTION_ZH = {"submit": "报送", "approve": "审核通过", "return": "退回", "publish": "发布",
              "retire": "撤销"}
