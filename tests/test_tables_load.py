"""Tables as resources: records without geometry, one declared key column, loaded from
CSV (UTF-8, GBK, database exports), XLSX sheets, a DBF on its own and GeoPackage attribute
tables — through the same stages, versions, report, history and rollback as layers.

Bad keys (missing column, duplicates, empty) exit 2 naming the rows a person finds in the
file, and store nothing. Real PostGIS, the real CLI; nothing mocked.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import psycopg
import pyogrio.raw
import pytest
import shapely
from test_loaders import CJK, assert_one_clear_line, cli, counts, rows

from layers import registry
from layers.departments import make_uscc, validate_uscc
from loaders.errors import LoaderError
from loaders.pipeline import LoadOptions, format_report, load

HEADER = ["统一社会信用代码", "企业名称", "法定代表人电话", "注册资本", "成立日期", "邮政编码"]


@pytest.fixture(scope="module")
def dsn(database_url: str) -> str:
    from layers.departments import ensure_departments

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn)
    return database_url


def uscc(i: int, region: str = "440703") -> str:
    return make_uscc("91", region, f"{i:08d}")


def records(n: int, start: int = 0) -> list[list[str]]:
    return [[uscc(start + i), f"江门市测试企业{start + i}有限公司", f"1380000{start + i:04d}",
             f"{100 + (start + i) % 50}.5", f"2010-0{1 + (start + i) % 9}-1{(start + i) % 10}",
             "529000"]
            for i in range(n)]


def write_csv(path: Path, rows_: list[list[str]], *, encoding: str = "utf-8",
              header: list[str] = HEADER, quote_all: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
                       lineterminator="\r\n")
        w.writerow(header)
        w.writerows(rows_)
    return path


def topts(layer: str, **kw) -> LoadOptions:
    base = {"dept": "scjg", "layer": layer, "theme": "enterprise", "sharing": "conditional",
            "kind": "table", "key": "统一社会信用代码"}
    return LoadOptions(**{**base, **kw})


def load_cli(path: Path, layer: str, capsys, *extra: str) -> tuple[int, str, str]:
    return cli(["load", str(path), "--dept", "scjg", "--layer", layer, "--theme", "enterprise",
                "--sharing", "conditional", "--no-progress", *extra], capsys)


def column(report: dict, source: str) -> str:
    """The ascii column the loader made of a source field."""
    return next(f["column"] for f in report["fields"] if f["source"] == source)


def registry_row(dsn: str, layer: str) -> dict:
    with psycopg.connect(dsn) as conn:
        return registry.get_layer(conn, layer)


def data_table(dsn: str, layer: str) -> str:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT v.table_name FROM layer l JOIN layer_version v ON v.layer_id = l.id AND "
            "v.version = l.current_version WHERE l.name = %s", (layer,)).fetchone()[0]


def assert_is_table(dsn: str, layer: str, key_col: str) -> None:
    entry = registry_row(dsn, layer)
    assert (entry["kind"], entry["geometry_type"], entry["key_field"]) == ("table", None,
                                                                         key_col)
    table = data_table(dsn, layer)
    with psycopg.connect(dsn) as conn:
        assert not registry.has_geometry(conn, table)
        unique = conn.execute(
            "SELECT i.indisunique FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
            "i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) "
            "AND a.attname = %s", (table, key_col)).fetchall()
    assert (True,) in unique, "the key has its UNIQUE index"


# -- CSV -------------------------------------------------------------------------------------
def test_utf8_csv_loads_as_a_table_through_the_cli(dsn, tmp_path, capsys):
    p = write_csv(tmp_path / "企业.csv", records(30))
    rc, out, err = load_cli(p, "ttab_csv", capsys, "--kind", "table", "--key", "统一社会信用代码",
                            "--sensitive", "法定代表人电话=phone")
    assert rc == 0, err
    assert "no geometry" in out and "read 30, loaded 30" in out and "CRS" not in out
    assert_is_table(dsn, "ttab_csv", "uscc")
    assert registry_row(dsn, "ttab_csv")["sensitive_fields"] == {"legal_rep_phone": "phone"}
    with psycopg.connect(dsn) as conn:
        report = conn.execute(
            "SELECT v.report FROM layer l JOIN layer_version v ON v.layer_id = l.id AND "
            "v.version = l.current_version WHERE l.name = 'ttab_csv'").fetchone()[0]
    assert report["target"]["kind"] == "table" and report["geometry"] is None
    assert "crs" not in report and "bbox" not in report
    assert report["quality"]["key_uniqueness"] == 1.0
    types = {f["source"]: f["type"] for f in report["fields"]}
    assert types["统一社会信用代码"] == "text" and types["注册资本"] == "double precision"
    assert types["成立日期"] == "date" and types["邮政编码"] == "text"


def test_table_dry_run_reports_and_changes_nothing(dsn, tmp_path, capsys):
    p = write_csv(tmp_path / "试装.csv", records(9), encoding="gbk")
    before = counts(dsn)
    rc, out, err = load_cli(p, "ttab_dry", capsys, "--kind", "table", "--key", "统一社会信用代码",
                            "--dry-run")
    assert rc == 0, err
    assert "DRY RUN" in out and "GBK" in out and "loaded 9" in out and "key uniqueness" in out
    assert counts(dsn) == before


def test_gbk_database_export_keeps_codes_and_reads_nulls(dsn, tmp_path):
    recs = records(12)
    recs[3][3] = "\\N"  # PostgreSQL / MySQL export of NULL
    p = tmp_path / "export.csv"
    p.write_bytes("\r\n".join([",".join(HEADER)] + [
        ",".join(v if v == "\\N" else f'"{v}"' for v in r) for r in recs]).encode("gbk"))
    report = load(p, topts("ttab_gbk"), dsn=dsn, progress=False)
    assert report["encoding"]["encoding"] == "GBK/GB18030"
    assert report["counts"] == {"read": 12, "loaded": 12}
    got = rows(dsn, "ttab_gbk", "uscc, enterprise_name, registered_capital, "
               f"{column(report, '邮政编码')}")
    assert got[0][0] == recs[0][0] and got[0][1] == "江门市测试企业0有限公司"
    assert got[3][2] is None and got[0][3] == "529000"
    assert_is_table(dsn, "ttab_gbk", "uscc")
    assert "no geometry" in format_report(report)


def test_csv_without_geometry_as_a_layer_names_the_table_option(dsn, tmp_path, capsys):
    p = write_csv(tmp_path / "名录.csv", records(5))
    before = counts(dsn)
    rc, _, err = load_cli(p, "ttab_nogeom", capsys)
    assert rc == 2 and "--kind table --key" in err
    assert_one_clear_line(err, p.name)
    rc, _, err = load_cli(p, "ttab_nogeom", capsys, "--kind", "table")
    assert rc == 2 and "--key" in err and CJK.search(err)
    assert counts(dsn) == before


# -- XLSX ------------------------------------------------------------------------------------
def workbook(path: Path, sheets: dict[str, list[list]], trailing_blank: int = 0) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, grid in sheets.items():
        ws = wb.create_sheet(name)
        for r in grid:
            ws.append(r)
        for i in range(trailing_blank):  # formatted but empty rows, as Excel leaves them
            ws.cell(row=len(grid) + 1 + i, column=1).number_format = "@"
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def test_xlsx_named_sheet_loads_with_types_and_leading_zeros(dsn, tmp_path, capsys):
    grid = [["统一社会信用代码", "企业名称", "注册资本", "成立日期", "员工人数", "邮政编码"]]
    grid += [[uscc(i, "440705"), f"新会企业{i}", 88.5 + i, dt.date(2015, 1 + i % 12, 3),
              10 + i, "0529000"] for i in range(20)]
    p = workbook(tmp_path / "名录.xlsx", {"说明": [["本表为演示"]], "企业名录": grid},
                 trailing_blank=5)
    rc, out, err = load_cli(p, "ttab_xlsx", capsys, "--kind", "table", "--key",
                            "统一社会信用代码", "--sheet", "企业名录", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["counts"] == {"read": 20, "loaded": 20}, "trailing empty rows are ignored"
    assert report["source"]["layer"] == "企业名录"
    types = {f["source"]: f["type"] for f in report["fields"]}
    assert types == {"统一社会信用代码": "text", "企业名称": "text", "注册资本": "double precision",
                     "成立日期": "date", "员工人数": "bigint", "邮政编码": "text"}
    got = rows(dsn, "ttab_xlsx", f"uscc, registered_capital, founded_date, "
               f"{column(report, '员工人数')}, {column(report, '邮政编码')}")
    assert got[0] == (uscc(0, "440705"), 88.5, dt.date(2015, 1, 3), 10, "0529000")
    assert_is_table(dsn, "ttab_xlsx", "uscc")


def test_xlsx_missing_sheet_lists_the_sheets_and_first_sheet_is_default(dsn, tmp_path, capsys):
    grid = [["统一社会信用代码", "名称"], *[[uscc(i), f"企业{i}"] for i in range(4)]]
    p = workbook(tmp_path / "两表.xlsx", {"企业名录": grid, "备注": [["x"]]})
    before = counts(dsn)
    rc, _, err = load_cli(p, "ttab_sheet", capsys, "--kind", "table", "--key",
                          "统一社会信用代码", "--sheet", "不存在")
    assert rc == 2 and "企业名录, 备注" in err and "--sheet" in err
    assert_one_clear_line(err, p.name)
    rc, _, err = load_cli(p, "ttab_sheet", capsys, "--key", "统一社会信用代码")
    assert rc == 2 and "--kind table" in err, "an XLSX without --kind table names the option"
    assert counts(dsn) == before
    rc, out, err = load_cli(p, "ttab_sheet", capsys, "--kind", "table", "--key",
                            "统一社会信用代码")
    assert rc == 0 and "loaded 4" in out, err
    rc, out, _ = cli(["load", str(p), "--list-layers"], capsys)
    assert rc == 0 and out.split() == ["企业名录", "table", "备注", "table"]


def test_xlsx_empty_key_rows_are_named_by_sheet_row(dsn, tmp_path):
    grid = [["统一社会信用代码", "名称"], [uscc(1), "a"], [uscc(2), "b"], [None, None],
            [uscc(3), "c"], ["", "无代码"]]
    p = workbook(tmp_path / "空行.xlsx", {"Sheet1": grid}, trailing_blank=3)
    before = counts(dsn)
    with pytest.raises(LoaderError) as exc:
        load(p, topts("ttab_xlsx_empty"), dsn=dsn, progress=False)
    assert exc.value.code == "key_empty"
    assert "第 4, 6 行" in exc.value.zh and "rows 4, 6" in exc.value.en
    assert counts(dsn) == before


# -- DBF, GeoPackage -------------------------------------------------------------------------
def test_dbf_alone_loads_as_a_table_and_is_refused_as_a_layer(dsn, tmp_path, capsys):
    folder = tmp_path / "dbf"
    folder.mkdir()
    n = 8
    pyogrio.raw.write(str(folder / "企业.shp"), shapely.to_wkb(shapely.points(
        np.full(n, 113.0), np.full(n, 22.5))),
        [np.array([uscc(i) for i in range(n)]), np.array([f"企业{i}" for i in range(n)])],
        ["TYSHXYDM", "MC"], driver="ESRI Shapefile", encoding="GBK", geometry_type="Point")
    for ext in (".shp", ".shx", ".cpg", ".prj"):
        (folder / f"企业{ext}").unlink(missing_ok=True)
    p = folder / "企业.dbf"
    before = counts(dsn)
    rc, _, err = load_cli(p, "ttab_dbf", capsys, "--key", "TYSHXYDM")
    assert rc == 2 and "--kind table" in err
    assert counts(dsn) == before
    report = load(p, topts("ttab_dbf", key="TYSHXYDM"), dsn=dsn, progress=False)
    assert report["source"]["format"] == "dbf" and report["counts"]["loaded"] == n
    assert report["encoding"]["encoding"] == "GBK/GB18030"
    assert rows(dsn, "ttab_dbf", "tyshxydm, mc")[2] == (uscc(2), "企业2")
    assert_is_table(dsn, "ttab_dbf", "tyshxydm")


def test_geopackage_attribute_table_is_chosen_for_kind_table(dsn, tmp_path, capsys):
    p = tmp_path / "混合.gpkg"
    pyogrio.raw.write(str(p), shapely.to_wkb(shapely.points([113.0, 113.1], [22.5, 22.6])),
                      [np.array(["a", "b"])], ["name"], driver="GPKG", layer="sites",
                      geometry_type="Point", crs="EPSG:4490")
    pyogrio.raw.write(str(p), None, [np.array([uscc(i) for i in range(6)]),
                                     np.arange(6, dtype=np.int64)], ["uscc", "staff"],
                      driver="GPKG", layer="firms", geometry_type=None, append=True)
    report = load(p, topts("ttab_gpkg", key="uscc"), dsn=dsn, progress=False)
    assert report["source"]["layer"] == "firms" and report["counts"]["loaded"] == 6
    assert {f["column"]: f["type"] for f in report["fields"]} == {"uscc": "text",
                                                                   "staff": "bigint"}
    assert_is_table(dsn, "ttab_gpkg", "uscc")
    before = counts(dsn)
    rc, _, err = load_cli(p, "ttab_gpkg2", capsys, "--source-layer", "firms")
    assert rc == 2 and "--kind table --key" in err, "an attribute table as a layer"
    rc, _, err = load_cli(p, "ttab_gpkg2", capsys, "--kind", "table", "--key", "name",
                          "--source-layer", "sites")
    assert rc == 2 and "has geometry" in err, "a spatial layer is not a table"
    assert counts(dsn) == before


# -- key checks ------------------------------------------------------------------------------
def test_missing_key_column_names_the_fields(dsn, tmp_path, capsys):
    p = write_csv(tmp_path / "缺键.csv", records(5))
    before = counts(dsn)
    rc, _, err = load_cli(p, "ttab_nokey", capsys, "--kind", "table", "--key", "USCC_CODE")
    assert rc == 2 and "USCC_CODE" in err and "企业名称" in err and "统一社会信用代码" in err
    assert_one_clear_line(err, p.name)
    assert counts(dsn) == before


def test_duplicate_keys_are_listed_by_csv_line_and_nothing_is_stored(dsn, tmp_path, capsys):
    recs = records(40)
    recs[4][0] = recs[1][0]    # lines 3 and 6 (the header is line 1)
    recs[30][0] = recs[1][0]   # line 32
    recs[9][0] = recs[7][0]    # lines 9 and 11
    p = write_csv(tmp_path / "重复.csv", recs)
    before = counts(dsn)
    rc, _, err = load_cli(p, "ttab_dup", capsys, "--kind", "table", "--key", "统一社会信用代码")
    assert rc == 2
    assert_one_clear_line(err, p.name)
    assert f"{recs[1][0]!r}×3 (rows 3, 6, 32)" in err and f"{recs[7][0]!r}×2 (rows 9, 11)" in err
    assert "第 3, 6, 32 行" in err and "nothing was stored" in err
    assert counts(dsn) == before
    with pytest.raises(LoaderError) as exc:
        load(p, topts("ttab_dup"), dsn=dsn, progress=False)
    assert exc.value.code == "key_not_unique"


def test_empty_keys_are_listed_first_20_by_row(dsn, tmp_path):
    recs = records(60)
    for i in range(5, 55, 2):  # 25 empty keys on lines 7, 9, …
        recs[i][0] = "  " if i % 4 else ""
    p = write_csv(tmp_path / "空键.csv", recs)
    before = counts(dsn)
    with pytest.raises(LoaderError) as exc:
        load(p, topts("ttab_empty"), dsn=dsn, progress=False)
    assert exc.value.code == "key_empty"
    listed = re.search(r"rows ([\d, ]+)\)", exc.value.en).group(1).split(", ")
    assert listed == [str(n) for n in range(7, 47, 2)] and "25 empty" in exc.value.en
    assert "first 20" in exc.value.en
    assert counts(dsn) == before


# -- versions --------------------------------------------------------------------------------
def test_reload_is_version_2_with_key_diff_and_rollback_restores(dsn, tmp_path, capsys):
    v1 = records(20)
    v2 = records(20, start=5)         # 0..4 removed, 20..24 added
    v2[0][1] = "改名后的企业"           # record 5 changed
    a = write_csv(tmp_path / "v1" / "企业.csv", v1, encoding="gbk")
    b = write_csv(tmp_path / "v2" / "企业.csv", v2, encoding="gbk")
    r1 = load(a, topts("ttab_versions"), dsn=dsn, progress=False)
    first = rows(dsn, "ttab_versions")
    r2 = load(b, topts("ttab_versions"), dsn=dsn, progress=False)
    assert (r1["target"]["version"], r2["target"]["version"]) == (1, 2)
    assert r2["key"]["diff"] == {"against_version": 1, "added": 5, "removed": 5, "changed": 1}
    rc, out, _ = cli(["layer", "history", "ttab_versions"], capsys)
    assert rc == 0 and re.search(r"\*\s+2", out) and "+5 -5 ~1" in out
    rc, out, err = cli(["layer", "rollback", "ttab_versions", "--to", "1"], capsys)
    assert rc == 0, err
    assert rows(dsn, "ttab_versions") == first
    rc, out, _ = cli(["layer", "show", "ttab_versions"], capsys)
    assert rc == 0 and "current 1" in out and "no geometry" in out
    with psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(registry.RegistryError):  # a table never becomes a layer
            registry.register_layer(conn, name="ttab_versions", title="x", dept="scjg",
                                    theme="enterprise", sharing_class="open", kind="vector")


def test_a_table_is_catalogued_like_a_layer(dsn, tmp_path):
    p = write_csv(tmp_path / "目录.csv", records(6))
    report = load(p, topts("ttab_catalog", title="企业名录（测试）"), dsn=dsn, progress=False)
    assert report["catalog"]["code"], report["warnings"]
    with psycopg.connect(dsn) as conn:
        entry = conn.execute("SELECT name, status FROM catalog_entry WHERE layer_name = "
                             "'ttab_catalog'").fetchone()
    assert entry == ("企业名录（测试）", "published")


def test_a_table_is_catalogued_with_a_table_format(dsn, tmp_path):
    p = write_csv(tmp_path / "格式.csv", records(3))
    load(p, topts("ttab_catalog_format"), dsn=dsn, progress=False)
    with psycopg.connect(dsn) as conn:
        fmt, item, extent, abstract = conn.execute(
            "SELECT format, item_code, extent, abstract FROM catalog_entry "
            "WHERE layer_name = 'ttab_catalog_format'").fetchone()
    assert fmt == "spreadsheet"  # loaded from a CSV: 电子表格
    assert extent is None and "数据表" in abstract and "CGCS2000" not in abstract
    assert item == "02"  # theme enterprise → 1 基础 / 02 法人单位


# -- the scale the issue asks for --------------------------------------------------------------
def many_usccs(n: int, regions: tuple[str, ...]) -> list[str]:
    """n distinct valid 统一社会信用代码 (GB 32100 check characters), array-computed: the
    loop in make_uscc would take seconds for 100,000. Checked by validate_uscc below."""
    from layers.departments import ORG_WEIGHTS, USCC_CHARSET, USCC_WEIGHTS

    org = np.array([list(f"{i:08d}") for i in range(n)], dtype=np.int64)
    c = 11 - (org * np.array(ORG_WEIGHTS)).sum(1) % 11
    org_check = np.where(c == 10, USCC_CHARSET.index("X"), np.where(c == 11, 0, c))
    head = np.array([[9, 1, *map(int, regions[i % len(regions)])] for i in range(n)])
    first17 = np.column_stack([head, org, org_check])
    check = (31 - (first17 * np.array(USCC_WEIGHTS)).sum(1) % 31) % 31
    chars = np.array(list(USCC_CHARSET))
    return ["".join(r) for r in chars[np.column_stack([first17, check])]]


def test_100k_gbk_enterprise_records_load_as_a_table(dsn, tmp_path):
    n = 100_000
    regions = ("440703", "440704", "440705", "440781", "440783", "440784", "440785")
    lines = ["统一社会信用代码,企业名称,法定代表人,法定代表人电话,注册资本（万元）,成立日期,所属区县"]
    for i, code in enumerate(many_usccs(n, regions)):
        lines.append(f'"{code}","江门市第{i}号企业有限公司",'
                     f'"陈{i % 97}","13{i:09d}","{(i % 1000) + 0.5}","20{i % 24:02d}-0{1 + i % 9}-15",'
                     f'"{regions[i % 7]}"')
    p = tmp_path / "企业名录_10万.csv"
    p.write_bytes("\r\n".join(lines).encode("gbk"))
    before = counts(dsn)
    report = load(p, topts("ttab_100k", sensitive={"法定代表人电话": "phone"}), dsn=dsn,
                  progress=False)
    assert report["counts"] == {"read": n, "loaded": n}
    assert report["encoding"]["encoding"] == "GBK/GB18030"
    assert counts(dsn)["versions"] == before["versions"] + 1
    assert_is_table(dsn, "ttab_100k", "uscc")
    table = data_table(dsn, "ttab_100k")
    with psycopg.connect(dsn) as conn:
        total, distinct = conn.execute(f"SELECT count(*), count(DISTINCT uscc) FROM {table}"
                                       ).fetchone()
        sample = [r[0] for r in conn.execute(f"SELECT uscc FROM {table} WHERE fid % 997 = 0 "
                                             "ORDER BY fid")]
    assert total == distinct == n
    assert len(sample) == n // 997 and [validate_uscc(c) for c in sample] == sample
    assert sample[0] == make_uscc("91", regions[996 % 7], f"{996:08d}")  # fid 997


# -- the upload API and the demo ---------------------------------------------------------------
def test_upload_api_takes_a_table_with_the_same_options(app_client, dsn, tmp_path):
    from layers.identity import create_key

    with psycopg.connect(dsn, autocommit=True) as conn:
        token = create_key(conn, "ttab-scjg", dept="scjg")["token"]
    auth = {"Authorization": f"Bearer {token}"}
    p = write_csv(tmp_path / "上传.csv", records(7), encoding="gbk")
    files = {"file": (p.name, p.read_bytes(), "text/csv")}
    form = {"dept": "scjg", "layer": "ttab_upload", "theme": "enterprise",
            "sharing": "conditional", "key": "统一社会信用代码"}
    before = counts(dsn)
    r = app_client.post("/layers/upload", files=files, data=form, headers=auth)
    assert r.status_code == 422 and "--kind table" in r.json()["description"]
    assert counts(dsn) == before
    r = app_client.post("/layers/upload", files=files, data={**form, "kind": "table"},
                        headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["target"]["kind"] == "table" and r.json()["counts"]["loaded"] == 7
    assert_is_table(dsn, "ttab_upload", "uscc")


def test_demo_enterprises_table(dsn, tmp_path):
    from loaders.demo import demo_layers, make_enterprises

    p = make_enterprises(tmp_path)
    raw = p.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    lines = raw.decode("gbk").splitlines()
    assert len(lines) == 201 and lines[0].startswith('"统一社会信用代码"')
    codes = [ln.split(",")[0].strip('"') for ln in lines[1:]]
    assert len(set(codes)) == 200 and all(validate_uscc(c) == c for c in codes)
    assert make_enterprises(tmp_path).read_bytes() == raw, "deterministic"
    _, opts = next((f, o) for f, o in demo_layers(None, tmp_path / "all")
                   if o.layer == "enterprises")
    report = load(p, opts, dsn=dsn, progress=False)
    assert report["counts"]["loaded"] == 200 and report["encoding"]["encoding"] == \
        "GBK/GB18030"
    entry = registry_row(dsn, "enterprises")
    assert (entry["owner_code"], entry["sharing_class"], entry["kind"]) == (
        "scjg", "conditional", "table")
    assert entry["sensitive_fields"] == {"legal_rep_phone": "phone"}
    assert_is_table(dsn, "enterprises", "uscc")
