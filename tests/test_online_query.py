"""联机查询 — online query (issue 11 §4) against the real app and database.

By key for a table and a vector layer, masked and grant-limited fields, a record outside
the grant's region answering byte for byte like a missing key, ``fields=`` with a hidden
field refused like an unknown one, by point (with the region), the audit row carrying the
share request of the grant, 429 after the burst, anonymous callers on open and
conditional data.
"""

from __future__ import annotations

import psycopg
import pytest
from exchange_fixtures import APPLICANT, Api, make_callers
from policy_fixtures import FEATURES, create_layer, create_table

KEYS = {f[4]: f for f in FEATURES}  # name (the key) → feature
_N = iter(range(1, 10_000))


@pytest.fixture(scope="module")
def who(database_url):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return make_callers(conn)


@pytest.fixture
def api(app_client, who):
    return {label: Api(app_client, w) for label, w in who.items()}


def _table(db, cls: str) -> str:
    name = f"tq_tab_{cls[:4]}_{next(_N)}"
    create_table(db, name, cls)
    return name


def _layer(db, cls: str, keyed: bool = True) -> str:
    """A vector layer with the four test features; keyed by ``name`` (with the index the
    loader should make for a layer's key) unless ``keyed`` is False."""
    from layers.registry import index_key

    name = f"tq_lyr_{cls[:4]}_{next(_N)}"
    create_layer(db, name, cls)
    if keyed:
        db.execute("UPDATE layer SET key_field = 'name' WHERE name = %s", (name,))
        table = db.execute("SELECT v.table_name FROM layer l JOIN layer_version v ON "
                           "v.layer_id = l.id AND v.version = l.current_version WHERE "
                           "l.name = %s", (name,)).fetchone()[0]
        index_key(db, table, "name")
    return name


def _mark(db) -> int:
    return db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]


def _audit(db, mark: int, layer: str):
    return db.execute("SELECT action, dept_code, rows, grant_id, request->>'share_request' "
                      "FROM audit_log WHERE id > %s AND layer = %s ORDER BY id",
                      (mark, layer)).fetchall()


def _masked(value, clear) -> bool:
    return value != clear and "*" in str(value)


def test_by_key_table_and_layer_masked(api, db):
    hb = api["unrelated"]
    for resource, is_table in ((_table(db, "unconditional"), True),
                               (_layer(db, "unconditional"), False)):
        mark = _mark(db)
        r = hb.get(f"/exchange/query/{resource}/北街地块")
        assert r.status_code == 200, r.text
        assert "public" not in r.headers["cache-control"]
        body = r.json()
        fid, lon, lat, county, name, qlr, phone, sfz, area = KEYS["北街地块"]
        props = body["properties"]
        assert set(props) == {"name", "qlr", "phone", "sfz", "area", "county"}
        assert (props["name"], props["area"], props["county"]) == (name, area, county)
        for field, clear in (("qlr", qlr), ("phone", phone), ("sfz", sfz)):
            assert _masked(props[field], clear), (field, props[field])
        if is_table:
            assert "geometry" not in body
        else:
            assert body["geometry"]["coordinates"] == [[lon, lat]]
        assert _audit(db, mark, resource) == [("query", "hb", 1, None, None)]


