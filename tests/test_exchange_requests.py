"""Share requests against the real database: every transition, every bad input, the clock.

The resources are this module's own (``tex_*``, owned by 国土资源局 gtzy) so grants made
here cannot change what the access-matrix tests expect of the shared ``tpol_*`` world.
The applicant is 环境保护局 (hb).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from policy_fixtures import create_layer, create_table

from exchange import clock
from exchange import requests as ex
from layers import audit, policy
from layers.policy import Caller

CHINA = ZoneInfo("Asia/Shanghai")
COND, NOT_SHARED, OPEN, UNCOND, TABLE = ("tex_cond", "tex_not_shared", "tex_open", "tex_uncond",
                                        "tex_tab_cond")
HB = Caller(kind="department", dept_code="hb", name="test:hb")
GH = Caller(kind="department", dept_code="gh", name="test:gh")
OWNER = Caller(kind="department", dept_code="gtzy", name="test:gtzy")
OTHER = Caller(kind="department", dept_code="jy", name="test:jy")  # files nothing
BUREAU = Caller(kind="admin", dept_code="wxtc", name="test:bureau")
AUDITOR = Caller(kind="auditor", name="test:auditor")
TABLES = ("share_request", "share_request_event", "notification", "layer_grant", "audit_log")


@pytest.fixture(scope="module")
def world(database_url):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        for name, cls in ((COND, "conditional"), (NOT_SHARED, "not_shared"), (OPEN, "open"),
                          (UNCOND, "unconditional")):
            create_layer(conn, name, cls)
        create_table(conn, TABLE, "conditional")
    return database_url


def counts(db) -> dict[str, int]:
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def file(db, caller=HB, **kw):
    kw.setdefault("resource", COND)
    kw.setdefault("purpose", "环境监测点位选址")
    return ex.file_request(db, caller, **kw)


def test_conditional_request_goes_to_the_owner_with_a_deadline(world, db):
    before = counts(db)
    r = file(db, fields=["name", "area"], regions=["440703"], basis="《环境保护法》第十条",
             mode="query", contact="hb 张三 0750-1234567")
    assert r["status"] == "submitted" and r["applicant"] == "hb" and r["owner"] == "gtzy"
    assert r["working_days"] == 10 and r["rule_basis"] == "国发〔2016〕51号"
    assert date.fromisoformat(r["deadline"]) > date.today()
    assert r["overdue"] is False
    assert r["calendar_warning"] == clock.calendar_warning(r["submitted_at"],
                                                            date.fromisoformat(r["deadline"]))
    after = counts(db)
    assert after["share_request"] == before["share_request"] + 1
    assert after["share_request_event"] == before["share_request_event"] + 1
    assert after["layer_grant"] == before["layer_grant"]
    inbox = ex.notifications(db, OWNER, unread_only=True)
    assert inbox[0]["request_id"] == r["id"] and inbox[0]["kind"] == "new_request"
    row = db.execute("SELECT action, request FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert row[0] == "exchange.submit" and row[1]["share_request"] == r["id"]


@pytest.mark.parametrize(("kw", "status", "words"), [
    ({"purpose": "  "}, 422, "用途"),
    ({"resource": "tex_no_such"}, 404, "no resource named"),
    ({"fields": ["name", "no_field"]}, 422, "no_field"),
    ({"regions": ["110101"]}, 422, "not regions of Jiangmen"),
    ({"period_from": date(2027, 3, 1), "period_to": date(2027, 1, 1)}, 422, "period ends"),
    ({"mode": "fax"}, 422, "exchange mode"),
    ({"resource": TABLE, "regions": ["440703"]}, 422, "table without geometry"),
])
def test_bad_requests_change_nothing(world, db, kw, status, words):
    before = counts(db)
    with pytest.raises(ex.ExchangeError) as err:
        file(db, **kw)
    assert err.value.status == status
    assert words in str(err.value) and " / " in str(err.value)
    assert counts(db) == before


def test_hidden_resource_answers_as_one_that_does_not_exist(world, db):
    with pytest.raises(ex.NotFound) as hidden:
        ex.file_request(db, policy.ANONYMOUS, resource=COND, purpose="x")
    with pytest.raises(ex.NotFound) as missing:
        ex.file_request(db, policy.ANONYMOUS, resource="tex_no_such", purpose="x")
    assert str(hidden.value).replace(COND, "?") == str(missing.value).replace("tex_no_such", "?")
    with pytest.raises(ex.Forbidden):
        ex.file_request(db, AUDITOR, resource=COND, purpose="x")


@pytest.mark.parametrize("name", [OPEN, UNCOND])
def test_open_and_unconditional_need_no_request(world, db, name):
    before = counts(db)
    with pytest.raises(ex.NoRequestNeeded) as err:
        file(db, resource=name)
    assert err.value.status == 409 and f"/ogc/collections/{name}" in str(err.value)
    assert err.value.links["download"] == f"/downloads/{name}"
    with pytest.raises(ex.NoRequestNeeded):
        file(db, OWNER, resource=COND)  # one's own resource
    assert counts(db) == before


def test_not_shared_is_refused_at_once_citing_the_law_then_appealed(world, db):
    r = file(db, resource=NOT_SHARED)
    assert r["status"] == "refused" and r["answered_at"] is not None
    full = ex.get_request(db, HB, r["id"])
    assert [e["action"] for e in full["events"]] == ["submit", "refuse_not_shared"]
    assert "《测试法》第1条" in full["events"][1]["reason"]
    assert "提请市政府审定" in full["events"][1]["reason"]
    with pytest.raises(ex.Invalid):
        ex.appeal(db, HB, r["id"], reason=" ")
    with pytest.raises(ex.Forbidden):
        ex.appeal(db, OWNER, r["id"], reason="不服")
    a = ex.appeal(db, HB, r["id"], reason="履职必需，提请市政府审定")
    assert a["status"] == "appealed"
    assert any(n["kind"] == "appeal" and n["request_id"] == r["id"]
               for n in ex.notifications(db, BUREAU))
    with pytest.raises(ex.Conflict):
        ex.appeal(db, HB, r["id"], reason="again")


def test_approve_narrowed_then_amend_renew_revoke_the_data_follows(world, db):
    r = file(db, fields=["name", "phone", "area", "county"], regions=["440703", "440781"],
             period_to=date.today() + timedelta(days=200))
    rid = r["id"]
    assert policy.access_for(db, HB, COND) is None
    # bad answers first: nothing changes
    before = counts(db)
    with pytest.raises(ex.NotFound):  # jy neither owns the resource nor filed: hidden
        ex.answer(db, OTHER, rid, decision="approve")
    with pytest.raises(ex.Forbidden):  # the applicant sees it but does not own the resource
        ex.answer(db, HB, rid, decision="approve")
    with pytest.raises(ex.Forbidden):
        ex.answer(db, AUDITOR, rid, decision="approve")
    with pytest.raises(ex.Invalid):
        ex.answer(db, OWNER, rid, decision="refuse", reason="")
    with pytest.raises(ex.Invalid):
        ex.answer(db, OWNER, rid, decision="maybe")
    with pytest.raises(ex.Invalid):
        ex.answer(db, OWNER, rid, decision="approve", fields=["name", "qlr"])  # not asked
    with pytest.raises(ex.Invalid):
        ex.answer(db, OWNER, rid, decision="approve_part")  # nothing narrowed
    assert counts(db) == before

    a = ex.answer(db, OWNER, rid, decision="approve", fields=["name", "area"],
                  regions=["440703"], reason="电话不提供")
    assert a["status"] == "partly_approved" and a["grant_id"] and a["grant_status"] == "live"
    got = policy.access_for(db, HB, COND)[1]
    assert got.fields == ("name", "area") and got.regions == ("440703",)
    assert got.grant_id == a["grant_id"] and got.request_id == rid
    grant = db.execute("SELECT source, request_id FROM layer_grant WHERE id = %s",
                       (a["grant_id"],)).fetchone()
    assert grant == ("request", rid)
    with pytest.raises(ex.Conflict):
        ex.answer(db, OWNER, rid, decision="approve")  # already answered

    m = ex.amend(db, OWNER, rid, fields=["name", "area", "county"], reason="补充区县")
    assert m["grant_id"] != a["grant_id"]
    assert policy.access_for(db, HB, COND)[1].fields == ("name", "area", "county")
    old = db.execute("SELECT revoked_at FROM layer_grant WHERE id = %s",
                     (a["grant_id"],)).fetchone()[0]
    assert old is not None
    new_to = date.today() + timedelta(days=400)
    with pytest.raises(ex.Invalid):
        ex.renew(db, OWNER, rid, valid_to=date.today() + timedelta(days=10))  # earlier
    n = ex.renew(db, BUREAU, rid, valid_to=new_to, reason="项目延期")
    full = ex.get_request(db, HB, rid)
    assert [e["action"] for e in full["events"]] == ["submit", "approve_part", "amend", "renew"]
    assert full["events"][3]["for_dept"] == "gtzy" and full["events"][3]["actor_dept"] == "wxtc"
    assert full["diffs"][0]["fields_added"] == ["county"]
    assert full["diffs"][1]["valid_to"]["to"] == new_to.isoformat()
    assert n["grant_id"] == policy.access_for(db, HB, COND)[1].grant_id

    # a data access through the grant names the request in the audit log
    access = policy.access_for(db, HB, COND)[1]
    aid = audit.record_access(HB, access, "ogc.items", f"/ogc/collections/{COND}/items")
    req = db.execute("SELECT request FROM audit_log WHERE id = %s", (aid,)).fetchone()[0]
    assert req["share_request"] == rid

    with pytest.raises(ex.Invalid):
        ex.revoke(db, OWNER, rid, reason="")
    v = ex.revoke(db, OWNER, rid, reason="项目终止")
    assert v["grant_status"] == "revoked"
    assert policy.access_for(db, HB, COND) is None  # the data is gone
    with pytest.raises(ex.Conflict):
        ex.amend(db, OWNER, rid, fields=["name"])
    actions = [r[0] for r in db.execute(
        "SELECT action FROM audit_log WHERE request->>'share_request' = %s AND action LIKE "
        "'exchange.%%' ORDER BY id", (str(rid),))]
    assert actions == ["exchange.submit", "exchange.approve_part", "exchange.amend",
                       "exchange.renew", "exchange.revoke"]


def test_refuse_needs_a_reason_and_the_applicant_reads_it(world, db):
    r = file(db, GH, resource=TABLE, fields=["name"])
    out = ex.answer(db, OWNER, r["id"], decision="refuse", reason="与履职无关")
    assert out["status"] == "refused"
    assert any("与履职无关" in n["message"] for n in ex.notifications(db, GH))


def test_withdraw_then_approving_is_a_conflict(world, db):
    r = file(db)
    with pytest.raises(ex.Forbidden):
        ex.withdraw(db, OWNER, r["id"])
    w = ex.withdraw(db, HB, r["id"], reason="需求取消")
    assert w["status"] == "withdrawn"
    before = counts(db)
    with pytest.raises(ex.Conflict) as err:
        ex.answer(db, OWNER, r["id"], decision="approve")
    assert "withdrawn" in str(err.value) and err.value.status == 409
    assert counts(db) == before


def test_expired_request_cannot_be_approved(world, db):
    filed = datetime(2026, 1, 5, 10, tzinfo=CHINA)
    r = file(db, period_to=date(2026, 1, 10), now=filed)
    done = ex.check_deadlines(db, date(2026, 1, 12))
    assert {"id": r["id"], "action": "expire"} in done
    before = counts(db)
    with pytest.raises(ex.Conflict):
        ex.answer(db, OWNER, r["id"], decision="approve")
    assert counts(db) == before


def test_overdue_across_national_day_escalates_once_and_stays_counted(world, db):
    filed = datetime(2025, 9, 26, 10, tzinfo=CHINA)
    r = file(db, now=filed)
    assert r["deadline"] == "2025-10-16"  # after the 国庆 holiday, with the 调休 days
    assert not [d for d in ex.check_deadlines(db, date(2025, 10, 16)) if d["id"] == r["id"]
                and d["action"] == "escalate"]
    done = ex.check_deadlines(db, date(2025, 10, 17))
    assert {"id": r["id"], "action": "escalate"} in done
    assert not [d for d in ex.check_deadlines(db, date(2025, 10, 20)) if d["id"] == r["id"]]
    bureau = [n for n in ex.notifications(db, BUREAU) if n["request_id"] == r["id"]]
    assert [n["kind"] for n in bureau] == ["escalate"]
    assert any(n["kind"] == "overdue" for n in ex.notifications(db, OWNER)
               if n["request_id"] == r["id"])
    late = ex.answer(db, OWNER, r["id"], decision="approve")
    assert late["status"] == "approved" and late["overdue"] is True
    assert late["escalated_at"] is not None
    assert r["id"] in [x["id"] for x in ex.list_requests(db, BUREAU, status="approved",
                                                         limit=1000)[0] if x["overdue"]]


def test_who_sees_which_requests(world, db):
    mine = file(db)
    outbox, n = ex.list_requests(db, HB, box="outbox", limit=1000)
    assert n == len(outbox) and {x["applicant"] for x in outbox} == {"hb"}
    inbox, _ = ex.list_requests(db, OWNER, box="inbox", limit=1000)
    assert mine["id"] in [x["id"] for x in inbox] and {x["owner"] for x in inbox} == {"gtzy"}
    assert ex.list_requests(db, OTHER, limit=1000) == ([], 0)
    with pytest.raises(ex.NotFound):
        ex.get_request(db, OTHER, mine["id"])
    assert ex.list_requests(db, policy.ANONYMOUS) == ([], 0)
    everything = ex.list_requests(db, AUDITOR, limit=1000)[1]
    assert everything == ex.list_requests(db, BUREAU, limit=1000)[1] >= len(outbox)
    with pytest.raises(ex.Forbidden):
        ex.withdraw(db, AUDITOR, mine["id"])
    with pytest.raises(ex.Invalid):
        ex.list_requests(db, HB, box="trash")


def test_notifications_are_per_department(world, db):
    mine = ex.notifications(db, OWNER, unread_only=True)
    assert mine
    with pytest.raises(ex.NotFound):
        ex.mark_read(db, HB, mine[0]["id"])
    ex.mark_read(db, OWNER, mine[0]["id"])
    assert mine[0]["id"] not in [n["id"] for n in ex.notifications(db, OWNER, unread_only=True)]
    assert ex.notifications(db, AUDITOR) == []


def test_smtp_not_configured_sends_nothing(world, db):
    from exchange.notify import send_mail
    from jmgeo.settings import get_settings

    assert get_settings().smtp_host is None
    assert send_mail("hb", "test", "x / x") is False
    file(db)
    assert db.execute("SELECT count(*) FROM notification WHERE mailed_at IS NOT NULL"
                      ).fetchone()[0] == 0


def test_events_are_append_only(world, db):
    import psycopg

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("UPDATE share_request_event SET reason = 'x'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("DELETE FROM share_request_event")


def test_cli_grants_are_recorded_as_such(world, db):
    from layers.grants import add_grant, list_grants

    gid = add_grant(db, layer=TABLE, dept="sw", purpose="核查", approved_by="局长")
    row = [g for g in list_grants(db, layer=TABLE) if g["id"] == gid][0]
    assert row["source"] == "cli" and row["request_id"] is None


def test_supervision_lists_cli_grants_that_give_data_now_or_later(world, db):
    """Grants typed with `jmgeo grant add` (no approval on record) show up in supervision
    while they are live or still to start; expired and revoked ones do not."""
    from datetime import UTC

    from exchange.rules import supervision
    from layers.grants import add_grant, revoke_grant

    now = datetime.now(UTC)
    live = add_grant(db, layer=TABLE, dept="jt", purpose="督办测试", approved_by="局长")
    future = add_grant(db, layer=TABLE, dept="jt", purpose="督办测试", approved_by="局长",
                       valid_from=now + timedelta(days=30))
    expired = add_grant(db, layer=TABLE, dept="jt", purpose="督办测试", approved_by="局长",
                        valid_from=now - timedelta(days=30), valid_to=now - timedelta(days=1))
    revoked = add_grant(db, layer=TABLE, dept="jt", purpose="督办测试", approved_by="局长")
    revoke_grant(db, revoked, by="局长")
    listed = {g["id"]: g["status"] for g in supervision(db, BUREAU)["cli_grants"]}
    assert listed.get(live) == "live" and listed.get(future) == "future"
    assert expired not in listed and revoked not in listed


def test_the_seeded_rule_is_51_hao_escalating_to_the_bureau(world, db):
    seeded = [r for r in ex.rules(db) if r["code"] == "gf-2016-51"][0]
    assert seeded["basis"] == "国发〔2016〕51号" and seeded["working_days"] == 10
    assert seeded["escalate_to"] == "wxtc" and seeded["active"]
    assert ex.current_rule(db)["working_days"] == 10


def test_a_filing_in_a_year_the_calendar_lacks_says_so(world, db):
    beyond = clock.covered_years()[1] + 1
    r = file(db, now=datetime(beyond, 3, 2, 10, tzinfo=CHINA))
    assert str(beyond) in r["calendar_warning"] and "weekends only" in r["calendar_warning"]
    assert date.fromisoformat(r["deadline"]).weekday() < 5
    ex.withdraw(db, HB, r["id"], reason="测试")
