"""Serving the base libraries (issue 15 §4–6): both libraries under the policy on every
way out with 0 leaks and masking, the verification service (核验) without leaking, the
person-level access log, tickets masked, the review queue, the spatial link and the
thematic indicators — on the demo data (fake sources with deliberate disagreements)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import psycopg
import pytest
from baselib_fixtures import golden, reset_sources

from baselib import review
from baselib.integrate import integrate

OWNER = "wxtc"
DEPTS = ("hb", "gh", "gaj", "rsj")


@pytest.fixture(scope="module")
def world(database_url):
    from baselib.demo import ensure_baselib_departments, load_demo_baselib
    from layers.grants import add_grant
    from layers.identity import create_key

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_baselib_departments(conn)
        for lib in ("persons", "legal_persons"):
            reset_sources(conn, lib)
    messages: list[str] = []
    load_demo_baselib(database_url, log=messages.append, persons=300, legal_persons=200)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # gh holds an unmasking grant naming 身份证号 and 姓名 (not phone, not address)
        add_grant(conn, layer="persons", dept="gh", purpose="人员身份核对",
                  approved_by="测试", fields=["id_number", "name"])
        stamp = datetime.now(UTC).timestamp()
        keys = {d: create_key(conn, f"tbs-{d}-{stamp}", dept=d)["token"] for d in DEPTS}
        keys["owner"] = create_key(conn, f"tbs-admin-{stamp}", role="admin",
                                   dept=OWNER)["token"]
        keys["auditor"] = create_key(conn, f"tbs-aud-{stamp}", role="auditor")["token"]
        persons = golden(conn, "persons")
        legal = golden(conn, "legal_persons")
    return {"keys": keys, "persons": persons, "legal": legal, "messages": messages}


def h(world, who):
    return {} if who == "anonymous" else {"X-API-Key": world["keys"][who]}


CALLERS = ("anonymous", "hb", "gh", "gaj", "owner", "auditor")
# what each caller may see in clear of a person (beyond the owner, who sees everything)
CLEAR = {"gh": {"id_number", "name"}, "owner": {"id_number", "name", "phone", "address"}}
PERSON_FIELDS = ("id_number", "name", "phone", "address")


def _clear_values(world, lib: str) -> dict[str, set[str]]:
    """The clear values of every sensitive field of a library, by field."""
    if lib == "persons":
        rows = world["persons"].values()
        return {f: {r[f] for r in rows if r[f] and len(r[f]) >= 2} for f in PERSON_FIELDS}
    return {"phone": {r["phone"] for r in world["legal"].values() if r["phone"]}}


def _leaks(text: str, values: dict[str, set[str]], allowed: set[str]) -> dict[str, int]:
    found = {}
    for field, vals in values.items():
        if field in allowed:
            continue
        if field == "name":  # 2-character names are too short to scan reliably
            vals = {v for v in vals if len(v) >= 3}
        n = sum(1 for v in vals if v in text)
        if n:
            found[field] = n
    return found


def _ways(world, lib: str) -> list[tuple[str, str, dict]]:
    some = next(iter(world["persons" if lib == "persons" else "legal"]))
    return [
        ("GET", f"/ogc/collections/{lib}/items", {"f": "json", "limit": 1000}),
        ("GET", f"/ogc/collections/{lib}/items/1", {"f": "json"}),
        ("GET", f"/ogc/collections/{lib}/items/{some}", {"f": "json"}),
        ("GET", f"/ogc/collections/{lib}/queryables", {"f": "json"}),
        ("GET", f"/downloads/{lib}", {"format": "csv"}),
        ("GET", f"/downloads/{lib}", {"format": "geojson"}),
        ("GET", f"/exchange/feeds/{lib}", {}),
        ("GET", f"/exchange/query/{lib}/{some}", {}),
        ("GET", "/baselib/tickets", {"library": lib, "limit": 1000}),
        ("GET", f"/baselib/{lib}/review", {}),
        ("GET", f"/baselib/{lib}/records/{some}/access", {}),
        ("GET", "/baselib/themes", {}),
        ("GET", "/audit", {"limit": 500}),
    ]


@pytest.mark.parametrize("lib", ["persons", "legal_persons"])
def test_access_matrix_zero_leaks(app_client, world, lib):
    values = _clear_values(world, lib)
    leaks, seen_clear = [], set()
    for who in CALLERS:
        allowed = CLEAR.get(who, set()) if lib == "persons" else (
            {"phone"} if who == "owner" else set())
        for method, path, params in _ways(world, lib):
            extra = set()
            if lib == "persons" and who == "gaj" and path == "/baselib/tickets":
                # the authority (公安 for 姓名, 住址) is sent both values of its tickets and
                # the key, to check them: its own register's data and the copy beside it
                extra = {"id_number", "name", "address"}
            if lib == "persons" and who == "auditor" and path == "/audit":
                extra = {"id_number"}  # the evidence: which record was asked for, by whom
            r = app_client.request(method, path, params=params, headers=h(world, who))
            if who == "anonymous" and not path.startswith("/baselib/themes"):
                assert r.status_code in (401, 404), (who, path, r.status_code)
            # an error may echo what the caller sent (the key in the path): not a leak
            text = r.text.replace(path.rsplit("/", 1)[-1], "") if r.status_code >= 400 \
                else r.text
            found = _leaks(text, values, allowed | extra)
            if found:
                leaks.append((who, path, r.status_code, found))
            if r.status_code == 200:
                seen_clear |= {f for f in allowed if _leaks(r.text, {f: values[f]}, set())}
    assert leaks == [], "\n".join(map(str, leaks))
    # the scan can see: the owner (and gh, for persons) got clear values somewhere
    assert seen_clear == ({"id_number", "name", "phone", "address"} if lib == "persons"
                          else {"phone"})


def test_departments_get_every_record_masked(app_client, world):
    r = app_client.get("/ogc/collections/persons/items", params={"f": "json", "limit": 1000},
                       headers=h(world, "hb"))
    assert r.status_code == 200
    feats = r.json()["features"]
    assert len(feats) == len(world["persons"])
    p = feats[0]["properties"]
    assert re.fullmatch(r"\d{4}\*{10}[\dX]{4}", p["id_number"]) and p["address"] == "****"
    assert p["town_code"] == p["county_code"] == "****"  # located from the address: masked
    assert "*" in p["phone"] and "*" in p["name"]
    # unmasked only where the grant names the field: gh's id and name in clear
    r = app_client.get("/ogc/collections/persons/items", params={"f": "json", "limit": 5},
                       headers=h(world, "gh"))
    q = r.json()["features"][0]["properties"]
    assert q["id_number"] in world["persons"] and "*" not in q["name"]
    assert q["address"] == "****" and "*" in q["phone"]


def test_online_query_by_key_needs_the_key_unmasked_and_is_logged(app_client, world):
    key = sorted(world["persons"])[3]
    assert app_client.get(f"/exchange/query/persons/{key}", headers=h(world, "hb")
                          ).status_code == 400  # its access masks the key: no oracle
    r = app_client.get(f"/exchange/query/persons/{key}", headers=h(world, "gh"))
    assert r.status_code == 200 and r.json()["properties"]["id_number"] == key
    assert r.json()["properties"]["address"] == "****"
    r = app_client.get(f"/exchange/query/legal_persons/{sorted(world['legal'])[0]}",
                       headers=h(world, "hb"))
    assert r.status_code == 200 and "*" in (r.json()["properties"]["phone"] or "*")
    log = app_client.get(f"/baselib/persons/records/{key}/access", headers=h(world, "owner"))
    assert log.status_code == 200
    assert [(a["dept_code"], a["way"]) for a in log.json()["access"]][:1] == [("gh", "query")]
    assert log.json()["access"][0]["grant_id"] is not None
    for who in ("gh", "hb"):
        assert app_client.get(f"/baselib/persons/records/{key}/access",
                              headers=h(world, who)).status_code == 403
    assert app_client.get(f"/baselib/persons/records/{key}/access",
                          headers=h(world, "auditor")).status_code == 200


def test_verification_answers_match_no_match_unknown_and_nothing_else(app_client, world):
    keys = sorted(world["persons"])
    a, b = world["persons"][keys[0]], world["persons"][keys[1]]
    absent = keys[2][:14] + "9999"
    from layers.identifiers import ric_check_char

    absent = absent[:17] + ric_check_char(absent[:17])
    pairs = [{"key": a["id_number"], "name": a["name"]},
             {"key": b["id_number"].lower(), "name": " " + b["name"] + "X"},
             {"key": a["id_number"][:-1] + ("0" if a["id_number"][-1] != "0" else "1"),
              "name": a["name"]},
             {"key": absent if absent not in world["persons"] else "1", "name": "某某"}]
    r = app_client.post("/baselib/persons/verify", json={"pairs": pairs},
                        headers=h(world, "hb"))
    assert r.status_code == 200
    assert r.json() == {"library": "persons", "results": [
        {"row": 1, "result": "match"}, {"row": 2, "result": "no_match"},
        {"row": 3, "result": "unknown"}, {"row": 4, "result": "unknown"}]}
    assert _leaks(r.text, _clear_values(world, "persons"), set()) == {}
    assert app_client.post("/baselib/persons/verify", json={"pairs": pairs}
                           ).status_code == 401  # never anonymous
    assert app_client.post("/baselib/persons/verify", json={"pairs": pairs},
                           headers=h(world, "auditor")).status_code == 403
    log = app_client.get(f"/baselib/persons/records/{a['id_number']}/access",
                         headers=h(world, "owner")).json()["access"]
    assert ("hb", "verify", "match") in {(x["dept_code"], x["way"], x["outcome"]) for x in log}
    audit = app_client.get("/audit", params={"limit": 50}, headers=h(world, "auditor")).json()
    rows = [x for x in audit.get("entries", audit.get("rows", [])) if
            x.get("action") == "baselib.verify"] if isinstance(audit, dict) else []
    assert not rows or a["id_number"] not in str(rows)


def test_tickets_go_to_the_authority_masked_for_others(app_client, world):
    mine = app_client.get("/baselib/tickets", params={"library": "persons", "limit": 1000},
                          headers=h(world, "gaj")).json()["tickets"]
    assert mine and all(t["authority"] == "gaj" or t["copy_dept"] == "gaj" for t in mine)
    t = next(t for t in mine if t["attribute"] == "name" and t["authority"] == "gaj")
    assert t["key"] in world["persons"] and "*" not in t["copy_value"]  # it checks both
    theirs = app_client.get("/baselib/tickets", params={"library": "persons", "limit": 1000},
                            headers=h(world, "rsj")).json()["tickets"]
    mine_r = next(x for x in theirs if x["id"] == t["id"])
    assert "*" in mine_r["authority_value"] and "*" not in mine_r["copy_value"]
    assert app_client.get("/baselib/tickets", params={"library": "persons"},
                          headers=h(world, "hb")).json()["tickets"] == []
    aud = app_client.get("/baselib/tickets", params={"library": "persons"},
                         headers=h(world, "auditor")).json()["tickets"]
    assert aud and all("*" in x["key"] for x in aud)
    rep = app_client.get("/baselib/tickets/report", headers=h(world, "auditor"))
    assert rep.status_code == 200 and rep.json()["by_authority"]["gaj"]["open"] >= 1
    assert app_client.post(f"/baselib/tickets/{t['id']}/answer", json={"verdict": "confirmed"},
                           headers=h(world, "rsj")).status_code == 403
    ok = app_client.post(f"/baselib/tickets/{t['id']}/answer",
                         json={"verdict": "confirmed", "note": "户籍为准"}, headers=h(world, "gaj"))
    assert ok.status_code == 200 and ok.json()["status"] == "confirmed"


def test_review_queue_exact_key_suggestions_applied_then_merged(app_client, world,
                                                                 database_url):
    assert app_client.get("/baselib/persons/review", headers=h(world, "hb")).status_code == 403
    q = app_client.get("/baselib/persons/review", headers=h(world, "owner")).json()["items"]
    assert q and all(i["reason"] for i in q)
    with psycopg.connect(database_url, autocommit=True) as conn:
        res = review.suggest_all(conn, "persons")
        assert res["applied"] >= 1
        report = integrate(conn, "persons", by="test")
    assert report["keys"]["resolved_by_review"] == res["applied"]
    assert report["quarantined"] == len(q) - res["applied"]
    # a decision adds the resolved keys' records: the history is compared again although
    # no source has a new version, and their records are written
    assert report["history_skipped"] == [] and report["records_added"] >= res["applied"]


def test_spatial_link_and_region_statistics(app_client, world):
    located = [r for r in world["legal"].values() if r["town_code"]]
    assert len(located) == len(world["legal"])  # every demo address names its town
    assert all(r["town_code"][:6] == r["county_code"] for r in located)
    r = app_client.get("/baselib/legal_persons/regions", headers=h(world, "hb"))
    assert r.status_code == 200
    regions = r.json()["regions"]
    assert sum(x["n"] for x in regions) == len(world["legal"])
    assert all(len(x["code"]) == 9 and x["name"] for x in regions)
    assert app_client.get("/baselib/legal_persons/regions").status_code == 401
    # persons: every demo address names its town; the counts (never a record) for any
    # department, though each person's codes are masked
    assert all(r["town_code"] and r["town_code"][:6] == r["county_code"]
               for r in world["persons"].values())
    r = app_client.get("/baselib/persons/regions", headers=h(world, "hb"))
    assert r.status_code == 200
    per_town = r.json()["regions"]
    assert sum(x["n"] for x in per_town) == len(world["persons"])
    expect: dict[str, int] = {}
    for p in world["persons"].values():
        expect[p["town_code"]] = expect.get(p["town_code"], 0) + 1
    assert {x["code"]: x["n"] for x in per_town} == expect


def test_demo_registers_libraries_and_themes_in_the_catalog(world, database_url):
    assert not [m for m in world["messages"] if "deferred" in m]
    with psycopg.connect(database_url) as conn:
        themes = dict(conn.execute(
            "SELECT name, theme FROM layer WHERE name IN ('persons', 'legal_persons', "
            "'credit_records', 'tax_records', 'enterprise_stats', 'yimen_services', "
            "'insurance_coverage')"))
    assert themes == {"persons": "population", "legal_persons": "legal_person",
                      "credit_records": "credit", "tax_records": "tax",
                      "enterprise_stats": "statistics", "yimen_services": "gov_services",
                      "insurance_coverage": "insurance"}


def test_thematic_indicators(app_client, world):
    r = app_client.get("/baselib/themes", headers=h(world, "hb"))
    assert r.status_code == 200
    got = {i["theme"]: i for i in r.json()["themes"]}
    assert set(got) == {"credit", "tax", "gov_services", "statistics", "insurance"}
    assert all(i["values"] for i in got.values())
    assert app_client.get("/baselib/themes").status_code == 401


def test_cli_batch_verification_and_tickets(world, tmp_path, capsys):
    from jmgeo.cli import main

    a = next(iter(world["persons"].values()))
    f = tmp_path / "list.csv"
    f.write_text(f"key,name\n{a['id_number']},{a['name']}\n12345,某\n", encoding="utf-8")
    assert main(["baselib", "verify", "persons", str(f), "--as", "hb"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["row,result", "1,match", "2,unknown"]
    assert main(["baselib", "tickets", "--library", "persons", "--as", "hb"]) == 0
    assert capsys.readouterr().out.strip() == "[]"
    assert main(["baselib", "authority", "list", "persons"]) == 0
    assert '"gaj"' in capsys.readouterr().out
    assert main(["baselib", "source", "add", "persons", "gaj_hj", "--key", "nope",
                 "--map", "name=xm"]) == 2
    assert "no key column 'nope'" in capsys.readouterr().err


def test_unanswered_tickets_count_overdue_after_their_deadline(world, database_url):
    from datetime import date

    from baselib import tickets
    from layers.policy import Caller

    auditor = Caller(kind="auditor", name="aud")
    with psycopg.connect(database_url) as conn:
        now = tickets.report(conn, auditor)["by_authority"]["gaj"]
        later = tickets.report(conn, auditor, today=date(2099, 1, 1))["by_authority"]["gaj"]
    assert now["open"] > 0 and now["overdue"] == 0  # opened today, due in 10 working days
    assert later["overdue"] >= later["open"] == now["open"]


def test_a_department_requests_unmasking_and_the_owner_grants_it(app_client, world):
    """An unconditional library needs no request — except to see a masked field in clear:
    a request naming sensitive fields goes to the owner (the bureau), whose approval is an
    unmasking grant; a request naming none is told where the data is; regions are refused
    (the library is shared whole)."""
    key = sorted(world["persons"])[5]
    person = world["persons"][key]
    plain = app_client.post("/exchange/requests", headers=h(world, "hb"), json={
        "resource": "persons", "purpose": "低保复核", "fields": ["gender"]})
    assert plain.status_code == 409 and "phone" in plain.text  # names what it could unmask
    regional = app_client.post("/exchange/requests", headers=h(world, "hb"), json={
        "resource": "persons", "purpose": "低保复核", "fields": ["phone"],
        "regions": ["440703"]})
    assert regional.status_code == 422 and "regions" in regional.text
    r = app_client.post("/exchange/requests", headers=h(world, "hb"), json={
        "resource": "persons", "purpose": "低保对象联系核实", "fields": ["id_number", "phone"]})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["status"] == "submitted"
    # before the answer hb's access masks the key: the online query refuses it
    assert app_client.get(f"/exchange/query/persons/{key}", headers=h(world, "hb")
                          ).status_code == 400
    assert app_client.post(f"/exchange/requests/{rid}/answer", headers=h(world, "hb"),
                           json={"decision": "approve"}).status_code == 403
    a = app_client.post(f"/exchange/requests/{rid}/answer", headers=h(world, "owner"),
                        json={"decision": "approve"})
    assert a.status_code == 200, a.text
    q = app_client.get(f"/exchange/query/persons/{key}", headers=h(world, "hb"))
    assert q.status_code == 200, q.text
    props = q.json()["properties"]
    assert props["id_number"] == key and props["phone"] == person["phone"]
    assert props["address"] == "****"  # not named: still masked
    log = app_client.get(f"/baselib/persons/records/{key}/access", headers=h(world, "owner"))
    assert log.json()["access"][0]["share_request"] == rid
    assert app_client.post(f"/exchange/requests/{rid}/revoke", headers=h(world, "owner"),
                           json={"reason": "测试结束"}).status_code == 200
    assert app_client.get(f"/exchange/query/persons/{key}", headers=h(world, "hb")
                          ).status_code == 400


def test_bulk_reads_enter_every_person_in_the_access_log(app_client, world, database_url):
    """Who looked at this person — also when it came in a page, a download or a feed:
    the library keeps a record-level log on every way out, written with the audit row."""
    keys = sorted(world["persons"])
    hb = h(world, "hb")
    with psycopg.connect(database_url) as conn:
        t0 = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    page = app_client.get("/ogc/collections/persons/items",
                          params={"f": "json", "limit": 3}, headers=hb)
    assert page.status_code == 200 and len(page.json()["features"]) == 3
    fids = [f["id"] for f in page.json()["features"]]  # hb's key is masked: ids are fids
    first = [k for k, r in world["persons"].items() if str(r["fid"]) in map(str, fids)]
    assert len(first) == 3
    html = app_client.get("/ogc/collections/persons/items", params={"f": "html"},
                          headers=hb)
    assert html.status_code == 406 and "f=json" in html.text  # not unlogged, not a 500
    assert app_client.get("/downloads/persons", params={"format": "csv"},
                          headers=hb).status_code == 200
    # a feed is by key: gh, whose grant names the ID number, pulls one (hb may not)
    assert app_client.get("/exchange/feeds/persons", headers=hb).status_code == 400
    feed = app_client.get("/exchange/feeds/persons", headers=h(world, "gh"))
    assert feed.status_code == 200 and feed.text.count("\n") >= len(keys)

    def ways(key):
        log = app_client.get(f"/baselib/persons/records/{key}/access",
                             headers=h(world, "owner")).json()["access"]
        return {(a["dept_code"], a["way"]) for a in log}

    for key in first:
        assert {("hb", "ogc.items"), ("hb", "download"), ("gh", "feed")} <= ways(key)
    with psycopg.connect(database_url) as conn:  # the page: exactly its three people
        seen = {r[0] for r in conn.execute(
            "SELECT key FROM baselib_access WHERE library = 'persons' AND dept_code = 'hb' "
            "AND way = 'ogc.items' AND at >= %s", (t0,))}
    assert seen == set(first)
    others = [k for k in keys if k not in first]
    assert {("hb", "download"), ("gh", "feed")} <= ways(others[-1])  # whole-library reads


def test_batch_verification_of_an_uploaded_list(app_client, world):
    """批量核验: a CSV list (Chinese headers, GBK as Excel saves it) answered line by line,
    more lines than one request of pairs takes; a list that is not key,name is refused
    naming what it lacks; never anonymous."""
    keys = sorted(world["persons"])
    a, b = world["persons"][keys[0]], world["persons"][keys[1]]
    lines = [f"{a['id_number']},{a['name']}", f"{b['id_number']},{b['name']}X", "123,某某"]
    body = ("身份证号,姓名\r\n" + "\r\n".join(lines * 400) + "\r\n").encode("gbk")
    files = {"file": ("名单.csv", body, "text/csv")}
    r = app_client.post("/baselib/persons/verify/batch", files=files, headers=h(world, "hb"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    out = r.content.decode("utf-8-sig").splitlines()
    assert out[0] == "row,key,result" and len(out) == 1 + 1200  # more than one request takes
    assert out[1:4] == [f"1,{a['id_number']},match", f"2,{b['id_number']},no_match",
                        "3,123,unknown"]
    assert out[-1] == "1200,123,unknown"
    assert _leaks(r.text, _clear_values(world, "persons"),
                  {"id_number"}) == {}  # only the keys it sent come back
    bad = app_client.post("/baselib/persons/verify/batch", headers=h(world, "hb"),
                          files={"file": ("x.csv", b"id,who\n1,2\n", "text/csv")})
    assert bad.status_code == 422 and "key" in bad.text and "x.csv" in bad.text
    assert app_client.post("/baselib/persons/verify/batch", files=files).status_code == 401
