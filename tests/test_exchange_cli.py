"""``jmgeo request`` end to end on the test database (own resource ``tcli_cond``)."""

from __future__ import annotations

import json

import psycopg
import pytest
from policy_fixtures import create_layer

from jmgeo.cli import main

RES = "tcli_cond"


@pytest.fixture(scope="module")
def res(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_layer(conn, RES, "conditional")
    return RES


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_file_answer_show_inbox(res, capsys):
    assert main(["request", "file", res, "--as", "jt", "--purpose", "道路规划",
                 "--fields", "name,area,county", "--json"]) == 0
    r = _json(capsys)
    assert r["status"] == "submitted" and r["applicant"] == "jt"
    rid = str(r["id"])
    assert main(["request", "inbox", "--as", "gtzy", "--unread"]) == 0
    assert f"申请 {rid}" in capsys.readouterr().out
    assert main(["request", "answer", rid, "--as", "jt", "--decision", "approve"]) == 2
    assert "only the owner" in capsys.readouterr().err
    assert main(["request", "answer", rid, "--as", "gtzy", "--decision", "refuse"]) == 2
    assert "needs a reason" in capsys.readouterr().err
    assert main(["request", "answer", rid, "--as-bureau", "--decision", "approve",
                 "--fields", "name,area", "--json"]) == 0
    out = _json(capsys)
    assert out["status"] == "partly_approved" and out["grant_status"] == "live"
    assert main(["request", "show", rid, "--as", "jt"]) == 0
    text = capsys.readouterr().out
    assert "approve_part" in text and "for gtzy" in text
    assert main(["request", "list", "--as", "jt", "--box", "outbox", "--json"]) == 0
    assert int(rid) in [x["id"] for x in _json(capsys)["requests"]]
    assert main(["request", "revoke", rid, "--as", "gtzy", "--reason", "项目结束"]) == 0
    assert "revoked" in capsys.readouterr().out


def test_bad_input_exits_2_with_a_bilingual_line(res, capsys):
    assert main(["request", "file", res, "--as", "jt", "--purpose", " "]) == 2
    assert "用途" in capsys.readouterr().err
    assert main(["request", "file", res, "--purpose", "x"]) == 2
    assert "--as DEPT" in capsys.readouterr().err
    assert main(["request", "file", "tcli_none", "--as", "jt", "--purpose", "x"]) == 2
    assert "no resource named" in capsys.readouterr().err
    assert main(["request", "file", res, "--as", "jt", "--purpose", "x", "--from",
                 "2027-02-01", "--to", "2027-01-01"]) == 2
    assert "period ends" in capsys.readouterr().err
    assert main(["request", "show", "999999", "--as", "jt"]) == 2
    assert main(["request", "rule", "set", "--as", "jt", "--working-days", "5",
                 "--basis", "x"]) == 2


def test_rule_set_applies_to_new_requests_then_retire(res, capsys):
    assert main(["request", "rule", "set", "--as-bureau", "--working-days", "5",
                 "--basis", "江府办〔2026〕99号", "--code", "tcli-5"]) == 0
    capsys.readouterr()
    assert main(["request", "rule", "list"]) == 0
    assert "* tcli-5" in capsys.readouterr().out
    assert main(["request", "file", res, "--as", "hb", "--purpose", "环评", "--json"]) == 0
    r = _json(capsys)
    assert r["working_days"] == 5 and r["rule_basis"] == "江府办〔2026〕99号"
    assert main(["request", "rule", "retire", "--as-bureau", "tcli-5"]) == 0
    assert main(["request", "file", res, "--as", "sw", "--purpose", "水利", "--json"]) == 0
    capsys.readouterr()
    assert main(["request", "list", "--as", "sw", "--json"]) == 0
    assert _json(capsys)["requests"][0]["working_days"] == 10


def test_check_and_supervise(res, capsys):
    assert main(["request", "check", "--today", "2026-12-01"]) == 0
    assert "deadlines checked" in capsys.readouterr().out
    assert main(["grant", "add", res, "rf", "--purpose", "人防规划", "--approved-by", "局长"]) == 0
    capsys.readouterr()
    assert main(["request", "supervise", "--as-auditor", "--json"]) == 0
    s = _json(capsys)
    assert s["by_status"]["partly_approved"] >= 1
    assert [g for g in s["cli_grants"] if g["layer"] == res and g["dept"] == "rf"]
    assert main(["request", "supervise", "--as", "hb"]) == 2
