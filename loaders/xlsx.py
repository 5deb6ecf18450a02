"""XLSX sheets as table records: openpyxl's read-only (streaming) mode into the same
Arrow batches the CSV reader makes.

Every cell becomes text first — exactly as a CSV arrives — so codes keep their leading
zeros and :func:`loaders.attributes.plan_attributes` infers numbers and dates the same
way for both. Numbers Excel stores as floats are written without a spurious ``.0``,
dates as ISO ``YYYY-MM-DD``. The header is the first row; empty rows at the end of the
sheet (Excel's formatted-but-empty rows) are ignored, empty rows in the middle are kept
(they are records without a key, which the key check names by sheet row).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pyarrow as pa

from loaders.encoding import EncodingDecision
from loaders.errors import LoaderError
from loaders.readers import Reader, _empty, check_field_count, prefetch
from loaders.source import Source


def _open(src: Source):
    import openpyxl

    try:
        return openpyxl.load_workbook(src.path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, XML and openpyxl errors alike
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoaderError("unreadable", f"无法读取该 XLSX 文件（{msg}）",
                          f"cannot read the XLSX workbook ({msg})", file=src.display,
                          fix_zh="用 Excel 另存为 .xlsx 后重试（不支持旧的 .xls）",
                          fix_en="save it again as .xlsx from Excel (old .xls is not "
                          "supported)") from exc


def list_sheets(src: Source) -> list[str]:
    """The workbook's sheet names, in order (``jmgeo load --list-layers``)."""
    wb = _open(src)
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


def cell_text(v: object) -> str:
    """One cell as the text a CSV export would hold."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time() else v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _header(row: tuple, src: Source, sheet: str) -> list[str]:
    names: list[str] = []
    seen: dict[str, int] = {}
    for i, v in enumerate(row, start=1):
        name = cell_text(v).strip() or f"column_{i}"
        if name in seen:  # Arrow needs distinct names; the label keeps what was written
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        names.append(name)
    while names and names[-1].startswith("column_") and len(names) > 1:
        names.pop()  # trailing unnamed columns are formatting, not data
    if not names:
        raise LoaderError("empty_layer", f"工作表 {sheet} 没有表头行", f"sheet {sheet!r} has "
                          "no header row", file=src.display,
                          fix_zh="第一行写字段名，数据从第二行开始",
                          fix_en="put the field names in the first row, the records below")
    return names


def _table(names: list[str], cols: list[list[str]]) -> pa.Table:
    return pa.table({n: pa.array(c, pa.string()) for n, c in zip(names, cols, strict=True)})


def xlsx_reader(src: Source, sheet: str | None, batch_size: int) -> Reader:
    """Records of one sheet (``--sheet NAME``, default the first) as text batches."""
    wb = _open(src)
    sheets = list(wb.sheetnames)
    if sheet is not None and sheet not in sheets:
        wb.close()
        raise LoaderError("no_such_sheet", f"工作簿中没有工作表 {sheet}，现有：{', '.join(sheets)}",
                          f"there is no sheet {sheet!r}; the workbook has: "
                          f"{', '.join(sheets)}", file=src.display,
                          fix_zh="用 --sheet 选择其中之一", fix_en="choose one with --sheet")
    name = sheet or sheets[0]
    rows = wb[name].iter_rows(values_only=True)
    first = next(rows, None)
    if first is None:
        wb.close()
        raise _empty(src)
    names = _header(first, src, name)
    check_field_count(len(names), src)
    width = len(names)

    def batches() -> Iterator[tuple[pa.Table, None]]:
        cols: list[list[str]] = [[] for _ in range(width)]
        blank = 0  # empty rows seen, kept only if a record follows them
        try:
            for row in rows:
                cells = [cell_text(v) for v in row[:width]]
                if not any(c.strip() for c in cells):
                    blank += 1
                    continue
                for c in cols:
                    c.extend([""] * blank)
                blank = 0
                cells += [""] * (width - len(cells))
                for c, v in zip(cols, cells, strict=True):
                    c.append(v)
                if len(cols[0]) >= batch_size:
                    yield _table(names, cols), None
                    cols = [[] for _ in range(width)]
            if cols[0]:
                yield _table(names, cols), None
        finally:
            wb.close()

    enc = EncodingDecision("UTF-8", "UTF-8", "format",
                           "XLSX 格式规定 UTF-8 / the XLSX format is UTF-8 by definition")
    schema = pa.schema([pa.field(n, pa.string()) for n in names])
    return Reader(schema=schema, total=None, declared_crs=None, encoding=enc,
                  geometry_type=None, batches=prefetch(batches()), source_layer=name,
                  text_inference=True, row_offset=1,
                  notes=[f"工作表 / sheet: {name}"] if len(sheets) > 1 else [])
