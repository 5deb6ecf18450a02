"""``/supervision``: who sees which figures, bad periods, ratings and corrections over HTTP,
the bureau's report archive; and the demo's report of the current quarter."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest
from exchange_fixtures import Api, fresh_resource, make_callers
from supervision_fixtures import JUDGE, quarter_database


@pytest.fixture(scope="module")
def callers(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        return make_callers(conn)


def _delivery(conn, resource: str, dept: str) -> int:
    return conn.execute(
        "INSERT INTO exchange_delivery (layer_id, dept_id, mode, rows, bytes) SELECT l.id, "
        "d.id, 'download', 4, 400 FROM layer l, department d WHERE l.name = %s AND d.code = "
        "%s RETURNING id", (resource, dept)).fetchone()[0]


def test_scope_and_bad_periods(app_client, callers, database_url):
    this_quarter = f"{date.today().year}Q{(date.today().month - 1) // 3 + 1}"
    assert app_client.get("/supervision/figures", params={"period": this_quarter}
                          ).status_code == 401
    bureau = Api(app_client, callers["admin"]).get("/supervision/figures", period=this_quarter)
    assert bureau.status_code == 200 and bureau.json()["scope"] == "city"
    assert "rows" not in bureau.json()["sections"]["timeliness"]
    owner = Api(app_client, callers["owner"]).get("/supervision/figures",
                                                  period=this_quarter, drill="timeliness")
    body = owner.json()
    assert body["scope"] == "gtzy"
    for section in body["sections"].values():
        assert set(section["by_dept"]) <= {"gtzy"}
    assert all(r["dept"] == "gtzy" for r in body["sections"]["timeliness"]["rows"])
    for bad, text in (("2026Q5", "malformed"), ("2999Q1", "has not begun")):
        r = Api(app_client, callers["admin"]).get("/supervision/figures", period=bad)
        assert r.status_code == 422 and text in r.json()["description"]
    anon_fresh = app_client.get("/supervision/freshness")
    assert anon_fresh.status_code == 401
    fresh = Api(app_client, callers["owner"]).get("/supervision/freshness").json()
    assert all(r["dept"] == "gtzy" for r in fresh["resources"])


def test_rating_and_correction_over_http(app_client, callers, database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        name = fresh_resource(conn, "unconditional", "sv")
        got = _delivery(conn, name, "gh")
    applicant, unrelated = Api(app_client, callers["applicant"]), Api(app_client,
                                                                        callers["unrelated"])
    assert unrelated.post("/supervision/ratings", {"delivery_id": got, "score": 5}
                          ).status_code == 403
    r = applicant.post("/supervision/ratings", {"delivery_id": got, "score": 5,
                                                "comment": "好"})
    assert r.status_code == 201, r.text
    assert applicant.post("/supervision/ratings", {"delivery_id": got, "score": 4}
                          ).status_code == 409
    # the deliveries a department received, with their ratings: its own only
    seen = {d["id"]: d for d in applicant.get("/supervision/deliveries").json()["deliveries"]}
    assert seen[got]["score"] == 5 and seen[got]["resource"] == name
    assert got not in {d["id"] for d in unrelated.get("/supervision/deliveries").json()
                       ["deliveries"]}
    assert app_client.get("/supervision/deliveries").status_code == 401
    assert applicant.post("/supervision/ratings", {"delivery_id": got, "score": 9}
                          ).status_code in (409, 422)
    assert unrelated.post("/supervision/corrections", {"resource": name, "description": "x"}
                          ).status_code == 403
    t = applicant.post("/supervision/corrections", {"resource": name, "field": "area",
                                                    "description": "面积单位错误"})
    assert t.status_code == 201, t.text
    tid = t.json()["id"]
    assert t.json()["owner"] == "gtzy" and t.json()["deadline"]
    assert applicant.post(f"/supervision/corrections/{tid}/answer",
                          {"outcome": "not_error", "reason": "x"}).status_code == 403
    owner = Api(app_client, callers["owner"])
    a = owner.post(f"/supervision/corrections/{tid}/answer", {"outcome": "fixed", "version": 1})
    assert a.status_code == 200 and a.json()["status"] == "fixed"
    assert owner.post(f"/supervision/corrections/{tid}/answer",
                      {"outcome": "fixed", "version": 1}).status_code == 409
    mine = applicant.get("/supervision/corrections").json()["corrections"]
    assert tid in [c["id"] for c in mine]
    assert tid not in [c["id"] for c in unrelated.get("/supervision/corrections").json()
                       ["corrections"]]


def test_the_bureaus_report_archive(app_client, callers):
    this_month = f"{date.today():%Y-%m}"
    admin, owner = Api(app_client, callers["admin"]), Api(app_client, callers["owner"])
    assert owner.get("/supervision/reports").status_code == 403
    assert owner.post("/supervision/reports", {"period": this_month}).status_code == 403
    assert Api(app_client, callers["auditor"]).post(
        "/supervision/reports", {"period": this_month}).status_code == 403
    filed = admin.post("/supervision/reports", {"period": this_month})
    assert filed.status_code == 201, filed.text
    rid = filed.json()["id"]
    listed = Api(app_client, callers["auditor"]).get("/supervision/reports").json()["reports"]
    assert rid in [r["id"] for r in listed]
    pdf = app_client.get(f"/supervision/reports/{rid}.pdf", headers=callers["admin"].headers)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    xlsx = app_client.get(f"/supervision/reports/{rid}.xlsx", headers=callers["admin"].headers)
    assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")


@pytest.fixture(scope="module")
def quarter():
    yield from quarter_database()


def test_the_demo_files_the_current_quarter(quarter, tmp_path, monkeypatch, fresh_settings):
    from supervision.demo import load_demo_supervision

    def ratings():
        with psycopg.connect(quarter.dsn, autocommit=True) as conn:
            return conn.execute("SELECT count(*) FROM delivery_rating").fetchone()[0]

    before = ratings()
    monkeypatch.setenv("JMGEO_VAR_DIR", str(tmp_path))
    fresh_settings()
    path = load_demo_supervision(quarter.dsn, log=lambda *a: None, today=JUDGE)
    assert path.endswith("tongbao-2026Q4.pdf") and (tmp_path / "reports" /
                                                    "tongbao-2026Q4.xlsx").exists()
    load_demo_supervision(quarter.dsn, log=lambda *a: None, today=JUDGE)  # idempotent
    with psycopg.connect(quarter.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM supervision_report WHERE period = "
                            "'2026Q4'").fetchone()[0] == 1
    assert ratings() == before  # the first delivery was rated already: left as it is
