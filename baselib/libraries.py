"""The two base libraries, their attribute-authority registry and their sources.

A library's *shape* is code (:data:`LIBRARIES`: the key, the attributes, which are
sensitive); *who is authoritative* for each attribute and *which tables feed it* are data
in the database (``baselib_authority``, ``baselib_source``: migration 0019), set by the
bureau with ``jmgeo baselib authority set`` / ``source add`` and read at every
integration. A library is published as a **table resource** (``layers.registry``) owned
by the bureau, shared unconditionally, its sensitive fields masked by the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from baselib.errors import BaselibError
from layers import registry
from layers.vocab import UPDATE_CYCLES

OWNER = "wxtc"  # the bureau runs the base libraries (数据管理)


@dataclass(frozen=True)
class Library:
    """A base library: its resource name, key, attributes (name → 中文 label) and masks."""

    name: str
    title: str
    key_kind: str  # layers.identifiers.KINDS
    key: str
    key_label: str
    attributes: dict[str, str]
    sensitive: dict[str, str]
    derived: dict[str, str]  # columns computed at integration (spatial link)
    theme: str = "population"  # the catalog's base item (catalog.sync.TABLE_ITEMS)

    def columns(self) -> list[str]:
        return [self.key, *self.attributes, *self.derived, "sources"]


LIBRARIES: dict[str, Library] = {
    "persons": Library(
        "persons", "人口基础库（自然人）", "ric", "id_number", "公民身份号码",
        {"name": "姓名", "gender": "性别", "birth_date": "出生日期", "address": "住址",
         "phone": "联系电话", "insurance_status": "参保状态", "employer_uscc": "工作单位信用代码"},
        # DESIGN §5: ID numbers, phone numbers, names of private persons; §11: addresses
        # — and the codes located from the address, which are part of it
        {"id_number": "id_number", "name": "person_name", "phone": "phone",
         "address": "full", "county_code": "full", "town_code": "full"},
        {"county_code": "住址所在区县代码", "town_code": "住址所在镇街代码"}, "population"),
    "legal_persons": Library(
        "legal_persons", "法人基础库", "uscc", "uscc", "统一社会信用代码",
        {"name": "名称", "legal_rep": "法定代表人", "address": "注册地址",
         "org_type": "机构类型", "established": "成立日期", "status": "登记状态",
         "phone": "联系电话"},
        {"phone": "phone"},
        {"county_code": "所在区县代码", "town_code": "所在镇街代码"}, "legal_person"),
}

# the demo's authorities (issue 15 §2): 姓名/性别/出生日期 → 公安; 参保状态 → 人社; 企业名称
# /法定代表人/注册地址 → 市场监管 …; seeded by ``ensure_default_authorities``
DEFAULT_AUTHORITIES: dict[str, dict[str, tuple[str, str, str]]] = {
    "persons": {
        "name": ("gaj", "《居民身份证法》户籍登记", "daily"),
        "gender": ("gaj", "《居民身份证法》户籍登记", "daily"),
        "birth_date": ("gaj", "《居民身份证法》户籍登记", "daily"),
        "address": ("gaj", "《户口登记条例》常住地址", "daily"),
        "phone": ("wjj", "全员人口信息库联系方式", "monthly"),
        "insurance_status": ("rsj", "《社会保险法》参保登记", "monthly"),
        "employer_uscc": ("rsj", "《社会保险法》参保单位", "monthly"),
    },
    "legal_persons": {
        "name": ("scjg", "《市场主体登记管理条例》", "daily"),
        "legal_rep": ("scjg", "《市场主体登记管理条例》", "daily"),
        "address": ("scjg", "《市场主体登记管理条例》住所登记", "daily"),
        "org_type": ("scjg", "《市场主体登记管理条例》", "daily"),
        "established": ("scjg", "《市场主体登记管理条例》", "daily"),
        "status": ("scjg", "《市场主体登记管理条例》", "daily"),
        "phone": ("swj", "《税收征收管理法》税务登记", "monthly"),
    },
}


def library(name: str) -> Library:
    lib = LIBRARIES.get(name)
    if lib is None:
        raise BaselibError(f"基础库 {name!r} 不存在", f"no base library {name!r}",
                           f"use one of {', '.join(LIBRARIES)}")
    return lib


def _q(conn, query, params=None):
    return conn.cursor(row_factory=dict_row).execute(query, params)


# -- the authority registry -----------------------------------------------------------

def set_authority(conn, lib_name: str, attribute: str, dept: str, basis: str,
                  update_cycle: str = "other", by: str | None = None) -> dict[str, Any]:
    """Declare ``dept`` THE authority for ``attribute`` (the previous one retires)."""
    lib = library(lib_name)
    if attribute not in lib.attributes:
        raise BaselibError(f"基础库 {lib.name} 没有属性 {attribute}", f"{lib.name} has no "
                           f"attribute {attribute!r}", f"use one of {', '.join(lib.attributes)}")
    if not (basis or "").strip():
        raise BaselibError("权威部门必须写明依据", "an authority needs its basis (依据)",
                           "pass --basis, e.g. '《居民身份证法》'")
    if update_cycle not in UPDATE_CYCLES:
        raise BaselibError(f"更新周期无效：{update_cycle}", f"unknown update cycle "
                           f"{update_cycle!r}", f"use one of {', '.join(UPDATE_CYCLES)}")
    try:
        dept_id = registry.department_id(conn, dept)
    except registry.RegistryError as exc:
        raise BaselibError("权威部门不存在", str(exc), "register the department first") from exc
    with conn.transaction():
        _q(conn, "UPDATE baselib_authority SET active = false WHERE library = %s AND "
                 "attribute = %s AND active", (lib.name, attribute))
        _q(conn, "INSERT INTO baselib_authority (library, attribute, dept_id, basis, "
                 "update_cycle, created_by) VALUES (%s, %s, %s, %s, %s, %s)",
           (lib.name, attribute, dept_id, basis.strip(), update_cycle, by))
    return {"library": lib.name, "attribute": attribute, "dept": dept, "basis": basis.strip(),
            "update_cycle": update_cycle}


def authorities(conn, lib_name: str) -> dict[str, dict[str, Any]]:
    """attribute → {dept, dept_name, basis, update_cycle} of the active authorities."""
    rows = _q(conn, "SELECT a.attribute, d.code AS dept, d.name AS dept_name, a.basis, "
                    "a.update_cycle FROM baselib_authority a JOIN department d ON "
                    "d.id = a.dept_id WHERE a.library = %s AND a.active ORDER BY a.id",
              (library(lib_name).name,)).fetchall()
    return {r.pop("attribute"): r for r in rows}


def ensure_default_authorities(conn, lib_name: str) -> int:
    """Seed :data:`DEFAULT_AUTHORITIES` for attributes that have none (idempotent)."""
    have = authorities(conn, lib_name)
    n = 0
    for attr, (dept, basis, cycle) in DEFAULT_AUTHORITIES[lib_name].items():
        if attr not in have:
            set_authority(conn, lib_name, attr, dept, basis, cycle, by="system:baselib-demo")
            n += 1
    return n


# -- sources ----------------------------------------------------------------------------

def add_source(conn, lib_name: str, resource: str, key_column: str,
               mapping: dict[str, str]) -> dict[str, Any]:
    """Register (or replace) a source table of a library: its key column and which of its
    columns gives which attribute. Checked against the resource's current version now
    (and again at every integration, as the next load may change its columns)."""
    lib = library(lib_name)
    unknown = [a for a in mapping if a not in lib.attributes]
    if unknown:
        raise BaselibError(f"映射中的属性 {', '.join(unknown)} 不属于 {lib.name}",
                           f"the mapping names attributes {unknown} that {lib.name} lacks",
                           f"use attributes of {', '.join(lib.attributes)}")
    if not mapping:
        raise BaselibError("映射为空", "an empty mapping", "map at least one attribute: "
                           "--map name=xm")
    check_source(conn, lib, resource, key_column, mapping)
    with conn.transaction():
        _q(conn, "UPDATE baselib_source SET active = false WHERE library = %s AND "
                 "resource = %s AND active", (lib.name, resource))
        _q(conn, "INSERT INTO baselib_source (library, resource, key_column, mapping) "
                 "VALUES (%s, %s, %s, %s)", (lib.name, resource, key_column, Jsonb(mapping)))
    return {"library": lib.name, "resource": resource, "key_column": key_column,
            "mapping": mapping}


def sources(conn, lib_name: str) -> list[dict[str, Any]]:
    """The active sources with their resource's current version, owner and load time."""
    return _q(conn,
        "SELECT s.resource, s.key_column, s.mapping, d.code AS dept, l.kind, "
        "l.current_version AS version, v.table_name, v.loaded_at FROM baselib_source s "
        "LEFT JOIN layer l ON l.name = s.resource LEFT JOIN department d ON "
        "d.id = l.owner_dept_id LEFT JOIN layer_version v ON v.layer_id = l.id AND "
        "v.version = l.current_version WHERE s.library = %s AND s.active ORDER BY s.id",
        (library(lib_name).name,)).fetchall()


