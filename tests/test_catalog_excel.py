"""Survey sheets: template dropdowns, import (all-or-nothing, idempotent, every error by
cell), export round trip, summary sheet, CSV and DCAT."""

from __future__ import annotations

import csv
import json

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.utils import get_column_letter

from catalog import excel, exports, samples, store
from layers.departments import ensure_departments
from layers.policy import Caller

BUREAU = Caller(kind="admin", name="bureau")


@pytest.fixture
def conn(db):
    ensure_departments(db)
    return db


def _grid(path):
    wb = load_workbook(path)
    ws = wb[excel.SURVEY_SHEET]
    cells = [[c.value for c in row] for row in ws.iter_rows()]
    while cells and all(v is None for v in cells[-1]):
        cells.pop()
    return cells, sorted(str(r) for r in ws.merged_cells.ranges)


def test_template_has_dropdowns_for_every_vocabulary(tmp_path):
    path = excel.write_template(tmp_path / "t.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames[0] == "调查表" and wb["代码表"].sheet_state == "hidden"
    ws = wb["调查表"]
    headers = {ws.cell(4, j).value or ws.cell(3, j).value: get_column_letter(j)
               for j in range(1, len(excel.COLUMNS) + 1)}
    covered = {str(dv.sqref).split(":")[0].rstrip("0123456789"): dv.formula1
               for dv in ws.data_validations.dataValidation}
    for key, values in excel.LIST_VOCABS:
        col = excel.COL_BY_KEY[key]
        letter = headers[col.header + ("*" if col.required else "")]
        assert letter in covered, col.header
        ref = covered[letter].split("!")[1].replace("$", "")
        listed = [c.value for row in wb["代码表"][ref] for c in row]
        assert listed == values
    assert "无条件共享" in excel.LIST_VOCABS[5][1]
    # an empty template imports as "no resources", not as a crash
    report = excel.read_survey(path)
    assert not report.ok and "没有填写任何信息资源" in report.errors[0].zh


def test_sample_round_trips_import_export_unchanged(conn, tmp_path):
    sample = samples.write_sample(tmp_path / "sample.xlsx")
    report = excel.import_survey(conn, sample, BUREAU, status="published")
    assert report.ok, report.text()
    counts = report.counts()  # "unchanged" when another test module imported it first
    assert counts["updated"] == 0 and counts["created"] + counts["unchanged"] == 11
    assert not report.warnings
    again = excel.import_survey(conn, sample, BUREAU, status="published")
    assert again.counts() == {"created": 0, "updated": 0, "unchanged": 11}  # idempotent
    paths = exports.export_all(conn, tmp_path / "out", dept=None)
    got = [e for e in exports.select(conn) if e["layer_name"] is None]
    assert len(got) >= 11
    codes = {e["code"] for e in samples.sample_entries()}
    mine = [store.content_of(e) for e in got if e["code"] in codes]
    excel.write_survey(tmp_path / "mine.xlsx", mine, exports.departments(conn))
    assert _grid(tmp_path / "mine.xlsx") == _grid(sample)
    # the exported survey sheet re-imports to the same catalog
    assert excel.import_survey(conn, paths["survey"], BUREAU).counts()["updated"] == 0
    # summary sheet, city catalog, CSV and DCAT
    ws = load_workbook(paths["summary"])["汇总表"]
    assert ws["A1"].value == "江门市政务信息资源汇总表"
    names = [ws.cell(r, 3).value for r in range(4, ws.max_row + 1)]
    assert "道路中心线" in names and "不动产登记信息" in names
    with open(paths["catalog_csv"], encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    road = next(r for r in rows if r["信息资源名称"] == "道路中心线")
    assert road["信息资源代码"] == "10303101/000001" and road["是否向社会开放"] == "是"
    with open(paths["items_csv"], encoding="utf-8-sig") as fh:
        items = [r for r in csv.DictReader(fh) if r["信息资源代码"] == "10303101/000001"]
    assert [i["信息项名称"] for i in items][:2] == ["道路编码", "道路名称"]
    doc = json.loads(paths["dcat"].read_text(encoding="utf-8"))
    ds = {d["dct:identifier"]: d for d in doc["dcat:dataset"]}
    assert ds["10303101/000001"]["dct:accessRights"]["@id"] == "jm:open"
    assert ds["301001/000001"]["dct:accessRights"]["@id"] == "jm:conditional"
    assert ds["103041/000001"]["dct:accessRights"]["@id"] == "jm:not_shared"
    assert "人民防空法" in ds["103041/000001"]["dct:accessRights"]["dct:description"]["@value"]
    assert ds["103011/000001"]["dct:accessRights"]["@id"] == "jm:unconditional"


def test_broken_sample_reports_every_planted_error_by_cell(conn, tmp_path):
    path = tmp_path / "broken.xlsx"
    planted = samples.write_broken_sample(path)
    before = conn.execute("SELECT count(*) FROM catalog_entry").fetchone()[0]
    with pytest.raises(excel.SheetError) as exc:
        excel.import_survey(conn, path, BUREAU)
    report = exc.value.report
    got = sorted({e.cell.split("!")[1] for e in report.errors})
    assert got == sorted(cell for cell, _ in planted), report.text()
    assert all(e.sheet == "调查表 " for e in report.errors)
    text = report.text()
    for needle in ("矢量图", "有条件共享必须填写共享条件", "法律", "C N Y D T L M G B I F",
                   "数据长度", "格式错误", "前段码", "2024-13-45", "更宽松",
                   "无条件共享", "重复", "校验码"):
        assert needle in text, needle
    # the noise was tolerated: the extra column is a note, not an error
    assert [w.header for w in report.warnings] == ["备注"]
    # nothing was half-imported
    assert conn.execute("SELECT count(*) FROM catalog_entry").fetchone()[0] == before


def test_wrong_sheet_name_and_bad_file(tmp_path):
    wb = Workbook()
    wb.active.title = "Sheet1"
    wb.save(tmp_path / "w.xlsx")
    r = excel.read_survey(tmp_path / "w.xlsx")
    assert not r.ok and "Sheet1" in r.errors[0].zh and "调查表" in r.errors[0].zh
    path = samples.write_sample(tmp_path / "renamed.xlsx")
    wb = load_workbook(path)
    wb["调查表"].title = "Sheet1"
    wb.save(path)
    r = excel.read_survey(path)
    assert r.ok and len(r.entries) == 11 and "Sheet1" in r.warnings[0].zh
    (tmp_path / "x.xlsx").write_text("not a workbook")
    r = excel.read_survey(tmp_path / "x.xlsx")
    assert not r.ok and ".xlsx" in r.errors[0].zh


def test_repeated_cells_instead_of_merges_and_missing_column(conn, tmp_path):
    sample = samples.write_sample(tmp_path / "s.xlsx")
    wb = load_workbook(sample)
    ws = wb["调查表"]
    for rng in list(ws.merged_cells.ranges):
        if rng.min_row >= 5:
            v = ws.cell(rng.min_row, rng.min_col).value
            ws.unmerge_cells(str(rng))
            for r in range(rng.min_row, rng.max_row + 1):
                ws.cell(r, rng.min_col, v)
    ws.cell(7, 3).value = 3  # 项 typed as a number → "03" … but a conflict with row 5
    wb.save(tmp_path / "flat.xlsx")
    r = excel.read_survey(tmp_path / "flat.xlsx", conn)
    assert [e.cell for e in r.errors] == ["调查表!C7"] and "一致" in r.errors[0].zh
    ws.cell(7, 3).value = "03 自然资源和空间地理"
    ws.delete_cols(21)  # 更新周期
    wb.save(tmp_path / "flat.xlsx")
    r = excel.read_survey(tmp_path / "flat.xlsx", conn)
    assert len(r.errors) == 1 and "更新周期" in r.errors[0].zh


def test_import_against_the_catalog(conn, tmp_path):
    """Codes and names are checked against entries already catalogued."""
    samples_ = samples.sample_entries()
    depts = exports.departments(conn)
    excel.import_survey(conn, samples.write_sample(tmp_path / "s.xlsx"), BUREAU,
                        status="published")
    road = next(e for e in samples_ if e["name"] == "道路中心线")
    other = dict(road, name="道路红线", provider_code="jt")  # same code, other name
    theft = dict(road, name="道路中心线", provider_code="gh")  # another department
    excel.write_survey(tmp_path / "c.xlsx", [other], depts)
    r = excel.read_survey(tmp_path / "c.xlsx", conn)
    assert [e.cell for e in r.errors] == ["调查表!G5"]
    assert "已用于本部门的「道路中心线」" in r.errors[0].zh
    excel.write_survey(tmp_path / "d.xlsx", [theft], depts)
    r = excel.read_survey(tmp_path / "d.xlsx", conn)
    assert [e.cell for e in r.errors] == ["调查表!G5"]
    assert "江门市交通运输局" in r.errors[0].zh
    # a new resource without a code gets one generated from its classification
    new = dict(road, name="道路桥梁", code=None)
    excel.write_survey(tmp_path / "n.xlsx", [new], depts)
    rep = excel.import_survey(conn, tmp_path / "n.xlsx", BUREAU)
    assert rep.outcomes[0][0].startswith("10303101/") and rep.outcomes[0][2] == "created"
    assert excel.import_survey(conn, tmp_path / "n.xlsx", BUREAU).counts()["unchanged"] == 1
