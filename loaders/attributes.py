"""Attributes: ascii lowercase column names, Chinese names kept as labels, sensible types.

GIS staff know their fields by the Chinese names (权利人, 地类名称) or the standard
abbreviations (QLR, DLMC — TD/T 1057 and friends). Columns get ascii lowercase names
(SQL and OGC clients need them); the name people know becomes the layer's
``field_labels`` entry and the column comment. Types follow the source (Arrow types from
GDAL); text that is entirely ISO / slash dates becomes ``date``; CSV columns (all text)
become numbers only when every value is one and nothing like a leading zero (a phone
number, a code) would be lost. Everything works on whole Arrow arrays.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from jmgeo.settings import get_settings
from layers.registry import RESERVED_COLUMNS, Column
from loaders.errors import LoaderError

# standard abbreviations in Chinese land / survey data → 中文 label
KNOWN_LABELS = {
    "zddm": "宗地代码", "zdmj": "宗地面积", "qlr": "权利人", "dlmc": "地类名称", "dlbm": "地类编码",
    "xzqdm": "行政区代码", "xzqmc": "行政区名称", "djrq": "登记日期", "bz": "备注",
    "tbmj": "图斑面积", "tbbh": "图斑编号", "qsdwmc": "权属单位名称", "qsdwdm": "权属单位代码",
    "qsxz": "权属性质", "zldwmc": "坐落单位名称", "bsm": "标识码", "ysdm": "要素代码",
    "mc": "名称", "dm": "代码", "lx": "类型", "dj": "等级", "cd": "长度", "mj": "面积",
    "dh": "电话", "lxdh": "联系电话", "dz": "地址", "name": "名称", "code": "代码",
    "adcode": "行政区划代码", "area": "面积", "length": "长度", "type": "类型",
}
# Chinese field names → ascii column (common ones; others get field_<n>)
ZH_COLUMNS = {
    "名称": "name", "地址": "address", "电话": "phone", "联系电话": "phone", "手机": "mobile",
    "面积": "area", "类型": "type", "类别": "category", "编码": "code", "代码": "code",
    "编号": "number", "备注": "remarks", "经度": "lon", "纬度": "lat", "权利人": "owner_name",
    "容量": "capacity", "可容纳人数": "capacity", "长度": "length", "等级": "grade",
    "行政区": "region", "行政区划代码": "region_code", "区划代码": "region_code",
    "负责人": "manager", "管理单位": "manager_unit", "所属区县": "county", "区县": "county",
    "地类名称": "land_use", "宗地代码": "parcel_code", "宗地面积": "parcel_area",
    "身份证号": "id_number", "身份证号码": "id_number", "建成年份": "built_year",
    "建成日期": "built_date", "日期": "date", "登记日期": "reg_date", "省": "province",
    "市": "city", "县": "county", "镇": "town", "街道": "street", "河流名称": "river_name",
    "水库名称": "reservoir_name", "道路名称": "road_name", "站点名称": "stop_name",
    "线路": "routes", "库容": "storage", "流域": "basin", "宽度": "width", "路面": "surface",
    "省名": "province", "市名": "city", "县名": "county", "人口": "population",
    # enterprise / legal-person records (法人单位 tables)
    "统一社会信用代码": "uscc", "社会信用代码": "uscc", "企业名称": "enterprise_name",
    "单位名称": "unit_name", "法定代表人": "legal_rep", "法定代表人电话": "legal_rep_phone",
    "注册资本": "registered_capital", "注册资本（万元）": "registered_capital",
    "成立日期": "founded_date", "行业": "industry", "行业门类": "industry",
    "登记状态": "reg_status", "住所": "address", "经营范围": "business_scope",
    "登记机关": "reg_authority", "企业类型": "enterprise_type",
}
_DATE_PATTERNS = ((re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$"), "%Y-%m-%d"),
                  (re.compile(r"^\d{4}/\d{1,2}/\d{1,2}$"), "%Y/%m/%d"))
_NUMBER_RE = re.compile(r"^[+-]?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$")
# text that looks numeric but is an identifier: keep it text (leading zeros, masking)
_CODE_NAME_RE = re.compile(r"电话|手机|代码|编码|编号|证号|邮编|号码|phone|tel|mobile|code|"
                           r"(^|_)id($|_)|zip|number|no$", re.IGNORECASE)
_INT_RE = re.compile(r"^[+-]?(0|[1-9]\d{0,17})$")


@dataclass
class FieldPlan:
    source: str            # name in the file
    column: str            # ascii column
    pg_type: str
    label: str
    how: str = "copy"      # copy | date:<fmt> | json | number | int | drop
    nulls: int = 0
    values: int = 0
    failed: int = 0        # values that did not convert (left empty, reported)

    def as_dict(self) -> dict:
        return {"source": self.source, "column": self.column, "type": self.pg_type,
                "label": self.label, "nulls": self.nulls,
                **({"unconverted": self.failed} if self.failed else {})}


@dataclass
class AttributePlan:
    fields: list[FieldPlan]
    warnings: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[Column]:
        return [Column(f.column, f.pg_type, f.label) for f in self.fields if f.how != "drop"]

    @property
    def labels(self) -> dict[str, str]:
        return {f.column: f.label for f in self.fields if f.how != "drop"}

    def column_for(self, name: str) -> str | None:
        for f in self.fields:
            if name in (f.source, f.column) or name.lower() == f.source.lower():
                return f.column
        return None


def ascii_column(name: str, index: int) -> str:
    raw = name.strip()
    if raw.isascii():
        col = re.sub(r"[^a-z0-9_]+", "_", raw.lower()).strip("_")
        if not col:
            col = f"field_{index}"
        elif col[0].isdigit():
            col = f"f_{col}"
    elif raw in ZH_COLUMNS:
        col = ZH_COLUMNS[raw]
    else:
        col = _translate(raw) or f"field_{index}"
    col = col[:60]
    if col in RESERVED_COLUMNS:
        col = f"{col}_src"
    return col


_ZH_TOKENS = {**ZH_COLUMNS, "省": "province", "市": "city", "县": "county", "区": "district",
              "镇": "town", "村": "village", "名": "name", "码": "code", "类": "class",
              "数": "count", "量": "amount", "年": "year", "号": "no", "水": "water",
              "路": "road", "河": "river", "站": "station", "人": "person", "水库": "reservoir",
              "地级市": "prefecture", "楼": "building", "面积": "area"}
_ZH_KEYS = sorted(_ZH_TOKENS, key=len, reverse=True)


def _translate(raw: str) -> str:
    """Greedy longest-match of known words: 市代码 → city_code, 行政区代码 → region_code."""
    parts: list[str] = []
    ascii_run = ""
    i = 0
    while i < len(raw):
        for k in _ZH_KEYS:
            if raw.startswith(k, i):
                if ascii_run:
                    parts.append(ascii_run.lower())
                    ascii_run = ""
                if not parts or parts[-1] != _ZH_TOKENS[k]:
                    parts.append(_ZH_TOKENS[k])
                i += len(k)
                break
        else:
            ch = raw[i]
            if ch.isascii() and ch.isalnum():
                ascii_run += ch
            elif ascii_run:
                parts.append(ascii_run.lower())
                ascii_run = ""
            i += 1
    if ascii_run:
        parts.append(ascii_run.lower())
    col = "_".join(parts)[:60]
    return ("f_" + col) if col and col[0].isdigit() else col


def _label(name: str) -> str:
    return name if not name.isascii() else KNOWN_LABELS.get(name.strip().lower(), name)


def _pg_type(t: pa.DataType) -> tuple[str, str]:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return "text", "copy"
    if pa.types.is_boolean(t):
        return "boolean", "copy"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_int32(t) or \
            pa.types.is_uint8(t) or pa.types.is_uint16(t):
        return "integer", "copy"
    if pa.types.is_integer(t):
        return "bigint", "copy"
    if pa.types.is_floating(t):
        return "double precision", "copy"
    if pa.types.is_decimal(t):
        return "numeric", "copy"
    if pa.types.is_date(t):
        return "date", "copy"
    if pa.types.is_timestamp(t):
        return ("timestamptz" if t.tz else "timestamp"), "copy"
    if pa.types.is_time(t):
        return "time", "copy"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_struct(t) or \
            pa.types.is_map(t):
        return "jsonb", "json"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "text", "drop"
    return "text", "cast"


def _strings(arr: pa.Array) -> list[str]:
    vals = pc.drop_null(arr)
    vals = pc.filter(vals, pc.not_equal(vals, ""))
    return vals.to_pylist()


def plan_attributes(schema: pa.Schema, first: pa.Table | None, skip: set[str],
                    text_inference: bool = False) -> AttributePlan:
    """Decide columns from the Arrow schema and the first batch (for dates/numbers)."""
    plans: list[FieldPlan] = []
    warnings: list[str] = []
    used: set[str] = set()
    for i, f in enumerate(schema, start=1):
        if f.name in skip:
            continue
        col = ascii_column(f.name, i)
        base, n = col, 2
        while col in used:
            col = f"{base}_{n}"
            n += 1
        used.add(col)
        pg, how = _pg_type(f.type)
        if how == "drop":
            warnings.append(f"字段 {f.name} 是二进制，未装载 / binary field {f.name} was not "
                            "loaded")
        if pg == "text" and how == "copy" and first is not None and f.name in first.column_names:
            sample = _strings(first.column(f.name).combine_chunks()
                              if isinstance(first.column(f.name), pa.ChunkedArray)
                              else first.column(f.name))
            if sample:
                for rx, fmt in _DATE_PATTERNS:
                    if all(rx.match(s) for s in sample):
                        pg, how = "date", f"date:{fmt}"
                        break
                else:
                    if text_inference and not _CODE_NAME_RE.search(f.name) and \
                            all(_NUMBER_RE.match(s) for s in sample) and \
                            max(len(s) for s in sample) <= 10:
                        if all(_INT_RE.match(s) for s in sample):
                            pg, how = "bigint", "int"
                        else:
                            pg, how = "double precision", "number"
        plans.append(FieldPlan(f.name, col, pg, _label(f.name), how))
    return AttributePlan(plans, warnings)


def clean_text(table: pa.Table) -> tuple[pa.Table, int]:
    """Make every string column valid UTF-8 (GDAL passes a DBF's bytes through as they are:
    a character cut by the field width, or a stray byte, would break COPY). Invalid values
    keep what decodes; the broken bytes become U+FFFD. Returns the table and how many
    values were repaired (reported)."""
    fixed = 0
    for i, f in enumerate(table.schema):
        if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            continue
        col = table.column(i)
        try:
            col.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        raw = pa.chunked_array([c.view(pa.binary() if pa.types.is_string(f.type)
                                       else pa.large_binary()) for c in col.chunks])
        values = []
        for v in raw.to_pylist():
            if v is None:
                values.append(None)
                continue
            try:
                values.append(v.decode("utf-8"))
            except UnicodeDecodeError:
                fixed += 1
                values.append(v.decode("utf-8", errors="replace"))
        table = table.set_column(i, f.name, pa.array(values, pa.string()))
    return table, fixed


def _blank_to_null(arr: pa.Array) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), arr)


def convert(plan: AttributePlan, batch: pa.Table | pa.RecordBatch, display: str,
            offset: int) -> list[pa.Array]:
    """The batch's attribute columns, converted for COPY (same order as plan.columns)."""
    out = []
    max_bytes = get_settings().max_field_bytes
    for f in plan.fields:
        if f.how == "drop":
            continue
        arr = batch.column(f.source)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        t = arr.type
        if pa.types.is_large_string(t):
            arr = arr.cast(pa.string())
            t = arr.type
        if pa.types.is_null(t):
            arr = pa.nulls(len(arr), pa.string())
            t = arr.type
        if pa.types.is_string(t):
            lengths = pc.binary_length(arr)
            longest = pc.max(lengths).as_py()
            if longest is not None and longest > max_bytes:
                row = pc.index(lengths, longest).as_py()
                raise LoaderError(
                    "huge_field", f"第 {offset + row + 1} 个要素的字段 {f.source} 长达 "
                    f"{longest / 1e6:.1f} MB，超过 {max_bytes / 1e6:.1f} MB 上限，通常是导出错误"
                    "（如把图片或整个文档写进了属性）", f"field {f.source} of feature "
                    f"{offset + row + 1} holds {longest / 1e6:.1f} MB, above the "
                    f"{max_bytes / 1e6:.1f} MB limit — usually an export error (an "
                    "image or a whole document in an attribute)", file=display,
                    fix_zh="删除或截短该字段后重新导出；确需大字段可设置 JMGEO_MAX_FIELD_BYTES",
                    fix_en="drop or shorten that field and export again; raise "
                    "JMGEO_MAX_FIELD_BYTES if such values are really intended")
            arr = _blank_to_null(arr)
            if pc.any(pc.fill_null(pc.match_substring(arr, "\x00"), False)).as_py():
                arr = pc.replace_substring(arr, "\x00", "")  # PostgreSQL text has no NUL
        if f.how.startswith("date:"):
            before = len(arr) - arr.null_count
            arr = pc.cast(pc.strptime(arr, format=f.how[5:], unit="s", error_is_null=True),
                          pa.date32())
            f.failed += before - (len(arr) - arr.null_count)
        elif f.how in ("int", "number"):
            before = len(arr) - arr.null_count
            ok = pc.match_substring_regex(arr, (_INT_RE if f.how == "int" else _NUMBER_RE).pattern)
            ok = pc.fill_null(ok, False)
            cleaned = pc.if_else(ok, arr, pa.scalar(None, pa.string()))
            arr = pc.cast(cleaned, pa.int64() if f.how == "int" else pa.float64())
            f.failed += before - (len(arr) - arr.null_count)
        elif f.how == "json":
            arr = pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                            for v in arr.to_pylist()], pa.string())
        elif f.how == "cast":
            arr = pc.cast(arr, pa.string())
        elif pa.types.is_floating(t):
            # NaN / inf cannot go into PostgreSQL numbers meaningfully: make them NULL
            arr = pc.if_else(pc.is_finite(arr), arr, pa.scalar(None, t))
        f.nulls += arr.null_count
        f.values += len(arr)
        out.append(arr)
    return out
