"""The share-request workflow over HTTP (issue 10), against the real app and database.

request → approve with narrowed fields and region → the data visible exactly as granted
(OGC items + download, audited with the request id) → amend → revoke → the data gone;
a refusal with its reason shown to the applicant; withdrawal; a not_shared resource
refused at once citing its legal basis, then appealed to the bureau; an open resource
needs no request; an overdue request escalated to the bureau; bad input answered 4xx with
nothing changed.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from exchange_fixtures import APPLICANT, BUREAU, Api, fresh_resource, make_callers
from policy_fixtures import FEATURES, OWNER

ASKED = ["name", "qlr", "phone", "area", "county"]
NARROWED = ["name", "area", "county"]  # no 权利人, no phone
REGION = "440703"  # 蓬江区: features 1 and 2
OTHER_REGION = "440781"  # 台山市: features 3 and 4
FIDS_IN_REGION = {f[0] for f in FEATURES if f[3] == REGION}
ALL_FIDS = {f[0] for f in FEATURES}


@pytest.fixture(scope="module")
def who(database_url):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return make_callers(conn)


@pytest.fixture
def api(app_client, who):
    return {label: Api(app_client, w) for label, w in who.items()}


def _items(api: Api, layer: str):
    return api.get(f"/ogc/collections/{layer}/items", f="json", limit=100)


def _download(api: Api, layer: str):
    return api.get(f"/downloads/{layer}", format="geojson")


def _props(features) -> dict[int, set[str]]:
    return {f["id"]: set(f["properties"]) for f in features}


def _status(api: Api, request_id: int) -> str:
    r = api.request(request_id)
    assert r.status_code == 200, r.text
    return r.json()["status"]


def test_request_approve_part_amend_revoke(api, db):
    layer = fresh_resource(db, "conditional", "wf")
    gh, owner = api["applicant"], api["owner"]
    assert _items(gh, layer).status_code == 404  # no grant yet: like nonexistent

    r = gh.file(layer, fields=ASKED, regions=[REGION, OTHER_REGION],
                period_to=str(date.today() + timedelta(days=365)))
    assert r.status_code == 201, r.text
    req = r.json()
    rid = req["id"]
    assert (req["status"], req["resource"], req["applicant"], req["owner"]) == \
        ("submitted", layer, APPLICANT, OWNER)
    assert req["fields"] == ASKED and req["regions"] == [REGION, OTHER_REGION]
    assert date.fromisoformat(req["deadline"]) > date.today()
    assert req["working_days"] == 10 and "51" in req["rule_basis"]
    # the owner finds it in its inbox, the applicant in its outbox
    inbox = owner.get("/exchange/requests", box="inbox").json()["requests"]
    assert rid in {x["id"] for x in inbox}
    outbox = gh.get("/exchange/requests", box="outbox").json()["requests"]
    assert rid in {x["id"] for x in outbox}
    notes = owner.get("/exchange/notifications").json()["notifications"]
    assert any(n.get("request_id") == rid for n in notes)

    # the owner approves in part: fewer fields, one of the two regions
    r = owner.post(f"/exchange/requests/{rid}/answer",
                   {"decision": "approve_part", "fields": NARROWED, "regions": [REGION],
                    "reason": "权利人与电话涉及个人信息，不予提供"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "partly_approved" and r.json()["grant_id"]

    # the data exactly as granted: the region's rows, the narrowed fields — OGC and download
    mark = db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
    r = _items(gh, layer)
    assert r.status_code == 200, r.text
    assert _props(r.json()["features"]) == {fid: set(NARROWED) for fid in FIDS_IN_REGION}
    r = _download(gh, layer)
    assert r.status_code == 200, r.text
    assert _props(json.loads(r.content)["features"]) == \
        {fid: set(NARROWED) for fid in FIDS_IN_REGION}
    # each access audited with the grant and the request it came from (X-Road's Issue)
    rows = db.execute("SELECT action, grant_id, request FROM audit_log WHERE id > %s "
                      "AND layer = %s ORDER BY id", (mark, layer)).fetchall()
    assert [a for a, _, _ in rows] == ["ogc.items", "download"]
    for _action, grant_id, request in rows:
        assert grant_id == gh.request(rid).json()["grant_id"]
        assert request["share_request"] == rid

    # amend (within what was asked): another field off, both regions (a new grant)
    old_grant = gh.request(rid).json()["grant_id"]
    r = owner.post(f"/exchange/requests/{rid}/amend",
                   {"fields": ["name", "area"], "regions": [REGION, OTHER_REGION],
                    "reason": "补充台山市"})
    assert r.status_code == 200, r.text
    assert r.json()["grant_id"] not in (None, old_grant)
    r = _items(gh, layer)
    assert _props(r.json()["features"]) == {fid: {"name", "area"} for fid in ALL_FIDS}

    # renew: the same grant for longer (another new answer)
    until = date.today() + timedelta(days=500)
    r = owner.post(f"/exchange/requests/{rid}/renew", {"valid_to": str(until),
                                                       "reason": "项目延期"})
    assert r.status_code == 200, r.text
    r = _items(gh, layer)
    assert _props(r.json()["features"]) == {fid: {"name", "area"} for fid in ALL_FIDS}
    # a renewal must end later than the grant does now: 4xx, nothing changed
    before = gh.request(rid).json()
    r = owner.post(f"/exchange/requests/{rid}/renew", {"valid_to": str(date.today())})
    assert 400 <= r.status_code < 500, r.text
    assert gh.request(rid).json()["events"] == before["events"]

    # the history: every transition, by whom, and the diff between the answers
    full = gh.request(rid).json()
    actions = [e["action"] for e in full["events"]]
    assert actions == ["submit", "approve_part", "amend", "renew"], actions
    assert all(e["at"] and e["actor"] for e in full["events"])
    assert full["diffs"], full["diffs"]
    assert "county" in json.dumps(full["diffs"], ensure_ascii=False)  # removed by the amend

    # revoke: the data is gone, like a resource that never existed
    r = owner.post(f"/exchange/requests/{rid}/revoke", {"reason": "项目已结束"})
    assert r.status_code == 200, r.text
    assert _items(gh, layer).status_code == 404
    assert _download(gh, layer).status_code == 404
    full = gh.request(rid).json()
    assert full["events"][-1]["action"] == "revoke"
    assert full["events"][-1]["reason"] == "项目已结束"
    # the grant records where it came from
    src = db.execute("SELECT source, request_id, revoked_at IS NOT NULL FROM layer_grant "
                     "WHERE id = %s", (full["grant_id"] or old_grant,)).fetchone()
    assert src[:2] == ("request", rid) and src[2]


def test_refusal_reason_shown_to_applicant(api, db):
    layer = fresh_resource(db, "conditional", "rf")
    gh, owner = api["applicant"], api["owner"]
    rid = gh.file(layer).json()["id"]
    # a refusal needs a reason: 4xx, nothing changed
    r = owner.post(f"/exchange/requests/{rid}/answer", {"decision": "refuse"})
    assert 400 <= r.status_code < 500 and r.status_code != 404, r.text
    assert _status(gh, rid) == "submitted"
    reason = "该数据正在更新，请于下季度重新申请"
    r = owner.post(f"/exchange/requests/{rid}/answer", {"decision": "refuse", "reason": reason})
    assert r.status_code == 200 and r.json()["status"] == "refused", r.text
    full = gh.request(rid).json()
    assert full["status"] == "refused"
    assert full["events"][-1]["action"] == "refuse"
    assert full["events"][-1]["reason"] == reason
    notes = gh.get("/exchange/notifications").json()["notifications"]
    assert any(n.get("request_id") == rid for n in notes)
    assert _items(gh, layer).status_code == 404


def test_withdraw_then_no_answer(api, db):
    layer = fresh_resource(db, "conditional", "wd")
    gh, owner = api["applicant"], api["owner"]
    rid = gh.file(layer).json()["id"]
    r = gh.post(f"/exchange/requests/{rid}/withdraw", {"reason": "需求取消"})
    assert r.status_code == 200 and r.json()["status"] == "withdrawn", r.text
    r = owner.post(f"/exchange/requests/{rid}/answer", {"decision": "approve"})
    assert r.status_code == 409, r.text
    assert r.json()["code"].lower() == "conflict"
    assert _status(owner, rid) == "withdrawn"
    assert _items(gh, layer).status_code == 404


def test_not_shared_refused_at_once_then_appeal(api, db):
    layer = fresh_resource(db, "not_shared", "ns")
    gh, admin = api["applicant"], api["admin"]
    r = gh.file(layer)
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["status"] == "refused"
    full = gh.request(req["id"]).json()
    assert full["events"][-1]["action"] == "refuse_not_shared"
    assert "《测试法》第1条" in full["events"][-1]["reason"]  # the recorded legal basis
    r = gh.post(f"/exchange/requests/{req['id']}/appeal",
                {"reason": "规划编制必需，提请市政府审定"})
    assert r.status_code == 200 and r.json()["status"] == "appealed", r.text
    seen = admin.get("/exchange/requests", box="all", status="appealed").json()["requests"]
    assert req["id"] in {x["id"] for x in seen}
    notes = admin.get("/exchange/notifications").json()["notifications"]
    assert any(n.get("request_id") == req["id"] for n in notes)
    assert _items(gh, layer).status_code == 404  # an appeal is not a grant


@pytest.mark.parametrize("cls", ["open", "unconditional"])
def test_no_request_needed(api, db, cls):
    layer = fresh_resource(db, cls, "nr")
    r = api["applicant"].file(layer)
    assert r.status_code == 409, r.text
    assert f"/ogc/collections/{layer}" in r.json()["description"]
    links = r.json()["links"]  # the envelope says where the data is
    assert any(v.endswith(f"/ogc/collections/{layer}") for v in links.values()), links
    assert api["applicant"].get(next(iter(links.values()))).status_code == 200
    assert db.execute("SELECT count(*) FROM share_request s JOIN layer l ON l.id = s.layer_id "
                      "WHERE l.name = %s", (layer,)).fetchone()[0] == 0


def test_overdue_escalates_to_the_bureau(api, db):
    from exchange.clock import deadline
    from exchange.deadlines import check_deadlines

    layer = fresh_resource(db, "conditional", "od")
    gh, owner, admin = api["applicant"], api["owner"], api["admin"]
    rid = gh.file(layer).json()["id"]
    # the request as it stands when it was filed five weeks ago and never answered
    filed = datetime.now(UTC) - timedelta(days=35)
    db.execute("UPDATE share_request SET submitted_at = %s, deadline = %s WHERE id = %s",
               (filed, deadline(filed, 10), rid))
    before = admin.get("/exchange/requests", box="all").json()["requests"]
    assert {x["id"]: x for x in before}[rid]["overdue"] is False  # a read writes nothing
    check_deadlines(db)  # what the worker's periodic job (exchange.tasks) runs
    seen = {x["id"]: x for x in admin.get("/exchange/requests", box="all").json()["requests"]}
    assert seen[rid]["overdue"] is True and seen[rid]["escalated_at"]
    full = admin.request(rid).json()
    assert [e["action"] for e in full["events"]].count("escalate") == 1
    notes = admin.get("/exchange/notifications").json()["notifications"]
    assert any(n.get("request_id") == rid for n in notes)
    # escalation is idempotent; an answer later keeps it counted as overdue
    check_deadlines(db)
    r = owner.post(f"/exchange/requests/{rid}/answer", {"decision": "approve"})
    assert r.status_code == 200, r.text
    full = owner.request(rid).json()
    assert full["overdue"] is True and full["status"] == "approved"
    assert [e["action"] for e in full["events"]].count("escalate") == 1
    assert db.execute("SELECT dept_code FROM audit_log WHERE action = 'exchange.escalate' "
                      "AND (request->>'share_request')::int = %s", (rid,)).fetchall()


def test_the_bureau_answers_for_the_owner(api, db):
    layer = fresh_resource(db, "conditional", "bu")
    gh, admin = api["applicant"], api["admin"]
    rid = gh.file(layer).json()["id"]
    r = admin.post(f"/exchange/requests/{rid}/answer", {"decision": "approve"})
    assert r.status_code == 200, r.text
    last = gh.request(rid).json()["events"][-1]
    assert last["action"] == "approve" and last["for_dept"] == OWNER
    assert last["actor_dept"] == BUREAU
    assert _items(gh, layer).status_code == 200


def test_rules_are_public(api):
    r = api["anonymous"].get("/exchange/rules")
    assert r.status_code == 200, r.text
    cur = r.json()["current"]
    assert cur["working_days"] == 10 and cur["basis"] == "国发〔2016〕51号"
    assert cur["escalate_to"] == BUREAU
    assert cur["id"] in {x["id"] for x in r.json()["rules"]}


def test_supervision_shows_grants_without_approval(api, db):
    """A grant typed with `jmgeo grant add` (no approval on record) shows up in the
    bureau's supervision view; an approval's grant does not; departments may not look."""
    from layers.grants import add_grant

    layer = fresh_resource(db, "conditional", "sv")
    cli = add_grant(db, layer=layer, dept="hb", purpose="应急核查", approved_by="局长口头同意")
    rid = api["applicant"].file(layer).json()["id"]
    api["owner"].post(f"/exchange/requests/{rid}/answer", {"decision": "approve"})
    via_request = api["applicant"].request(rid).json()["grant_id"]
    for label in ("admin", "auditor"):
        r = api[label].get("/exchange/supervision")
        assert r.status_code == 200, r.text
        ids = {g["id"] for g in r.json()["cli_grants"]}
        assert cli in ids and via_request not in ids
        assert r.json()["by_status"].get("approved", 0) >= 1
    assert api["owner"].get("/exchange/supervision").status_code == 403
    assert api["anonymous"].get("/exchange/supervision").status_code == 401


BAD_FILINGS = [
    ({"purpose": ""}, "purpose"),
    ({"purpose": None}, "purpose"),
    ({"fields": ["no_such_field"]}, "no_such_field"),
    ({"regions": ["110101"]}, "110101"),  # 北京市东城区: outside Jiangmen
    ({"period_from": "2027-06-01", "period_to": "2027-01-01"}, "period"),
    ({"mode": "fax"}, "mode"),
    ({"resource": "tx_never_existed"}, None),
]


@pytest.mark.parametrize(("change", "named"), BAD_FILINGS)
def test_bad_filings(api, db, change, named):
    layer = fresh_resource(db, "conditional", "bad")
    before = db.execute("SELECT count(*) FROM share_request").fetchone()[0]
    body = {"resource": layer, "purpose": "规划", **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = api["applicant"].post("/exchange/requests", body)
    assert 400 <= r.status_code < 500, r.text
    if named:
        assert named in r.json()["description"], r.json()
    else:
        assert r.status_code == 404
    assert db.execute("SELECT count(*) FROM share_request").fetchone()[0] == before


def test_refused_data_access_is_audited(api, db):
    """A department refused data it may only see in the catalog leaves an audit row
    (``refused``, which way, the class) and still gets the standard 404; anonymous callers
    and nonexistent names leave none. After an approval the same call is an access."""
    layer = fresh_resource(db, "conditional", "ra")
    gh, anon = api["applicant"], api["anonymous"]

    def rows_since(mark):
        return db.execute("SELECT action, dept_code, layer, request->>'way', "
                          "request->>'sharing_class' FROM audit_log WHERE id > %s "
                          "ORDER BY id", (mark,)).fetchall()

    mark = db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
    assert _items(gh, layer).status_code == 404
    assert _download(gh, layer).status_code == 404
    assert _items(anon, layer).status_code == 404
    assert _items(gh, "tx_never_existed").status_code == 404
    assert rows_since(mark) == [("refused", APPLICANT, layer, "ogc", "conditional"),
                                ("refused", APPLICANT, layer, "http", "conditional")]
    rid = gh.file(layer).json()["id"]
    assert api["owner"].post(f"/exchange/requests/{rid}/answer",
                             {"decision": "approve"}).status_code == 200
    mark = db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
    assert _items(gh, layer).status_code == 200
    assert [r[0] for r in rows_since(mark)] == ["ogc.items"]


def test_a_late_answer_counts_as_overdue_without_a_sweep(api, db):
    """The answer checks its own request's clock first: counted overdue even when no
    worker has run since the deadline passed."""
    from exchange.clock import deadline

    layer = fresh_resource(db, "conditional", "late")
    gh, owner = api["applicant"], api["owner"]
    rid = gh.file(layer).json()["id"]
    filed = datetime.now(UTC) - timedelta(days=35)
    db.execute("UPDATE share_request SET submitted_at = %s, deadline = %s WHERE id = %s",
               (filed, deadline(filed, 10), rid))
    r = owner.post(f"/exchange/requests/{rid}/answer", {"decision": "approve"})
    assert r.status_code == 200, r.text
    full = owner.request(rid).json()
    assert full["overdue"] is True and full["status"] == "approved"
    assert [e["action"] for e in full["events"]].count("escalate") == 1
