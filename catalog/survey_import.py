"""Reading and importing the survey sheet (调查表, 附件1).

Reading is forgiving where a person would be (merged or repeated resource cells, header
text with hints or line breaks, columns in another order, blank rows, full-width
characters, stray and ideographic spaces, ``03`` typed as the number 3) and precise
where it must refuse: every problem is reported with its sheet, row and column, in
Chinese with English beside, and nothing is written unless the whole sheet is valid.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException

from catalog import store
from catalog.sheet import (
    COL_BY_KEY,
    COLUMNS,
    ENTRY_KEYS,
    FIELD_COLUMN,
    ITEM_FIELD_COLUMN,
    ITEM_KEYS,
    LISTS_SHEET,
    NOTES_SHEET,
    SURVEY_SHEET,
    CellError,
    ImportReport,
    SheetError,
)
from catalog.survey_rows import (
    ResourceRows,
    check_against_catalog,
    departments_by_uscc,
    existing_entry,
    group_content,
    is_blank,
)
from catalog.vocab import clean_text, norm_key
from layers import localday as clock
from layers.policy import Caller

# ---------------------------------------------------------------------------- reading

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

    groups: list[ResourceRows] = []
    for i in range(start, len(rows)):
        r = i + 1
        raw = rows[i]
        vals = {k: _cell_value(raw[j]) if j < len(raw) else None for k, j in mapping.items()}
        if all(is_blank(v) for k, v in vals.items() if k != "seq"):
            continue  # blank row (or a row with only its 序号)
        entry_vals = {k: vals.get(k) for k in ["seq", *ENTRY_KEYS]}
        item_vals = {k: vals.get(k) for k in ITEM_KEYS}
        key = (entry_vals["seq"], entry_vals["name"])
        g = groups[-1] if groups else None
        new = g is None or ((not is_blank(key[0]) or not is_blank(key[1])) and
                            (key != (g.values.get("seq"), g.values.get("name"))))
        if new:
            g = ResourceRows(r, entry_vals, {k: r for k in entry_vals})
            groups.append(g)
        else:
            for k, v in entry_vals.items():
                if is_blank(v):
                    continue
                if is_blank(g.values.get(k)):
                    g.values[k], g.rows[k] = v, r
                elif g.values[k] != v:
                    err(r, k, f"同一信息资源在第{g.rows[k]}行填写为「{g.values[k]}」，本行为「{v}」，"
                              "请保持一致或合并单元格",
                        f"differs from row {g.rows[k]} of the same resource")
        if any(not is_blank(v) for v in item_vals.values()):
            g.items.append((r, item_vals))

    seen_names: dict[tuple[str, str], int] = {}
    seen_codes: dict[str, int] = {}
    depts = departments_by_uscc(conn) if conn is not None else None
    for g in groups:
        content, bad = group_content(g, err, depts)
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
            check_against_catalog(conn, content, g, err)
        report.entries.append(content)
    if not groups and not report.errors:
        report.errors.append(CellError(sheet, start + 1, None, None,
                                       "调查表没有填写任何信息资源",
                                       "the sheet lists no resources"))
    if report.errors:
        report.entries = []
    report.errors.sort(key=lambda e: (e.row or 0, e.column or ""))
    return report


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
                existing = existing_entry(conn, content)
                eid = existing if existing and existing > 0 else None
                extra_status = status if eid is None else None
                entry_id, outcome = store.save(conn, content, caller, entry_id=eid,
                                               status=extra_status, action="import")
                if eid is None and status == "published":
                    conn.execute("UPDATE catalog_entry SET review_state = 'approved', "
                                 "reviewed_by = %s, reviewed_at = now(), publish_date = "
                                 "coalesce(publish_date, %s) WHERE id = %s",
                                 (store.actor_name(caller), clock.today(), entry_id))
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
