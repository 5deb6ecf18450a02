"""Sources and authority, cross-check (issue 15 §2–3): survivorship by authority, newest
value where the authority is silent, provenance and history, a disagreement → ticket →
corrected in the next load → closed, the quarantine, and the bad-input refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from baselib_fixtures import current_version, golden, reset_sources, ric, setup
from psycopg.rows import dict_row

from baselib import libraries, tickets
from baselib.demo import publish_source
from baselib.errors import BaselibError
from baselib.integrate import integrate, value_history
from exchange import clock
from layers.policy import Caller

A, B, C = ric(11), ric(13), ric(15)
D_TYPO = ric(17)[:-1] + ("1" if ric(17)[-1] != "1" else "2")
GAJ = [{"sfzh": A, "xm": "陈大明", "xb": "男", "zz": "江门市蓬江区棠下镇建设路1号"},
       {"sfzh": B, "xm": "李小红", "xb": "女", "zz": "江门市江海区礼乐街道港口路2号"},
       {"sfzh": C, "xm": "黄志强", "xb": "男", "zz": None}]
RSJ = [{"sfzh": A, "xm": "陈大民", "cbzt": "正常参保", "zz": "江门市蓬江区棠下镇建设路1号"},
       {"sfzh": B.lower(), "xm": "李小红", "cbzt": "暂停缴费", "zz": "江门市江海区礼乐街道港口路2号"},
       {"sfzh": C, "xm": "黄志强", "cbzt": "正常参保", "zz": "江门市新会区会城街道胜利路3号"},
       {"sfzh": D_TYPO, "xm": "梁美", "cbzt": "正常参保", "zz": "江门市台山市台城街道"}]
GAJ_MAP = {"name": "xm", "gender": "xb", "address": "zz"}
RSJ_MAP = {"name": "xm", "insurance_status": "cbzt", "address": "zz"}
GAJ_CALLER = Caller(kind="department", dept_code="gaj", name="gaj-user")
RSJ_CALLER = Caller(kind="department", dept_code="rsj", name="rsj-user")


@pytest.fixture(scope="module")
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as c:
        setup(c)
        reset_sources(c, "persons")
        publish_source(c, "tbi_gaj", "gaj", GAJ, "sfzh")
        publish_source(c, "tbi_rsj", "rsj", RSJ, "sfzh")
        libraries.add_source(c, "persons", "tbi_gaj", "sfzh", GAJ_MAP)
        libraries.add_source(c, "persons", "tbi_rsj", "sfzh", RSJ_MAP)
        yield c


def _tickets(conn, **kw):
    return [t for t in tickets.list_tickets(conn, Caller(kind="admin", dept_code="wxtc",
                                                          name="bureau"), library="persons",
                                            **kw) if t["copy_resource"] == "tbi_rsj"]


def test_golden_record_takes_the_authority_and_keeps_provenance(conn):
    report = integrate(conn, "persons", by="test")
    g = golden(conn, "persons")
    assert set(g) == {A, B, C}  # the typo'd key is not merged into anyone
    assert g[A]["name"] == "陈大明"  # 公安 is authoritative for 姓名, 人社's copy loses
    assert g[B]["insurance_status"] == "暂停缴费"  # 人社 is authoritative for 参保状态
    # 住址: 公安 is authoritative but silent for C → the newest other source, with its source
    assert g[C]["address"] == "江门市新会区会城街道胜利路3号"
    assert g[C]["sources"]["address"].startswith("rsj:tbi_rsj@v")
    assert g[A]["sources"]["name"].startswith("gaj:tbi_gaj@v")
    assert report["disagreements"] == 1 and report["tickets"]["opened"] == 1
    assert report["quarantined"] == 1
    hist = value_history(conn, "persons", A)
    names = {(h["dept_code"], h["value"]) for h in hist if h["attribute"] == "name"}
    assert names == {("gaj", "陈大明"), ("rsj", "陈大民")}
    assert all(h["loaded_at"] and h["valid_from"] and h["recorded_at"] and
               h["resource_version"] for h in hist)


def test_invalid_key_quarantined_with_the_reason(conn):
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT * FROM baselib_quarantine WHERE library = 'persons' AND resource = 'tbi_rsj'"
    ).fetchall()
    assert len(rows) == 1
    assert rows[0]["raw_key"] == D_TYPO and "check character" in rows[0]["reason"]
    assert rows[0]["record"]["name"] == "梁美" and rows[0]["status"] == "pending"


def test_ticket_to_the_authority_with_both_values_and_a_working_day_deadline(conn):
    [t] = _tickets(conn, status="open")
    assert t["authority"] == "gaj" and t["copy_dept"] == "rsj" and t["attribute"] == "name"
    assert (t["authority_value"], t["copy_value"]) == ("陈大明", "陈大民")
    assert t["authority_resource"] == "tbi_gaj" and t["copy_resource"] == "tbi_rsj"
    rule = tickets.active_rule(conn)
    assert t["deadline"] == clock.deadline(t["opened_at"], rule["working_days"])
    # a second integration with nothing changed opens no second ticket
    again = integrate(conn, "persons", by="test")
    assert again["tickets"] == {"opened": 0, "closed": 0, "notified": 0}
    # neither source has a new version: no history compared, none written
    assert again["history_skipped"] == ["tbi_gaj", "tbi_rsj"]
    assert (again["records_added"], again["records_superseded"]) == (0, 0)
    assert len(_tickets(conn, status="open")) == 1


def test_only_the_authority_answers(conn):
    [t] = _tickets(conn, status="open")
    with pytest.raises(BaselibError, match="only the authoritative department"):
        tickets.answer(conn, RSJ_CALLER, t["id"], "confirmed")
    with pytest.raises(BaselibError, match="version"):
        tickets.answer(conn, GAJ_CALLER, t["id"], "corrected")


def test_disagreement_ticket_corrected_in_next_load_closed(conn):
    [t] = _tickets(conn, status="open")
    # 公安 finds its register wrong: corrects it in version N of its resource
    fixed = [dict(r, xm="陈大民") if r["sfzh"] == A else r for r in GAJ]
    n = publish_source(conn, "tbi_gaj", "gaj", fixed, "sfzh")
    tickets.answer(conn, GAJ_CALLER, t["id"], "corrected", version=n, note="户籍已更正")
    [answered] = _tickets(conn, ticket_id=t["id"])
    assert answered["status"] == "corrected" and answered["corrected_version"] == n
    report = integrate(conn, "persons", by="test")
    assert report["tickets"]["closed"] == 1
    [closed] = _tickets(conn, ticket_id=t["id"])
    assert closed["status"] == "closed" and "authority corrected" in closed["resolution"]
    assert golden(conn, "persons")[A]["name"] == "陈大民"
    # history: 公安's old value is superseded (record time) and its valid time closed
    old = [h for h in value_history(conn, "persons", A)
           if h["attribute"] == "name" and h["dept_code"] == "gaj" and h["value"] == "陈大明"]
    assert old[0]["superseded_at"] is not None and old[0]["valid_to"] is not None
    rep = tickets.report(conn, Caller(kind="auditor", name="aud"))
    assert rep["by_authority"]["gaj"]["closed"] >= 1


def test_confirmed_then_copy_corrected_closes(conn):
    bad = [dict(r, xm="黄志刚") if r["sfzh"] == C else r for r in RSJ]
    publish_source(conn, "tbi_rsj", "rsj", bad, "sfzh")
    integrate(conn, "persons", by="test")
    [t] = _tickets(conn, status="open")
    assert t["key"] == C and t["copy_value"] == "黄志刚"
    tickets.answer(conn, GAJ_CALLER, t["id"], "confirmed", note="户籍为准")
    publish_source(conn, "tbi_rsj", "rsj", [dict(r, xm="陈大民") if r["sfzh"] == A else r
                                            for r in RSJ], "sfzh")
    integrate(conn, "persons", by="test")
    [closed] = _tickets(conn, ticket_id=t["id"])
    assert closed["status"] == "closed" and "copy was corrected" in closed["resolution"]


def test_overdue_counted_in_the_report(conn):
    later = datetime(2099, 1, 1, tzinfo=UTC).date()
    rep = tickets.report(conn, Caller(kind="admin", dept_code="wxtc", name="b"), today=later)
    assert rep["total"] >= 2 and "mean_answer_working_days" in rep["by_authority"]["gaj"]
    with pytest.raises(BaselibError):
        tickets.report(conn, RSJ_CALLER)


# -- bad input: clear errors naming rows and the fix, nothing published -------------------

def _refused(conn, needle: str):
    before = current_version(conn, "persons")
    with pytest.raises(BaselibError) as exc:
        integrate(conn, "persons", by="test")
    assert needle in str(exc.value) and "fix:" in str(exc.value)
    assert current_version(conn, "persons") == before  # nothing published
    return str(exc.value)


def test_duplicate_keys_in_one_source_refused_naming_rows(conn):
    # A again, as a 15-digit number: the same person twice in one source
    dup = [*GAJ, {"sfzh": A[:6] + A[8:17], "xm": "陈大明", "xb": "男", "zz": None}]
    publish_source(conn, "tbi_gaj", "gaj", dup, "sfzh")
    try:
        msg = _refused(conn, "rows (fid) 1, 4")
        assert "tbi_gaj" in msg and A not in msg  # the key is masked in the message
    finally:
        publish_source(conn, "tbi_gaj", "gaj", GAJ, "sfzh")


def test_mapping_naming_a_missing_column_refused(conn):
    with pytest.raises(BaselibError, match="lacks the mapped columns name=xingming"):
        libraries.add_source(conn, "persons", "tbi_gaj", "sfzh", {"name": "xingming"})
    # and at integration time, when the source's next load dropped the column
    publish_source(conn, "tbi_gaj", "gaj", [{k: v for k, v in r.items() if k != "xb"}
                                            for r in GAJ], "sfzh")
    try:
        _refused(conn, "gender=xb")
    finally:
        publish_source(conn, "tbi_gaj", "gaj", GAJ, "sfzh")


def test_source_without_the_key_column_refused(conn):
    with pytest.raises(BaselibError, match="no key column 'gmsfhm'"):
        libraries.add_source(conn, "persons", "tbi_gaj", "gmsfhm", GAJ_MAP)


def test_attribute_without_authority_refused(conn):
    conn.execute("UPDATE baselib_authority SET active = false WHERE library = 'persons' AND "
                 "attribute = 'insurance_status' AND active")
    try:
        _refused(conn, "no authority declared for insurance_status")
    finally:
        libraries.set_authority(conn, "persons", "insurance_status", "rsj", "《社会保险法》")


def test_an_unconditional_library_takes_only_unmasking_grants(conn):
    from layers.grants import GrantError, add_grant

    args = {"layer": "persons", "dept": "hb", "purpose": "核对", "approved_by": "测试"}
    with pytest.raises(GrantError, match="only unmasks sensitive fields"):
        add_grant(conn, **args, fields=["id_number", "gender"])
    with pytest.raises(GrantError, match="only conditional layers"):
        add_grant(conn, **args)  # every field: nothing to unmask, nothing to restrict
    from layers.policy import access_for

    gid = add_grant(conn, **args, fields=["id_number"])
    try:
        _row, access = access_for(conn, Caller(kind="department", dept_code="hb", name="x"),
                                  "persons")
        assert access.fields is None and "id_number" not in access.masks
        assert access.masks["phone"] == "phone" and access.grant_id == gid
    finally:
        from layers.grants import revoke_grant

        revoke_grant(conn, gid)


def test_streamed_fake_sources_integrate_with_about_ten_percent_disagreements(conn,
                                                                            database_url):
    """The benchmark's path (bench/baselib_bench.py) at a small size."""
    from baselib.demo import publish_person_streams

    reset_sources(conn, "persons")
    n = 400
    versions = publish_person_streams(database_url, n, seed=7)
    assert set(versions) == {"gaj_hj", "rsj_cb", "wjj_rk"}
    report = integrate(conn, "persons", by="test")
    assert report["records"] == n  # 公安 and 人社 hold everyone; 卫计's typos quarantined
    assert 0.05 * n <= report["disagreements"] <= 0.15 * n
    assert report["tickets"]["opened"] == report["disagreements"]
    assert report["quarantined"] == report["keys"]["invalid"]
    assert report["keys"]["warnings"] >= 1  # 15-digit numbers upgraded