def check_source(conn, lib: Library, resource: str, key_column: str,
                 mapping: dict[str, str]) -> dict[str, str]:
    """The resource's columns, or a :class:`BaselibError` naming what is missing: the
    resource, its key column, a mapped column."""
    row = _q(conn, "SELECT l.kind, v.table_name FROM layer l JOIN layer_version v ON "
                   "v.layer_id = l.id AND v.version = l.current_version WHERE l.name = %s",
             (resource,)).fetchone()
    if row is None:
        raise BaselibError(f"来源资源 {resource} 不存在或未发布", f"source resource "
                           f"{resource!r} does not exist or has no published version",
                           "load it first: jmgeo load FILE --kind table --key COLUMN")
    cols = registry.table_columns(conn, row["table_name"])
    if key_column not in cols:
        raise BaselibError(f"来源 {resource} 没有映射的键字段 {key_column}",
                           f"source {resource!r} has no key column {key_column!r} "
                           f"(its columns: {', '.join(c for c in cols if c != 'fid')})",
                           "map the column that holds the ID number / USCC: --key COLUMN")
    missing = {a: c for a, c in mapping.items() if c not in cols}
    if missing:
        what = ", ".join(f"{a}={c}" for a, c in missing.items())
        raise BaselibError(f"来源 {resource} 没有映射的字段：{what}", f"source {resource!r} "
                           f"lacks the mapped columns {what}", "fix the mapping (--map "
                           f"attribute=column) to one of {', '.join(c for c in cols if c != 'fid')}")
    return cols
