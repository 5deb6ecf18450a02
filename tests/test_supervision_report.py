"""The 通报 as PDF and XLSX from the synthetic quarter; the reminders; the CLI."""

from __future__ import annotations

import io
import subprocess
import sys

import psycopg
import pytest
from supervision_fixtures import JUDGE, quarter_database

from supervision import reports


@pytest.fixture(scope="module")
def quarter():
    yield from quarter_database()


@pytest.fixture(scope="module")
def built(quarter):
    with psycopg.connect(quarter.dsn, autocommit=True) as conn:
        return reports.build(conn, "2026Q4", today=JUDGE)


def test_pdf_has_the_departments_and_figures_in_chinese(built):
    from pypdf import PdfReader

    fig, pdf, _ = built
    assert pdf.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(pdf))
    text = "".join(page.extract_text() for page in reader.pages)
    compact = "".join(text.split())
    assert "江门市政务信息资源共享工作通报" in compact
    assert "2026年第四季度" in compact
    for name in ("江门市国土资源局", "江门市水务局", "江门市交通运输局"):
        assert name in compact, name
    # the ranking's scores, the city's timeliness (3 of 14: 21.4%), gtzy's median of 3
    assert "基础库校核工单" in compact and "新增校核工单4件" in compact
    for figure in ("74.4", "60.2", "21.4%", "66.7%"):
        assert figure in compact, figure
    images = sum(len(page.images) for page in reader.pages)
    assert images >= 3  # the ranking, timeliness and exchange charts


def test_pdf_page_one_is_not_blank(built):
    import pypdfium2

    doc = pypdfium2.PdfDocument(built[1])
    image = doc[0].render(scale=1).to_pil().convert("L")
    hist = image.histogram()
    dark = sum(hist[:128])
    assert dark > 0.01 * image.width * image.height  # text, rules and charts, not a blank
    assert len(image.getcolors(maxcolors=256) or []) > 20  # anti-aliased text, charts


def test_xlsx_tables_and_totals(built):
    from openpyxl import load_workbook

    fig, _, xlsx = built
    wb = load_workbook(io.BytesIO(xlsx))
    assert {"说明", "综合排名", "更新及时性", "目录编制", "数据质量与评议", "共享申请办理",
            "数据交换量", "纠错处理", "明细-更新及时性", "明细-共享申请", "明细-纠错"} <= \
        set(wb.sheetnames)
    ws = wb["更新及时性"]
    rows = [r for r in ws.iter_rows(min_row=3, values_only=True)]
    body, total = rows[:-1], rows[-1]
    assert total[0] == "合计（全市）"
    for col in (1, 2, 3, 4, 5):  # resources, obligations, on time, overdue, delinquent
        assert sum(r[col] for r in body) == total[col]
    assert (total[2], total[3]) == (14, 3)
    # the drill-down holds one row per obligation, adding up to the same figures
    drill = list(wb["明细-更新及时性"].iter_rows(min_row=2, values_only=True))
    assert len(drill) == 14
    assert sum(1 for r in drill if r[7] == "按期") == 3
    ex = list(wb["数据交换量"].iter_rows(min_row=3, values_only=True))
    assert ex[-1][1] == sum(r[1] for r in ex[:-1]) == 32
    req = list(wb["明细-共享申请"].iter_rows(min_row=2, values_only=True))
    assert sum(1 for r in req if r[10] == "是") == 2
    # the verification tickets: a row per authority, the city's total, the drill-down
    vt = list(wb["基础库校核工单"].iter_rows(min_row=3, values_only=True))
    assert vt[-1][0] == "合计（全市）" and vt[-1][1:6] == (4, 2, 1, 2, 2)
    for col in (1, 2, 3, 4, 5):
        assert sum(r[col] for r in vt[:-1]) == vt[-1][col]
    vd = list(wb["明细-校核工单"].iter_rows(min_row=2, values_only=True))
    assert len(vd) == 5 and sum(1 for r in vd if r[11] == "是") == 2


def test_reminders_once_per_level(quarter):
    with psycopg.connect(quarter.dsn, autocommit=True) as conn:
        sent = reports.remind(conn, JUDGE)
        assert sorted((s["resource"], s["level"], s["to"]) for s in sent) == [
            ("syn_bus", "delinquent", "wxtc"), ("syn_bus", "overdue", "jt"),
            ("syn_pipes", "overdue", "sw")]
        assert reports.remind(conn, JUDGE) == []
        kinds = conn.execute("SELECT d.code, n.kind FROM notification n JOIN department d ON "
                             "d.id = n.dept_id WHERE n.kind LIKE 'freshness%%' ORDER BY 1"
                             ).fetchall()
        assert kinds == [("jt", "freshness_overdue"), ("sw", "freshness_overdue"),
                         ("wxtc", "freshness_delinquent")]


def test_file_a_report_and_the_cli(quarter, tmp_path):
    from supervision_fixtures import BUREAU, dept

    from supervision.periods import Forbidden

    with psycopg.connect(quarter.dsn, autocommit=True) as conn:
        with pytest.raises(Forbidden):
            reports.file_report(conn, dept("sw"), "2026Q4", today=JUDGE)
        filed = reports.file_report(conn, BUREAU, "2026Q4", today=JUDGE)
        assert [r["id"] for r in reports.list_reports(conn, BUREAU)] == [filed["id"]]
        name, body = reports.report_file(conn, BUREAU, filed["id"], "pdf")
        assert name.endswith(".pdf") and body.startswith(b"%PDF")
    env = {"DATABASE_URL": quarter.dsn, "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "jmgeo.cli", "report", "supervision",
                          "--period", "2026Q3", "--out", str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "tongbao-2026Q3.pdf").stat().st_size > 10_000
    assert (tmp_path / "tongbao-2026Q3.xlsx").exists()
    bad = subprocess.run([sys.executable, "-m", "jmgeo.cli", "report", "supervision",
                          "--period", "2026Q9"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "格式错误" in bad.stderr and "malformed" in bad.stderr
