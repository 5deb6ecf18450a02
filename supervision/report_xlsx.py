"""The supervision report (通报) as an XLSX workbook: the PDF's tables, then the rows
behind every figure (the 明细 sheets) — a figure can be recounted with a filter.

Values are stored as values (numbers, dates, 是/否), totals included, so the workbook
reads the same in any program and a test can add the columns up.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from supervision.tables import drill_tables, summary_tables

HEAD = PatternFill("solid", fgColor="EEF2F7")
BOLD = Font(bold=True)


def _value(v: Any) -> Any:
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, datetime):
        return v.replace(tzinfo=None)
    return v


def _sheet(wb: Workbook, title: str, headers: list[str], rows: list[list[Any]],
           total: list[Any] | None = None, caption: str | None = None) -> None:
    ws = wb.create_sheet(title[:31])
    if caption:
        ws.append([caption])
        ws["A1"].font = Font(bold=True, size=12)
    ws.append(headers)
    head_row = ws.max_row
    for cell in ws[head_row]:
        cell.font, cell.fill = BOLD, HEAD
        cell.alignment = Alignment(horizontal="center", wrap_text=True)
    for r in rows:
        ws.append([_value(v) for v in r])
    if total is not None:
        ws.append([_value(v) for v in total])
        for cell in ws[ws.max_row]:
            cell.font = BOLD
    for i, h in enumerate(headers, 1):
        col = get_column_letter(i)
        ws.column_dimensions[col].width = max(10, min(40, 2.2 * len(h) + 2))
        for cell in ws[col][head_row:]:
            if "率" in h and isinstance(cell.value, float):
                cell.number_format = "0.0%"
            elif isinstance(cell.value, (date, datetime)):
                cell.number_format = "yyyy-mm-dd"
    ws.freeze_panes = ws.cell(row=head_row + 1, column=2)


def render_xlsx(fig: dict[str, Any]) -> bytes:
    """The workbook as bytes."""
    wb = Workbook()
    info = wb.active
    info.title = "说明"
    p = fig["period"]
    for row in (["江门市政务信息资源共享工作通报"], ["统计期", p["zh"], p["label"]],
                ["统计范围", "全市" if fig["scope"] == "city" else fig["scope"]],
                ["起止日期", p["start"], p["end"]], ["数据截至", p["as_of"]],
                ["统计期已结束", "是" if p["complete"] else "否"], [],
                ["更新规则"], *[[k, v] for k, v in fig["rules"].items()], [],
                ["综合得分权重"], *[[k, v] for k, v in fig["weights"].items()]):
        info.append(row)
    info["A1"].font = Font(bold=True, size=14)
    info.column_dimensions["A"].width = 18
    info.column_dimensions["B"].width = 60
    for title, headers, rows, total in summary_tables(fig):
        _sheet(wb, title, headers, rows, total, caption=f"{title}（{p['zh']}）")
    for title, headers, rows in drill_tables(fig):
        _sheet(wb, title, headers, rows)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