def test_grant_from_a_share_request_limits_fields_and_is_audited(api, db):
    """The grant came from a share request: its fields only, the request id in the audit."""
    table = _table(db, "conditional")
    gh, owner = api["applicant"], api["owner"]
    assert gh.get(f"/exchange/query/{table}/北街地块").status_code == 404  # no grant yet
    rid = gh.file(table, fields=["name", "phone", "area"]).json()["id"]
    r = owner.post(f"/exchange/requests/{rid}/answer", {"decision": "approve"})
    assert r.status_code == 200, r.text
    mark = _mark(db)
    r = gh.get(f"/exchange/query/{table}/白沙地块")
    assert r.status_code == 200, r.text
    props = r.json()["properties"]
    assert set(props) == {"name", "phone", "area"}
    # a sensitive field the grant names is given in clear (layers.policy)
    assert (props["name"], props["phone"]) == ("白沙地块", KEYS["白沙地块"][6])
    rows = _audit(db, mark, table)
    assert len(rows) == 1 and rows[0][:3] == ("query", APPLICANT, 1)
    assert rows[0][3] is not None and rows[0][4] == str(rid)
    # fields= narrows; a field the grant hides is refused exactly like one that is absent
    r = gh.get(f"/exchange/query/{table}/白沙地块", fields="area")
    assert r.status_code == 200 and r.json()["properties"] == {"area": 88.0}
    hidden = gh.get(f"/exchange/query/{table}/白沙地块", fields="name,qlr")
    unknown = gh.get(f"/exchange/query/{table}/白沙地块", fields="name,no_such")
    assert hidden.status_code == unknown.status_code == 400
    assert hidden.text.replace("qlr", "F") == unknown.text.replace("no_such", "F")


def test_no_query_by_a_key_the_caller_may_not_see_unmasked(api, db):
    """Found / not found would be an oracle on a withheld key: a grant without the key
    field, or a key masked for the caller, refuses the query by key — the same answer
    for a key that exists and one that does not (it depends on the grant alone)."""
    table = _table(db, "conditional")
    gh, owner = api["applicant"], api["owner"]
    rid = gh.file(table, fields=["area", "county"]).json()["id"]  # no `name`: the key
    assert owner.post(f"/exchange/requests/{rid}/answer",
                      {"decision": "approve"}).status_code == 200
    mark = _mark(db)
    present = gh.get(f"/exchange/query/{table}/白沙地块")
    absent = gh.get(f"/exchange/query/{table}/没有这块地")
    assert present.status_code == absent.status_code == 400
    assert present.text == absent.text
    assert "不能按键查询" in present.json()["description"]
    assert "share request" in present.json()["description"]
    assert _audit(db, mark, table) == []  # nothing was evaluated, nothing handed out
    # a masked key: an unconditional table keyed by a sensitive field (身份证号)
    masked = f"tq_tab_sfz_{next(_N)}"
    create_table(db, masked, "unconditional")
    db.execute("UPDATE layer SET key_field = 'sfz' WHERE name = %s", (masked,))
    r = api["unrelated"].get(f"/exchange/query/{masked}/{KEYS['北街地块'][7]}")
    assert r.status_code == 400 and "sfz" in r.json()["description"]
    r = api["owner"].get(f"/exchange/query/{masked}/{KEYS['北街地块'][7]}")
    assert r.status_code == 200  # the owner sees the key in clear


def test_region_scope_hides_a_record_like_a_missing_key(api, db):
    layer = _layer(db, "conditional")
    gh, owner = api["applicant"], api["owner"]
    rid = gh.file(layer, fields=["name", "area", "county"], regions=["440703"]).json()["id"]
    assert owner.post(f"/exchange/requests/{rid}/answer",
                      {"decision": "approve"}).status_code == 200
    r = gh.get(f"/exchange/query/{layer}/北街地块")  # 蓬江区: inside the grant
    assert r.status_code == 200 and set(r.json()["properties"]) == {"name", "area", "county"}
    mark = _mark(db)
    outside = gh.get(f"/exchange/query/{layer}/台城地块")  # 台山市: outside
    missing = gh.get(f"/exchange/query/{layer}/不存在的键")
    assert outside.status_code == missing.status_code == 404
    assert outside.content == missing.content
    assert "台城" not in outside.text and "不存在的键" not in missing.text
    assert outside.headers.get("content-type") == missing.headers.get("content-type")
    assert [r[:3] for r in _audit(db, mark, layer)] == [("query", APPLICANT, 0)] * 2


