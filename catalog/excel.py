"""The Excel forms: survey sheet (调查表, 附件1), summary sheet (汇总表, 附件2), city catalog.

The survey sheet has one row per data item (信息项); a resource's own columns are merged
down across its items' rows, as departments fill it in by hand. Reading is forgiving
where a person would be (merged or repeated resource cells, header text with hints or
line breaks, columns in another order, blank rows, full-width characters, stray and
ideographic spaces, ``03`` typed as the number 3) and precise where it must refuse:
every problem is reported with its sheet, row and column, in Chinese with English
beside, and nothing is written unless the whole sheet is valid.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.datavalidation import DataValidation
from psycopg.rows import dict_row, tuple_row

from catalog import store, vocab
from catalog.vocab import clean_text, norm_key
from layers.departments import InvalidUSCC, validate_uscc
from layers.policy import Caller

SURVEY_SHEET = "调查表"
SUMMARY_SHEET = "汇总表"
LISTS_SHEET = "代码表"
NOTES_SHEET = "填表说明"
SURVEY_TITLE = "江门市政务信息资源调查表"
SUMMARY_TITLE = "江门市政务信息资源汇总表"
CATALOG_TITLE = "江门市政务信息资源目录"
TEMPLATE_ROWS = 300


@dataclass(frozen=True)
class Col:
    key: str
    header: str  # the sub-header written in the template
    parent: str | None = None  # the merged group header above it
    level: str = "entry"  # entry | item
    width: int = 14
    vocab: vocab.Vocab | None = None
    required: bool = False
    aliases: tuple[str, ...] = ()

    def names(self) -> list[str]:
        """Normalised header texts that mean this column (combined first)."""
        out = []
        if self.parent:
            out.append(norm_key(self.parent + self.header))
        out += [norm_key(self.header)] + [norm_key(a) for a in self.aliases]
        return out


COLUMNS: list[Col] = [
    Col("seq", "序号", width=6),
    Col("class", "类", "信息资源分类", width=16, vocab=vocab.CLASSES, required=True),
    Col("item", "项", "信息资源分类", width=20, required=True),
    Col("category", "目", "信息资源分类", width=18, required=True),
    Col("subcategory", "细目", "信息资源分类", width=14),
    Col("name", "信息资源名称", width=24, required=True),
    Col("code", "信息资源代码", width=17),
    Col("provider", "信息资源提供方", width=20, required=True, aliases=("提供方", "提供单位")),
    Col("uscc", "提供方代码", width=21, required=True,
        aliases=("信息资源提供方代码", "统一社会信用代码")),
    Col("abstract", "信息资源摘要", width=36, required=True, aliases=("摘要",)),
    Col("format", "信息资源格式", width=12, vocab=vocab.FORMATS, required=True,
        aliases=("格式",)),
    Col("item_name", "信息项名称", "信息项", level="item", width=18, required=True,
        aliases=("名称",)),
    Col("data_type", "数据类型", "信息项", level="item", width=9, vocab=vocab.DATA_TYPES,
        required=True),
    Col("length", "数据长度", "信息项", level="item", width=9, aliases=("长度",)),
    Col("item_sharing", "共享类型", "信息项", level="item", width=12,
        vocab=vocab.SHARING_TYPES, aliases=("信息项共享类型",)),
    Col("sharing_type", "共享类型", "共享属性", width=12, vocab=vocab.SHARING_TYPES,
        required=True),
    Col("sharing_condition", "共享条件", "共享属性", width=26),
    Col("sharing_method", "共享方式", "共享属性", width=18, vocab=vocab.SHARING_METHODS,
        required=True),
    Col("is_open", "是否向社会开放", "开放属性", width=10, vocab=vocab.OPEN, required=True,
        aliases=("是否开放",)),
    Col("open_condition", "开放条件", "开放属性", width=20),
    Col("update_cycle", "更新周期", width=10, vocab=vocab.UPDATE_CYCLES, required=True),
    Col("publish_date", "发布日期", width=12),
    Col("related_codes", "关联资源代码", width=20),
]
COL_BY_KEY = {c.key: c for c in COLUMNS}
ENTRY_KEYS = [c.key for c in COLUMNS if c.level == "entry" and c.key != "seq"]
ITEM_KEYS = [c.key for c in COLUMNS if c.level == "item"]
# content field (catalog.store) → sheet column
FIELD_COLUMN = {
    "class_code": "class", "item_code": "item", "item_name": "item",
    "category_code": "category", "category_name": "category",
    "subcategory_code": "subcategory", "subcategory_name": "subcategory", "name": "name",
    "code": "code", "provider_code": "uscc", "abstract": "abstract", "format": "format",
    "sharing_type": "sharing_type", "sharing_condition": "sharing_condition",
    "sharing_method": "sharing_method", "is_open": "is_open",
    "open_condition": "open_condition", "update_cycle": "update_cycle",
    "publish_date": "publish_date", "related_codes": "related_codes", "items": "item_name",
}
ITEM_FIELD_COLUMN = {"name": "item_name", "data_type": "data_type", "length": "length",
                     "sharing_type": "item_sharing"}
PART_WIDTH = {"item": 2, "category": 3}


# ------------------------------------------------------------------------ the report

@dataclass(frozen=True)
class CellError:
    sheet: str
    row: int | None
    column: str | None  # letter
    header: str | None
    zh: str
    en: str

    @property
    def cell(self) -> str:
        sheet = f"'{self.sheet}'" if re.search(r"[\s!'-]", self.sheet) else self.sheet
        if self.row is None:
            return sheet
        return f"{sheet}!{self.column or ''}{self.row}"

    def __str__(self) -> str:
        where = self.cell + (f"（{self.header}）" if self.header else "")
        return f"{where}：{self.zh} / {self.en}"

    def as_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "row": self.row, "column": self.column,
                "header": self.header, "message": f"{self.zh} / {self.en}"}


@dataclass
class ImportReport:
    path: str
    errors: list[CellError] = field(default_factory=list)
    warnings: list[CellError] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)  # parsed content
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)  # code, name, outcome

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        out = {"created": 0, "updated": 0, "unchanged": 0}
        for _, _, o in self.outcomes:
            out[o] = out.get(o, 0) + 1
        return out

    def text(self) -> str:
        lines = []
        if self.errors:
            lines.append(f"调查表有 {len(self.errors)} 处错误，未导入任何内容 / "
                         f"{len(self.errors)} error(s): nothing was imported")
            lines += [f"  {e}" for e in self.errors]
        for w in self.warnings:
            lines.append(f"  提示 / note: {w}")
        if self.ok and self.outcomes:
            c = self.counts()
            lines.append(f"导入 {len(self.outcomes)} 条信息资源：新增 {c['created']}，更新 "
                         f"{c['updated']}，未变 {c['unchanged']} / imported "
                         f"{len(self.outcomes)} entries: {c['created']} created, "
                         f"{c['updated']} updated, {c['unchanged']} unchanged")
        return "\n".join(lines)


class SheetError(store.CatalogError):
    """The sheet could not be imported; ``report`` lists every error by cell."""

    def __init__(self, report: ImportReport):
        super().__init__(report.text())
        self.report = report


# ---------------------------------------------------------------------------- reading

def _is_blank(v) -> bool:
    return v is None or (isinstance(v, str) and not clean_text(v))


def _find_sheet(wb, report: ImportReport):
    names = wb.sheetnames
    for n in names:
        if norm_key(n) == SURVEY_SHEET:
            return wb[n]
    close = [n for n in names if SURVEY_SHEET in norm_key(n)]
    if len(close) == 1:
        return wb[close[0]]
    # a renamed sheet ("Sheet1") that still carries the survey header is read, with a note
    shaped = [n for n in names if n not in (LISTS_SHEET, NOTES_SHEET) and
              _locate_header([list(r) for r in wb[n].iter_rows(max_row=15, values_only=True)])
              is not None]
    if len(shaped) == 1:
        report.warnings.append(CellError(
            shaped[0], None, None, None,
            f"工作表名应为「{SURVEY_SHEET}」，已按含调查表表头的「{shaped[0]}」读取",
            f"the sheet should be named {SURVEY_SHEET!r}; read {shaped[0]!r}, which has the "
            "survey header"))
        return wb[shaped[0]]
    report.errors.append(CellError(
        names[0] if names else "?", None, None, None,
        f"工作簿中没有名为「{SURVEY_SHEET}」的工作表（现有：{'、'.join(names)}），"
        f"请使用 jmgeo catalog template 生成的模板，或将填报的工作表改名为「{SURVEY_SHEET}」",
        f"no sheet named {SURVEY_SHEET!r} (found: {', '.join(names)}): rename the sheet "
        "or start from `jmgeo catalog template`"))
    return None


def _merged_values(ws) -> dict[tuple[int, int], Any]:
    """Every cell covered by a merged range → the value of its top-left cell."""
    fill = {}
    for rng in ws.merged_cells.ranges:
        v = ws.cell(rng.min_row, rng.min_col).value
        for r in range(rng.min_row, rng.max_row + 1):
            for c in range(rng.min_col, rng.max_col + 1):
                fill[(r, c)] = v
    return fill


def _header_name(v) -> str:
    return re.sub(r"[（(][^）)]*[）)]", "", norm_key(v)) if v is not None else ""


def _locate_header(rows: list[list[Any]]) -> int | None:
    for i, row in enumerate(rows[:15]):
        if any(_header_name(v) == "信息资源名称" for v in row):
            return i
    return None


def _map_columns(rows: list[list[Any]], h: int, sheet: str,
                 report: ImportReport) -> tuple[dict[str, int], int]:
    """Column key → 0-based index, and the first data row index."""
    top = rows[h]
    sub = rows[h + 1] if h + 1 < len(rows) else []
    known = {n for c in COLUMNS for n in c.names()}
    two_level = any(_header_name(v) in known and _header_name(v) != _header_name(t)
                    for v, t in zip(sub, top, strict=False) if v is not None)
    width = max(len(top), len(sub))
    mapping: dict[str, int] = {}
    for j in range(width):
        t = _header_name(top[j]) if j < len(top) else ""
        s = _header_name(sub[j]) if two_level and j < len(sub) else ""
        candidates = ([t + s] if s and s != t else []) + ([s] if s else []) + [t]
        key = None
        for cand in candidates:
            for c in COLUMNS:
                if cand and cand in c.names() and c.key not in mapping:
                    key = c.key
                    break
            if key:
                break
        letter = get_column_letter(j + 1)
        text = "".join(x for x in (clean_text(top[j]) if j < len(top) else "",
                                   clean_text(sub[j]) if two_level and j < len(sub) else "")
                       if x)
        if key:
            mapping[key] = j
        elif text:
            report.warnings.append(CellError(
                sheet, h + 1, letter, text, f"「{text}」不是调查表的列，已忽略",
                f"column {text!r} is not part of the survey sheet: ignored"))
    for c in COLUMNS:
        if c.required and c.key not in mapping:
            report.errors.append(CellError(
                sheet, h + 1, None, c.header,
                f"缺少必填列「{(c.parent or '') + '·' if c.parent else ''}{c.header}」",
                f"required column {c.header!r} is missing"))
    return mapping, h + (2 if two_level else 1)


def _cell_value(v) -> Any:
    if isinstance(v, str):
        return clean_text(v)
    return v


def _part(v, key: str) -> tuple[str | None, str | None, str | None]:
    """(code, name, error) for 项/目/细目; an int typed for a code is zero-padded."""
    if _is_blank(v):
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
    if _is_blank(v):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    text = unicodedata.normalize("NFKC", str(v)).replace(" ", "")
    return text


DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d")


def _date(v) -> tuple[dt.date | None, bool]:
    if _is_blank(v):
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
    if _is_blank(v):
        return []
    text = unicodedata.normalize("NFKC", str(v))
    return [x for x in re.split(r"[;,、\s]+", text) if x]


@dataclass
class _Group:
    top: int  # sheet row of the resource's first row
    values: dict[str, Any]
    rows: dict[str, int]  # entry key → row its value came from
    items: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def read_survey(path: str | Path, conn=None) -> ImportReport:
    """Parse and validate a survey sheet; ``report.entries`` holds the content dicts.
    With ``conn``, providers are checked against registered departments and names and
    codes against the catalog."""
    report = ImportReport(str(path))
    try:
        wb = load_workbook(path, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        report.errors.append(CellError(
            Path(path).name, None, None, None,
            "无法读取该文件，请另存为 Excel 工作簿（.xlsx）后再导入",
            f"cannot read the file as an .xlsx workbook ({type(exc).__name__}): save it as "
            ".xlsx and import again"))
        return report
    ws = _find_sheet(wb, report)
    if ws is None:
        return report
    sheet = ws.title
    fill = _merged_values(ws)
    rows: list[list[Any]] = []
    for r, row in enumerate(ws.iter_rows(values_only=True), start=1):
        rows.append([fill.get((r, c), v) for c, v in enumerate(row, start=1)])
    h = _locate_header(rows)
    if h is None:
        report.errors.append(CellError(sheet, None, None, None,
                                       "找不到表头行（应含“信息资源名称”列）",
                                       "no header row (a column 信息资源名称) found"))
        return report
    mapping, start = _map_columns(rows, h, sheet, report)
    if report.errors:
        return report

    def err(row: int, key: str, zh: str, en: str) -> None:
        c = COL_BY_KEY[key]
        report.errors.append(CellError(sheet, row, get_column_letter(mapping[key] + 1)
                                       if key in mapping else None, c.header, zh, en))

    groups: list[_Group] = []
    for i in range(start, len(rows)):
        r = i + 1
        raw = rows[i]
        vals = {k: _cell_value(raw[j]) if j < len(raw) else None for k, j in mapping.items()}
        if all(_is_blank(v) for k, v in vals.items() if k != "seq"):
            continue  # blank row (or a row with only its 序号)
        entry_vals = {k: vals.get(k) for k in ["seq", *ENTRY_KEYS]}
        item_vals = {k: vals.get(k) for k in ITEM_KEYS}
        key = (entry_vals["seq"], entry_vals["name"])
        g = groups[-1] if groups else None
        new = g is None or ((not _is_blank(key[0]) or not _is_blank(key[1])) and
                            (key != (g.values.get("seq"), g.values.get("name"))))
        if new:
            g = _Group(r, entry_vals, {k: r for k in entry_vals})
            groups.append(g)
        else:
            for k, v in entry_vals.items():
                if _is_blank(v):
                    continue
                if _is_blank(g.values.get(k)):
                    g.values[k], g.rows[k] = v, r
                elif g.values[k] != v:
                    err(r, k, f"同一信息资源在第{g.rows[k]}行填写为「{g.values[k]}」，本行为「{v}」，"
                              "请保持一致或合并单元格",
                        f"differs from row {g.rows[k]} of the same resource")
        if any(not _is_blank(v) for v in item_vals.values()):
            g.items.append((r, item_vals))

    seen_names: dict[tuple[str, str], int] = {}
    seen_codes: dict[str, int] = {}
    depts = _departments(conn) if conn is not None else None
    for g in groups:
        content, bad = _group_content(g, err, depts)
        problems = store.validate(None, store.normalise(content))
        for p in problems:
            if p.item is not None:
                row = g.items[p.item][0] if p.item < len(g.items) else g.top
                key = ITEM_FIELD_COLUMN.get(p.field, "item_name")
                if (row, key) not in bad:
                    err(row, key, p.zh, p.en)
            else:
                key = FIELD_COLUMN.get(p.field, "name")
                if key not in bad:
                    err(g.rows.get(key, g.top), key, p.zh, p.en)
        problems = problems or bad
        ident = (content.get("provider_code") or "", content.get("name") or "")
        dup = False
        if all(ident):
            if ident in seen_names:
                dup = True
                err(g.rows["name"], "name",
                    f"信息资源名称「{ident[1]}」与第{seen_names[ident]}行重复",
                    f"duplicate resource name (row {seen_names[ident]})")
            else:
                seen_names[ident] = g.rows["name"]
        code = content.get("code")
        if code:
            if code in seen_codes:
                dup = True
                err(g.rows["code"], "code", f"信息资源代码「{code}」与第{seen_codes[code]}行重复",
                    f"duplicate resource code (row {seen_codes[code]})")
            else:
                seen_codes[code] = g.rows["code"]
        if conn is not None and not problems and not dup and all(ident):
            _check_against_catalog(conn, content, g, err)
        report.entries.append(content)
    if not groups and not report.errors:
        report.errors.append(CellError(sheet, start + 1, None, None,
                                       "调查表没有填写任何信息资源",
                                       "the sheet lists no resources"))
    if report.errors:
        report.entries = []
    report.errors.sort(key=lambda e: (e.row or 0, e.column or ""))
    return report


def _departments(conn) -> dict[str, dict[str, Any]]:
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT code, name, uscc FROM department").fetchall()
    return {r["uscc"]: r for r in rows if r["uscc"]}


def _group_content(g: _Group, err, depts) -> tuple[dict[str, Any], set]:
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
        if _is_blank(raw):
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
    if not _is_blank(uscc_raw):
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
                    if not _is_blank(pname) and norm_key(pname) != norm_key(d["name"]):
                        fail(rows["provider"], "provider",
                            f"提供方「{pname}」与统一社会信用代码 {uscc} 登记的“{d['name']}”不符",
                            f"provider name does not match the department registered under "
                            f"{uscc}")
            else:
                provider_code = uscc
    if _is_blank(v.get("provider")):
        fail(rows["provider"], "provider", "信息资源提供方为必填项", "provider is required")
    items = []
    for r, iv in g.items:
        dtype = iv.get("data_type")
        parsed_type = vocab.DATA_TYPES.parse(dtype) if not _is_blank(dtype) else None
        if not _is_blank(dtype) and parsed_type is None:
            fail(r, "data_type", f"数据类型「{dtype}」应为 C N Y D T L M G B I F 之一"
                "（字符型、数值型、货币型、日期型、日期时间型、逻辑型、备注型、通用型、二进制、整数型、浮点型）",
                "data type must be one of C N Y D T L M G B I F")
        ist = iv.get("item_sharing")
        parsed_ist = vocab.SHARING_TYPES.parse(ist) if not _is_blank(ist) else None
        if not _is_blank(ist) and parsed_ist is None:
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


def _check_against_catalog(conn, content: dict[str, Any], g: _Group, err) -> None:
    """Names and codes must not collide with *other* entries already catalogued."""
    cur = conn.cursor(row_factory=dict_row)
    target = _existing(conn, content)
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


def _existing(conn, content: dict[str, Any]) -> int | None:
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


def import_survey(conn, path: str | Path, caller: Caller, *, status: str = "submitted",
                  dry_run: bool = False) -> ImportReport:
    """Validate and load a survey sheet — all of it or nothing. Entries new to the
    catalog get ``status`` (``submitted`` for the bureau's review, or ``published``);
    entries already catalogued are updated in place (history records the import), and
    an unchanged entry is left alone, so importing the same sheet twice changes nothing."""
    report = read_survey(path, conn)
    if not report.ok:
        raise SheetError(report)
    if dry_run:
        return report
    try:
        with conn.transaction():
            for content in report.entries:
                existing = _existing(conn, content)
                eid = existing if existing and existing > 0 else None
                extra_status = status if eid is None else None
                entry_id, outcome = store.save(conn, content, caller, entry_id=eid,
                                               status=extra_status, action="import")
                if eid is None and status == "published":
                    conn.execute("UPDATE catalog_entry SET review_state = 'approved', "
                                 "reviewed_by = %s, reviewed_at = now(), publish_date = "
                                 "coalesce(publish_date, current_date) WHERE id = %s",
                                 (store.actor_name(caller), entry_id))
                code = store.get_entry(conn, entry_id)["code"]
                report.outcomes.append((code, content["name"], outcome))
    except store.CatalogError as exc:  # a race with another writer: report, load nothing
        report.outcomes = []
        for p in exc.errors:
            report.errors.append(CellError(SURVEY_SHEET, None, None, None, p.zh, p.en))
        if not exc.errors:
            report.errors.append(CellError(SURVEY_SHEET, None, None, None, str(exc), ""))
        raise SheetError(report) from exc
    return report


# ---------------------------------------------------------------------------- writing

THIN = Side(style="thin", color="999999")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
HEAD_FILL = PatternFill("solid", fgColor="DDEBF7")
HEAD_FONT = Font(bold=True)
WRAP = Alignment(wrap_text=True, vertical="center")
CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)

LIST_VOCABS: list[tuple[str, list[str]]] = [
    ("class", vocab.CLASSES.choices),
    ("item", [vocab.join_part(k, v) for k, v in vocab.BASE_ITEMS.items()]),
    ("format", vocab.FORMATS.choices),
    ("data_type", vocab.DATA_TYPES.choices),
    ("item_sharing", vocab.SHARING_TYPES.choices),
    ("sharing_type", vocab.SHARING_TYPES.choices),
    ("sharing_method", vocab.SHARING_METHODS.choices),
    ("is_open", vocab.OPEN.choices),
    ("update_cycle", vocab.UPDATE_CYCLES.choices),
]


def _header(ws, title: str, columns: list[Col]) -> int:
    """Title row, then two header rows (group headers merged); returns first data row."""
    n = len(columns)
    ws.cell(1, 1, title).font = Font(bold=True, size=14)
    ws.cell(1, 1).alignment = CENTER
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=n)
    ws.cell(2, 1, "附件1　　填报单位（盖章）：　　　　　　填报日期：").alignment = \
        Alignment(vertical="center")
    ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=n)
    j = 0
    while j < n:
        c = columns[j]
        if c.parent:
            k = j
            while k + 1 < n and columns[k + 1].parent == c.parent:
                k += 1
            ws.cell(3, j + 1, c.parent)
            if k > j:
                ws.merge_cells(start_row=3, start_column=j + 1, end_row=3, end_column=k + 1)
            for m in range(j, k + 1):
                ws.cell(4, m + 1, columns[m].header + ("*" if columns[m].required else ""))
            j = k + 1
        else:
            ws.cell(3, j + 1, c.header + ("*" if c.required else ""))
            ws.merge_cells(start_row=3, start_column=j + 1, end_row=4, end_column=j + 1)
            j += 1
    for r in (3, 4):
        for j, c in enumerate(columns, start=1):
            cell = ws.cell(r, j)
            cell.fill, cell.font, cell.alignment, cell.border = HEAD_FILL, HEAD_FONT, CENTER, \
                BORDER
            ws.column_dimensions[get_column_letter(j)].width = c.width
    ws.freeze_panes = "C5"
    return 5


def _lists_sheet(wb) -> dict[str, str]:
    """A hidden 代码表 holding every controlled vocabulary; key → range formula."""
    ls = wb.create_sheet(LISTS_SHEET)
    refs = {}
    for j, (key, values) in enumerate(LIST_VOCABS, start=1):
        ls.cell(1, j, COL_BY_KEY[key].header)
        for i, v in enumerate(values, start=2):
            ls.cell(i, j, v)
        letter = get_column_letter(j)
        refs[key] = f"'{LISTS_SHEET}'!${letter}$2:${letter}${len(values) + 1}"
    ls.sheet_state = "hidden"
    return refs


def _validations(ws, refs: dict[str, str], first: int, last: int) -> None:
    for key, ref in refs.items():
        j = [c.key for c in COLUMNS].index(key) + 1
        letter = get_column_letter(j)
        c = COL_BY_KEY[key]
        dv = DataValidation(type="list", formula1=ref, allow_blank=True)
        # 项 of 主题/部门 resources are free: warn, don't block
        dv.errorStyle = "warning" if key == "item" else "stop"
        dv.error = f"请从下拉列表中选择{c.header} / choose a value from the list"
        dv.errorTitle = c.header
        dv.prompt = f"请选择{c.header}"
        dv.promptTitle = c.header
        dv.add(f"{letter}{first}:{letter}{last}")
        ws.add_data_validation(dv)
    j = [c.key for c in COLUMNS].index("publish_date") + 1
    letter = get_column_letter(j)
    dv = DataValidation(type="date", operator="greaterThan", formula1="1", allow_blank=True)
    dv.error = "请填写日期，如 2024-01-31 / enter a date"
    dv.add(f"{letter}{first}:{letter}{last}")
    ws.add_data_validation(dv)


def _notes_sheet(wb) -> None:
    ns = wb.create_sheet(NOTES_SHEET)
    notes = [
        "填表说明（依据《政务信息资源目录编制指南（试行）》）",
        "1. 每个信息项占一行；同一信息资源的各列（分类、名称、代码、提供方、摘要、格式、共享、开放、更新周期等）"
        "可合并单元格，也可在每行重复填写。",
        "2. 信息资源分类：类为“1 基础信息资源 / 2 主题信息资源 / 3 部门信息资源”；项、目、细目写作“代码 名称”，"
        "项2位、目3位，如“03 自然资源和空间地理”“001 基础地理”。",
        "3. 信息资源代码为“前段码/后段码”，如 103001/000001；新增资源可不填，由平台按分类自动编码。",
        "4. 数据类型：C字符型 N数值型 Y货币型 D日期型 T日期时间型 L逻辑型 M备注型 G通用型 B二进制 I整数型 F浮点型；"
        "C、N 须填数据长度（数值型可写“18,2”）。",
        "5. 有条件共享须填写共享条件；不予共享须在共享条件中注明法律、行政法规或国务院政策依据。",
        "6. 向社会开放的信息资源共享类型须为无条件共享。信息项的共享类型不能比所属信息资源更宽松。",
        "7. 带 * 的列为必填项。请勿修改表头，请勿改动工作表名称“调查表”。",
    ]
    for i, t in enumerate(notes, start=1):
        ns.cell(i, 1, t).alignment = Alignment(wrap_text=True)
    ns.column_dimensions["A"].width = 120


def _entry_cells(e: dict[str, Any], dept: dict[str, Any]) -> dict[str, Any]:
    return {
        "class": vocab.CLASSES.label(e["class_code"]),
        "item": vocab.join_part(e["item_code"], e["item_name"]),
        "category": vocab.join_part(e["category_code"], e["category_name"]),
        "subcategory": vocab.join_part(e.get("subcategory_code"), e.get("subcategory_name"))
        or None,
        "name": e["name"], "code": e.get("code"),
        "provider": dept["name"], "uscc": dept["uscc"], "abstract": e["abstract"],
        "format": vocab.FORMATS.label(e["format"]),
        "sharing_type": vocab.SHARING_TYPES.label(e["sharing_type"]),
        "sharing_condition": e.get("sharing_condition"),
        "sharing_method": vocab.SHARING_METHODS.label(e["sharing_method"]),
        "is_open": "是" if e.get("is_open") else "否",
        "open_condition": e.get("open_condition"),
        "update_cycle": vocab.UPDATE_CYCLES.label(e["update_cycle"]),
        "publish_date": e.get("publish_date"),
        "related_codes": "；".join(e.get("related_codes") or []) or None,
    }


def _item_cells(it: dict[str, Any]) -> dict[str, Any]:
    ln = it.get("length")
    return {"item_name": it["name"], "data_type": it["data_type"],
            "length": int(ln) if ln and str(ln).isdigit() else ln,
            "item_sharing": vocab.SHARING_TYPES.label(it.get("sharing_type"))}


def write_survey(path: str | Path, entries: Iterable[dict[str, Any] | None],
                 departments: dict[str, dict[str, Any]], *, blank_rows: int = 0) -> Path:
    """The survey sheet (附件1) for ``entries`` (content dicts with ``provider_code``),
    with dropdowns for every controlled vocabulary. ``departments``: code → name, uscc."""
    wb = Workbook()
    ws = wb.active
    ws.title = SURVEY_SHEET
    first = _header(ws, SURVEY_TITLE, COLUMNS)
    r = first
    keys = [c.key for c in COLUMNS]
    n = 0
    for e in entries:
        if e is None:  # a blank row, as people leave them
            r += 1
            continue
        n += 1
        cells = _entry_cells(e, departments[e["provider_code"]])
        cells["seq"] = n
        items = e.get("items") or [{}]
        top = r
        for it in items:
            row = dict(cells) if r == top else {}
            row.update(_item_cells(it) if it else {})
            for j, k in enumerate(keys, start=1):
                cell = ws.cell(r, j, row.get(k))
                cell.border, cell.alignment = BORDER, WRAP
                if k == "publish_date":
                    cell.number_format = "yyyy-mm-dd"
            r += 1
        if r - top > 1:
            for j, k in enumerate(keys, start=1):
                if COL_BY_KEY[k].level == "entry":
                    ws.merge_cells(start_row=top, start_column=j, end_row=r - 1, end_column=j)
    last = max(r + blank_rows, first + TEMPLATE_ROWS)
    for rr in range(r, r + blank_rows):
        for j in range(1, len(keys) + 1):
            ws.cell(rr, j).border = BORDER
    _validations(ws, _lists_sheet(wb), first, last)
    _notes_sheet(wb)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def write_template(path: str | Path) -> Path:
    """The blank survey sheet departments fill in."""
    return write_survey(path, [], {}, blank_rows=50)


# -------------------------------------------------------- summary sheet and catalog

SUMMARY_COLUMNS = [
    ("序号", 6), ("信息资源代码", 17), ("信息资源名称", 26), ("信息资源提供方", 20),
    ("提供方代码", 21), ("信息资源分类", 34), ("信息资源格式", 12), ("信息项数", 8),
    ("共享类型", 12), ("共享条件", 28), ("共享方式", 18), ("是否向社会开放", 10),
    ("开放条件", 18), ("更新周期", 10), ("发布日期", 12), ("关联资源代码", 20), ("状态", 8),
]
CATALOG_COLUMNS = [
    ("序号", 6), ("信息资源代码", 17), ("信息资源名称", 26), ("类", 14), ("项", 20),
    ("目", 18), ("细目", 14), ("信息资源提供方", 20), ("提供方代码", 21), ("信息资源摘要", 40),
    ("信息资源格式", 12), ("共享类型", 12), ("共享条件", 28), ("共享方式", 18),
    ("是否向社会开放", 10), ("开放条件", 18), ("更新周期", 10), ("发布日期", 12),
    ("关联资源代码", 20), ("图层", 16), ("数据更新时间", 18), ("状态", 8),
]
ITEM_COLUMNS = [("信息资源代码", 17), ("信息资源名称", 26), ("序号", 6), ("信息项名称", 20),
                ("数据类型", 8), ("数据长度", 9), ("共享类型", 12)]


def classification_label(e: dict[str, Any]) -> str:
    parts = [vocab.CLASSES.label(e["class_code"]),
             vocab.join_part(e["item_code"], e["item_name"]),
             vocab.join_part(e["category_code"], e["category_name"])]
    if e.get("subcategory_code"):
        parts.append(vocab.join_part(e["subcategory_code"], e["subcategory_name"]))
    return " / ".join(parts)


def summary_row(n: int, e: dict[str, Any]) -> list[Any]:
    return [n, e["code"], e["name"], e["provider_name"], e["provider_uscc"],
            classification_label(e), vocab.FORMATS.label(e["format"]), len(e["items"]),
            vocab.SHARING_TYPES.label(e["sharing_type"]), e.get("sharing_condition"),
            vocab.SHARING_METHODS.label(e["sharing_method"]), "是" if e["is_open"] else "否",
            e.get("open_condition"), vocab.UPDATE_CYCLES.label(e["update_cycle"]),
            e.get("publish_date"), "；".join(e.get("related_codes") or []) or None,
            vocab.STATUSES[e["status"]]]


def catalog_row(n: int, e: dict[str, Any]) -> list[Any]:
    upd = e.get("data_updated_at")
    return [n, e["code"], e["name"], vocab.CLASSES.label(e["class_code"]),
            vocab.join_part(e["item_code"], e["item_name"]),
            vocab.join_part(e["category_code"], e["category_name"]),
            vocab.join_part(e.get("subcategory_code"), e.get("subcategory_name")) or None,
            e["provider_name"], e["provider_uscc"], e["abstract"],
            vocab.FORMATS.label(e["format"]), vocab.SHARING_TYPES.label(e["sharing_type"]),
            e.get("sharing_condition"), vocab.SHARING_METHODS.label(e["sharing_method"]),
            "是" if e["is_open"] else "否", e.get("open_condition"),
            vocab.UPDATE_CYCLES.label(e["update_cycle"]), e.get("publish_date"),
            "；".join(e.get("related_codes") or []) or None, e.get("layer_name"),
            upd.strftime("%Y-%m-%d %H:%M") if upd else None, vocab.STATUSES[e["status"]]]


def item_rows(e: dict[str, Any]) -> list[list[Any]]:
    return [[e["code"], e["name"], i, it["name"], it["data_type"], it.get("length"),
             vocab.SHARING_TYPES.label(it["sharing_type"])]
            for i, it in enumerate(e["items"], start=1)]


def _table(ws, title: str, columns: list[tuple[str, int]], rows: list[list[Any]],
           subtitle: str | None = None) -> None:
    n = len(columns)
    ws.cell(1, 1, title).font = Font(bold=True, size=14)
    ws.cell(1, 1).alignment = CENTER
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=n)
    ws.cell(2, 1, subtitle or "")
    ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=n)
    for j, (h, w) in enumerate(columns, start=1):
        c = ws.cell(3, j, h)
        c.fill, c.font, c.alignment, c.border = HEAD_FILL, HEAD_FONT, CENTER, BORDER
        ws.column_dimensions[get_column_letter(j)].width = w
    for i, row in enumerate(rows, start=4):
        for j, v in enumerate(row, start=1):
            c = ws.cell(i, j, v)
            c.border, c.alignment = BORDER, WRAP
            if isinstance(v, dt.date):
                c.number_format = "yyyy-mm-dd"
    ws.freeze_panes = "D4"
    if rows:
        ws.auto_filter.ref = f"A3:{get_column_letter(n)}{len(rows) + 3}"


def write_summary(path: str | Path, entries: list[dict[str, Any]],
                  as_of: dt.date | None = None) -> Path:
    """汇总表 (附件2): one row per resource, and per-department figures."""
    wb = Workbook()
    ws = wb.active
    ws.title = SUMMARY_SHEET
    as_of = as_of or dt.date.today()
    _table(ws, SUMMARY_TITLE, SUMMARY_COLUMNS,
           [summary_row(n, e) for n, e in enumerate(entries, start=1)],
           f"附件2　　汇总单位：江门市网信统筹局　　截至：{as_of.isoformat()}　　"
           f"共 {len(entries)} 条信息资源")
    st = wb.create_sheet("部门统计")
    figures: dict[str, dict[str, int]] = {}
    for e in entries:
        f = figures.setdefault(e["provider_name"], {k: 0 for k in (
            "total", "unconditional", "conditional", "not_shared", "open", "spatial",
            "items")})
        f["total"] += 1
        f[e["sharing_type"]] += 1
        f["open"] += int(e["is_open"])
        f["spatial"] += int(e["format"] in vocab.SPATIAL_FORMATS)
        f["items"] += len(e["items"])
    cols = [("部门", 24), ("信息资源数", 10), ("无条件共享", 10), ("有条件共享", 10),
            ("不予共享", 10), ("向社会开放", 10), ("空间信息资源", 12), ("信息项数", 10)]
    rows = [[d, f["total"], f["unconditional"], f["conditional"], f["not_shared"],
             f["open"], f["spatial"], f["items"]] for d, f in sorted(figures.items())]
    total = [sum(r[k] for r in rows) for k in range(1, 8)]
    _table(st, "各部门信息资源编目情况", cols, [*rows, ["合计", *total]])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def write_catalog(path: str | Path, entries: list[dict[str, Any]]) -> Path:
    """The city catalog (江门市政务信息资源目录): resources and their data items."""
    wb = Workbook()
    ws = wb.active
    ws.title = "目录"
    _table(ws, CATALOG_TITLE, CATALOG_COLUMNS,
           [catalog_row(n, e) for n, e in enumerate(entries, start=1)],
           f"编制：江门市网信统筹局　　共 {len(entries)} 条信息资源")
    wi = wb.create_sheet("信息项")
    _table(wi, f"{CATALOG_TITLE}·信息项", ITEM_COLUMNS,
           [r for e in entries for r in item_rows(e)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def write_csv(path: str | Path, columns: list[tuple[str, int]],
              rows: list[list[Any]]) -> Path:
    """UTF-8 with BOM so Excel opens Chinese text correctly."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([h for h, _ in columns])
        for row in rows:
            w.writerow(["" if v is None else v.isoformat() if isinstance(v, dt.date) else v
                        for v in row])
    return path
