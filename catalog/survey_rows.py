"""One resource of the survey sheet: its cells' values → an entry's content.

A resource spans several sheet rows (one per data item, its own cells merged down).
:func:`group_content` reads the values a person typed ("03 自然资源和空间地理", "18,2",
"2024年3月1日", the provider's USCC) into the content dict :mod:`catalog.content`
validates, reporting every problem by cell; :func:`check_against_catalog` checks names
and codes against the entries already catalogued.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from psycopg.rows import dict_row, tuple_row

from catalog import vocab
from catalog.sheet import (
    COL_BY_KEY,
    PART_WIDTH,
)
from catalog.vocab import clean_text, norm_key
from layers.departments import InvalidUSCC, validate_uscc


def is_blank(v) -> bool:
    return v is None or (isinstance(v, str) and not clean_text(v))


def _part(v, key: str) -> tuple[str | None, str | None, str | None]:
    """(code, name, error) for 项/目/细目; an int typed for a code is zero-padded."""
    if is_blank(v):
        return None, None, None
    if isinstance(v, int | float) and float(v).is_integer():
        return str(int(v)).zfill(PART_WIDTH.get(key, 1)), None, None
    got = vocab.split_part(v)
    if got is None:
        return None, None, f"应写作“代码 名称”，如“{_example(key)}”"
    code, name = got
    if key in PART_WIDTH and len(code) < PART_WIDTH[key]:
        code = code.zfill(PART_WIDTH[key])
    return code, name or None, None


def _example(key: str) -> str:
    return {"item": "03 自然资源和空间地理", "category": "001 基础地理",
            "subcategory": "01 道路"}.get(key, "1 基础信息资源")


def _length(v) -> str | None:
    if is_blank(v):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    text = unicodedata.normalize("NFKC", str(v)).replace(" ", "")
    return text


DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d")


def _date(v) -> tuple[dt.date | None, bool]:
    if is_blank(v):
        return None, True
    if isinstance(v, dt.datetime):
        return v.date(), True
    if isinstance(v, dt.date):
        return v, True
    text = norm_key(v)
    for f in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, f).date(), True
        except ValueError:
            continue
    return None, False


def _codes(v) -> list[str]:
    if is_blank(v):
        return []
    text = unicodedata.normalize("NFKC", str(v))
    return [x for x in re.split(r"[;,、\s]+", text) if x]


@dataclass
class ResourceRows:
    """One resource of the sheet: its own values (and the row each came from), then its
    data items' rows."""

    top: int  # sheet row of the resource's first row
    values: dict[str, Any]
    rows: dict[str, int]  # entry key → row its value came from
    items: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def departments_by_uscc(conn) -> dict[str, dict[str, Any]]:
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT code, name, uscc FROM department").fetchall()
    return {r["uscc"]: r for r in rows if r["uscc"]}