def test_by_point_with_region(api, db):
    layer = _layer(db, "unconditional", keyed=False)
    hb = api["unrelated"]
    fid, lon, lat, county, name, *_ = KEYS["台城地块"]
    mark = _mark(db)
    r = hb.get(f"/exchange/query/{layer}", lon=lon, lat=lat, fields="name,county")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["region"]["county"]["code"] == county
    assert [x["properties"] for x in body["records"]] == [{"name": name, "county": county}]
    assert body["records"][0]["geometry"]["type"] == "MultiPoint"
    assert body["numberReturned"] == 1 and body["truncated"] is False
    r = hb.get(f"/exchange/query/{layer}", lon=lon + 0.01, lat=lat)  # ~1 km away: nothing
    assert r.status_code == 200 and r.json()["records"] == []
    assert [x[:3] for x in _audit(db, mark, layer)] == [("query", "hb", 1), ("query", "hb", 0)]
    # a layer without a declared key: no query by key; a table: no query by point
    r = hb.get(f"/exchange/query/{layer}/台城地块")
    assert r.status_code == 400 and "key" in r.json()["description"]
    table = _table(db, "unconditional")
    assert hb.get(f"/exchange/query/{table}", lon=lon, lat=lat).status_code == 400
    assert hb.get(f"/exchange/query/{layer}", lon=500, lat=lat).status_code == 422


def test_anonymous_open_and_conditional(api, db):
    anon = api["anonymous"]
    open_table, cond_table = _table(db, "open"), _table(db, "conditional")
    mark = _mark(db)
    r = anon.get(f"/exchange/query/{open_table}/水步地块")
    assert r.status_code == 200 and r.json()["properties"]["name"] == "水步地块"
    assert _audit(db, mark, open_table) == []  # open data is not audited
    hidden = anon.get(f"/exchange/query/{cond_table}/水步地块")
    never = anon.get("/exchange/query/tq_never_existed/水步地块")
    assert hidden.status_code == never.status_code == 404
    assert hidden.text == never.text


def test_no_audit_row_no_data(api, db, owner_database_url):
    """When the audit row cannot be written (here: a trigger refusing it, a real database
    failure), the query answers 503 and gives no data."""
    table = _table(db, "unconditional")
    su = psycopg.connect(owner_database_url, autocommit=True)  # triggers: the owner's
    su.execute(f"""
        CREATE FUNCTION tq_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.layer = '{table}' THEN RAISE EXCEPTION 'audit refused'; END IF;
        RETURN NEW; END $$""")
    su.execute("CREATE TRIGGER tq_refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW "
               "EXECUTE FUNCTION tq_refuse_audit()")
    try:
        r = api["unrelated"].client.get(f"/exchange/query/{table}/北街地块",
                                        headers=api["unrelated"].who.headers)
        assert r.status_code == 503 and "北街地块" not in r.text and "陈" not in r.text
        assert r.json()["code"] == "ServiceUnavailable"
    finally:
        su.execute("DROP TRIGGER tq_refuse_audit ON audit_log")
        su.execute("DROP FUNCTION tq_refuse_audit()")
        su.close()
    assert api["unrelated"].get(f"/exchange/query/{table}/北街地块").status_code == 200


def test_rate_limited_after_the_burst(database_url, who):
    """A dedicated app whose limiter allows a burst of 3 and almost no refill."""
    from fastapi.testclient import TestClient

    from jmgeo.app import create_app
    from jmgeo.query_api import QueryLimiter

    app = create_app()
    app.state.query_limiter = QueryLimiter(rate=0.01, burst=3)
    with psycopg_conn(database_url) as db, TestClient(app) as client:
        table = _table(db, "open")
        gh = Api(client, who["applicant"])
        got = [gh.get(f"/exchange/query/{table}/北街地块").status_code for _ in range(4)]
        assert got == [200, 200, 200, 429]
        r = gh.get(f"/exchange/query/{table}/北街地块")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["code"] == "TooManyRequests" and " / " in r.json()["description"]
        # another key has its own bucket; anonymous callers are limited per address
        assert Api(client, who["unrelated"]).get(
            f"/exchange/query/{table}/北街地块").status_code == 200


def psycopg_conn(database_url):
    import psycopg

    return psycopg.connect(database_url, autocommit=True)
