"""An entry's content and the national metadata rules it must keep.

An entry's *content* is a plain dict (see :data:`CONTENT_FIELDS`) — what a department
fills in on the survey sheet or posts to the API. :func:`validate` checks it against the
national rules and returns every problem, each tied to its field (and data item), so
the Excel import can point at the cell and the API at the JSON member; :func:`normalise`
fills defaults the same way for every source. The errors the catalog raises live here
too, beside the :class:`Problem` they carry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from catalog import vocab
from jmgeo.errors import UserError

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


def content_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The comparable content of a stored entry (what a sheet row or a POST carries)."""
    c = {f: entry.get(f) for f in ENTRY_FIELDS}
    c["related_codes"] = list(entry.get("related_codes") or [])
    c["code"] = entry.get("code")
    c["items"] = [{f: it.get(f) for f in ITEM_FIELDS} for it in entry.get("items") or []]
    return c



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