def group_content(g: ResourceRows, err, depts) -> tuple[dict[str, Any], set]:
    """The content of one resource's rows, and the columns already reported as wrong."""
    v, rows = g.values, g.rows
    bad: set = set()

    def fail(row: int, key: str, zh: str, en: str) -> None:
        bad.add(key if COL_BY_KEY[key].level == "entry" else (row, key))
        err(row, key, zh, en)

    c: dict[str, Any] = {}
    for key, cv in (("class", vocab.CLASSES), ("format", vocab.FORMATS),
                    ("sharing_type", vocab.SHARING_TYPES),
                    ("sharing_method", vocab.SHARING_METHODS), ("is_open", vocab.OPEN),
                    ("update_cycle", vocab.UPDATE_CYCLES)):
        raw = v.get(key)
        if is_blank(raw):
            c[key] = None
            if key == "is_open":
                fail(rows[key], key, "是否向社会开放为必填项（是/否）", "open to the public: yes or no")
            continue
        if isinstance(raw, int | float) and key == "class":
            raw = str(int(raw))
        parsed = cv.parse(raw)
        if parsed is None:
            fail(rows[key], key, f"「{raw}」不在可选值中（{'、'.join(cv.choices)}）",
                f"{raw!r} is not an allowed {cv.name_en}")
        c[key] = parsed
    parts = {}
    for key in ("item", "category", "subcategory"):
        code, name, problem = _part(v.get(key), key)
        if problem:
            fail(rows[key], key, f"「{v.get(key)}」{problem}",
                f"write the code then the name, e.g. {_example(key)!r}")
        parts[key] = (code, name)
    item_code, item_name = parts["item"]
    if c["class"] == "1" and item_code in vocab.BASE_ITEMS:
        if item_name and item_name != vocab.BASE_ITEMS[item_code]:
            fail(rows["item"], "item", f"基础信息资源的项 {item_code} 应为“"
                f"{vocab.BASE_ITEMS[item_code]}”，不是“{item_name}”",
                f"base item {item_code} is {vocab.BASE_ITEMS[item_code]!r}")
        item_name = vocab.BASE_ITEMS[item_code]
    pub, date_ok = _date(v.get("publish_date"))
    if not date_ok:
        fail(rows["publish_date"], "publish_date",
            f"发布日期「{v.get('publish_date')}」无法识别，请写作 2024-01-31",
            "unreadable publish date: use YYYY-MM-DD")
    provider_code = None
    uscc_raw = v.get("uscc")
    if not is_blank(uscc_raw):
        try:
            uscc = validate_uscc(norm_key(uscc_raw))
        except InvalidUSCC as exc:
            zh, _, en = str(exc).partition(" / ")
            fail(rows["uscc"], "uscc", zh, en)
        else:
            if depts is not None:
                d = depts.get(uscc)
                if d is None:
                    fail(rows["uscc"], "uscc", f"统一社会信用代码 {uscc} 对应的部门未在平台登记",
                        f"no registered department has the USCC {uscc}")
                else:
                    provider_code = d["code"]
                    pname = v.get("provider")
                    if not is_blank(pname) and norm_key(pname) != norm_key(d["name"]):
                        fail(rows["provider"], "provider",
                            f"提供方「{pname}」与统一社会信用代码 {uscc} 登记的“{d['name']}”不符",
                            f"provider name does not match the department registered under "
                            f"{uscc}")
            else:
                provider_code = uscc
    if is_blank(v.get("provider")):
        fail(rows["provider"], "provider", "信息资源提供方为必填项", "provider is required")
    items = []
    for r, iv in g.items:
        dtype = iv.get("data_type")
        parsed_type = vocab.DATA_TYPES.parse(dtype) if not is_blank(dtype) else None
        if not is_blank(dtype) and parsed_type is None:
            fail(r, "data_type", f"数据类型「{dtype}」应为 C N Y D T L M G B I F 之一"
                "（字符型、数值型、货币型、日期型、日期时间型、逻辑型、备注型、通用型、二进制、整数型、浮点型）",
                "data type must be one of C N Y D T L M G B I F")
        ist = iv.get("item_sharing")
        parsed_ist = vocab.SHARING_TYPES.parse(ist) if not is_blank(ist) else None
        if not is_blank(ist) and parsed_ist is None:
            fail(r, "item_sharing", f"「{ist}」不在可选值中（无条件共享、有条件共享、不予共享）",
                "unknown item sharing type")
        items.append({"name": clean_text(iv.get("item_name")) or None,
                      "data_type": parsed_type, "length": _length(iv.get("length")),
                      "sharing_type": parsed_ist})
    c = {
        "class_code": c["class"], "item_code": item_code, "item_name": item_name,
        "category_code": parts["category"][0], "category_name": parts["category"][1],
        "subcategory_code": parts["subcategory"][0],
        "subcategory_name": parts["subcategory"][1],
        "name": clean_text(v.get("name")) or None,
        "code": norm_key(v.get("code")) or None,
        "provider_code": provider_code, "abstract": clean_text(v.get("abstract")) or None,
        "format": c["format"], "sharing_type": c["sharing_type"],
        "sharing_condition": clean_text(v.get("sharing_condition")) or None,
        "sharing_method": c["sharing_method"], "is_open": c["is_open"] == "yes",
        "open_condition": clean_text(v.get("open_condition")) or None,
        "update_cycle": c["update_cycle"], "publish_date": pub,
        "related_codes": _codes(v.get("related_codes")), "items": items,
    }
    if c["category_code"] and not c["category_name"]:
        fail(rows["category"], "category", "目须同时填写代码和名称，如“001 基础地理”",
            "category needs its code and its name")
    if c["item_code"] and not c["item_name"]:
        fail(rows["item"], "item", "项须同时填写代码和名称，如“01 江门市国土资源局”",
            "item needs its code and its name")
    return c, bad


def check_against_catalog(conn, content: dict[str, Any], g: ResourceRows, err) -> None:
    """Names and codes must not collide with *other* entries already catalogued."""
    cur = conn.cursor(row_factory=dict_row)
    target = existing_entry(conn, content)
    if content.get("code"):
        row = cur.execute(
            "SELECT e.id, e.name, e.status, d.code AS dept, d.name AS dept_name FROM "
            "catalog_entry e JOIN department d ON d.id = e.provider_dept_id WHERE e.code = %s",
            (content["code"],)).fetchone()
        if row and row["status"] == "retired":
            err(g.rows["code"], "code", f"信息资源代码「{content['code']}」属于已撤销的信息资源"
                f"「{row['name']}」，代码不能重复使用，请留空由平台编码",
                "the code belongs to a retired resource and cannot be reused: leave it blank")
        elif row and row["dept"] != content["provider_code"]:
            err(g.rows["code"], "code", f"信息资源代码「{content['code']}」已被"
                f"{row['dept_name']}的「{row['name']}」使用",
                "the code belongs to another department's resource")
        elif row and row["name"] != content["name"]:
            err(g.rows["code"], "code", f"信息资源代码「{content['code']}」已用于本部门的"
                f"「{row['name']}」，与本行的名称「{content['name']}」不符；新增资源请将代码留空，"
                "更名请通过目录系统修改",
                "the code already identifies another of the department's resources: leave "
                "the code blank for a new resource; rename through the catalog API")
    row = cur.execute(
        "SELECT e.id, e.code FROM catalog_entry e JOIN department d ON d.id = "
        "e.provider_dept_id WHERE d.code = %s AND e.name = %s AND e.status <> 'retired'",
        (content["provider_code"], content["name"])).fetchone()
    if row and target is not None and row["id"] != target:
        err(g.rows["name"], "name", f"本部门已有同名信息资源「{content['name']}」（{row['code']}）",
            "the department already has another resource with this name")


def existing_entry(conn, content: dict[str, Any]) -> int | None:
    """The catalogued entry this sheet row describes: by code, else by provider + name."""
    cur = conn.cursor(row_factory=tuple_row)
    if content.get("code"):
        row = cur.execute("SELECT id FROM catalog_entry WHERE code = %s",
                          (content["code"],)).fetchone()
        if row:
            return row[0]
        return -1  # a new code: a new entry
    row = cur.execute(
        "SELECT e.id FROM catalog_entry e JOIN department d ON d.id = e.provider_dept_id "
        "WHERE d.code = %s AND e.name = %s AND e.status <> 'retired'",
        (content["provider_code"], content["name"])).fetchone()
    return row[0] if row else None
