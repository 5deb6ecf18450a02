"""``jmgeo catalog`` commands end to end on the test database."""

from __future__ import annotations

import psycopg

from jmgeo.cli import main
from layers.departments import ensure_departments


def test_cli_template_import_export(database_url, tmp_path, capsys):
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn)
    assert main(["catalog", "template", "-o", str(tmp_path / "t.xlsx")]) == 0
    assert (tmp_path / "t.xlsx").exists()
    assert main(["catalog", "samples", str(tmp_path)]) == 0
    broken = tmp_path / "调查表_错误样例.xlsx"
    capsys.readouterr()
    assert main(["catalog", "import", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "14 处错误" in err and "'调查表 '!K5" in err
    sample = tmp_path / "调查表_样例.xlsx"
    assert main(["catalog", "import", str(sample), "--dry-run"]) == 0
    assert main(["catalog", "import", str(sample), "--publish"]) == 0
    out = capsys.readouterr().out
    assert "10303101/000001" in out
    assert main(["catalog", "import", str(sample)]) == 0
    assert "未变 11" in capsys.readouterr().out
    assert main(["catalog", "list", "-q", "道路"]) == 0
    assert "道路中心线" in capsys.readouterr().out
    assert main(["catalog", "export", "-o", str(tmp_path / "out")]) == 0
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"汇总表.xlsx", "江门市政务信息资源目录.xlsx", "江门市政务信息资源目录.csv",
            "catalog.jsonld", "调查表.xlsx"} <= names
    assert main(["catalog", "review", "999999", "--approve"]) == 2
