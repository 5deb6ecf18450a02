"""Writing the Excel forms: the survey sheet and its blank template (调查表, 附件1), the
summary sheet (汇总表, 附件2), the city catalog, and CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from catalog import vocab
from catalog.sheet import (
    CATALOG_TITLE,
    COL_BY_KEY,
    COLUMNS,
    LISTS_SHEET,
    NOTES_SHEET,
    SUMMARY_SHEET,
    SUMMARY_TITLE,
    SURVEY_SHEET,
    SURVEY_TITLE,
    TEMPLATE_ROWS,
    Col,
)
from layers import localday as clock

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
    as_of = as_of or clock.today()
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
