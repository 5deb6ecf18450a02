"""Identity, keys, grants, the policy rule and the audit chain — against the real database."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from policy_fixtures import FIELDS, SENSITIVE, create_layer
from psycopg.rows import dict_row

from layers.departments import DEMO_DEPARTMENTS, make_uscc, validate_uscc
from layers.policy import Caller, decide


@pytest.fixture(scope="module")
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as c:
        for name, cls in (("tp_open", "open"), ("tp_uncond", "unconditional"),
                          ("tp_cond", "conditional"), ("tp_secret", "not_shared"),
                          ("tp_demo_parcels", "conditional")):
            create_layer(c, name, cls)
        yield c


@pytest.fixture(scope="module")
def client(app_client):
    """The app as mounted for users (GET /audit included)."""
    return app_client


def bilingual(msg: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in msg) and " / " in msg


# -- departments and USCC -----------------------------------------------------------

def test_uscc_demo_codes_valid_and_typos_caught():
    for d in DEMO_DEPARTMENTS:
        assert validate_uscc(d["uscc"]) == d["uscc"]
    code = make_uscc("11", "440700", "00701099")
    typo = code[:-1] + ("0" if code[-1] != "0" else "1")
    with pytest.raises(ValueError, match="check character"):
        validate_uscc(typo)
    with pytest.raises(ValueError, match="18 characters"):
        validate_uscc(code[:17])


def test_dept_add_validates_uscc(conn):
    from layers.identity import IdentityError, add_department, list_departments

    code = make_uscc("11", "440700", "00709001")
    with pytest.raises(IdentityError) as exc:
        add_department(conn, "tpx", "测试局", code[:-1] + "I")
    assert bilingual(str(exc.value))
    add_department(conn, "tpx", "测试局", code.lower())
    assert any(d["code"] == "tpx" and d["uscc"] == code for d in list_departments(conn))
    with pytest.raises(IdentityError, match="already registered"):
        add_department(conn, "tpx2", "重复局", code)


# -- keys and authentication --------------------------------------------------------

def test_key_is_stored_hashed_only(conn):
    from layers.identity import create_key

    key = create_key(conn, "tp-hash-check", dept="hb")
    row = conn.execute("SELECT * FROM api_key WHERE id = %s", (key["id"],)).fetchone()
    assert row["key_hash"] == hashlib.sha256(key["token"].encode()).hexdigest()
    secret = key["token"].split("_", 2)[2]
    assert all(secret not in str(v) for v in row.values())
    assert key["token"].startswith(f"jmk_{row['prefix']}_")
    assert len(secret) >= 43  # 32 random bytes


def test_valid_key_authenticates_with_constant_time_compare(conn, client, monkeypatch):
    import jmgeo.auth as auth
    from layers.identity import create_key

    calls = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest",
                        lambda a, b: calls.append(1) or real(a, b))
    key = create_key(conn, "tp-valid", dept="gh", kind="client")
    for headers in ({"X-API-Key": key["token"]}, {"Authorization": f"Bearer {key['token']}"}):
        r = client.get("/ogc/collections", params={"f": "json"}, headers=headers)
        assert r.status_code == 200
        assert "private" in r.headers["cache-control"]
    assert len(calls) == 2
    caller = auth.caller_for_token(key["token"])
    assert (caller.kind, caller.dept_code, caller.name) == ("department", "gh", "tp-valid")


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer not-a-key"},
    {"X-API-Key": ""},
    {"X-API-Key": "jmk_zzzzzzzz_" + "a" * 43},
    {"X-API-Key": "jmk_0123abcd_" + "a" * 43},  # well-formed, unknown
    {"X-API-Key": "x" * 5000},
], ids=["bearer-empty", "basic", "bearer-garbage", "empty-key", "bad-prefix", "unknown",
        "huge"])
def test_bad_credentials_are_401_never_500(client, headers):
    r = client.get("/ogc/collections", params={"f": "json"}, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert bilingual(r.json()["description"])


def test_wrong_secret_with_right_prefix_is_401(conn, client):
    from layers.identity import create_key

    key = create_key(conn, "tp-wrong-secret", dept="hb")
    prefix = key["token"].split("_")[1]
    forged = f"jmk_{prefix}_" + "A" * 43
    assert client.get("/health", headers={"X-API-Key": forged}).status_code == 401


def test_revoked_key_is_401_at_once(conn, client):
    from layers.identity import create_key, revoke_key

    key = create_key(conn, "tp-revoke", dept="hb")
    h = {"X-API-Key": key["token"]}
    assert client.get("/ogc/collections?f=json", headers=h).status_code == 200
    revoke_key(conn, key["prefix"])
    assert client.get("/ogc/collections?f=json", headers=h).status_code == 401


def test_revocation_elsewhere_reaches_this_worker_within_ttl(conn, client, monkeypatch):
    import jmgeo.auth as auth
    from layers.identity import create_key

    monkeypatch.setattr(auth, "CACHE_TTL", 0.3)
    key = create_key(conn, "tp-revoke-remote", dept="hb")
    h = {"X-API-Key": key["token"]}
    assert client.get("/health", headers=h).status_code == 200  # now cached
    # another worker revokes: straight in the database, this process's cache untouched
    conn.execute("UPDATE api_key SET revoked_at = now() WHERE id = %s", (key["id"],))
    time.sleep(0.4)
    assert client.get("/health", headers=h).status_code == 401


def test_expired_key_is_401(conn, client):
    import jmgeo.auth as auth
    from layers.identity import IdentityError, create_key

    with pytest.raises(IdentityError):
        create_key(conn, "tp-expired", dept="hb",
                   expires_at=datetime.now(UTC) - timedelta(days=1))
    key = create_key(conn, "tp-expired", dept="hb",
                     expires_at=datetime.now(UTC) + timedelta(seconds=1))
    h = {"X-API-Key": key["token"]}
    assert client.get("/health", headers=h).status_code == 200
    time.sleep(1.1)  # expiry is checked against the clock on every request, cache or not
    assert client.get("/health", headers=h).status_code == 401
    auth.forget()


# -- grants -------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"fields": ["name", "no_such_col"]}, "no_such_col"),
    ({"layer": "tp_open"}, "only conditional layers"),
    ({"layer": "tp_uncond"}, "only conditional layers"),
    ({"layer": "tp_secret"}, "not_shared"),
    ({"layer": "tp_nothing"}, "no layer named"),
    ({"dept": "gtzy"}, "owns"),
    ({"dept": "nobody"}, "unknown department"),
    ({"regions": ["999999"]}, "999999"),
    ({"regions": ["440703001"]}, "440703001"),  # a town code: no boundary polygon
    ({"purpose": "  "}, "purpose"),
    ({"valid_from": datetime(2026, 1, 2, tzinfo=UTC),
      "valid_to": datetime(2026, 1, 1, tzinfo=UTC)}, "after"),
], ids=["unknown-field", "open", "unconditional", "not-shared", "no-layer", "owner",
        "no-dept", "bad-region", "town-without-polygon", "no-purpose", "period"])
def test_grant_validation(conn, kwargs, needle):
    from layers.grants import GrantError, add_grant

    args = {"layer": "tp_cond", "dept": "hb", "purpose": "测试", "approved_by": "审批人"}
    args.update(kwargs)
    with pytest.raises(GrantError) as exc:
        add_grant(conn, **args)
    assert needle in str(exc.value) and bilingual(str(exc.value))


def _layer_row(conn, name):
    from layers.policy import LAYER_QUERY

    return conn.execute(LAYER_QUERY + "AND l.name = %s", (name,)).fetchone()


def test_policy_rule_with_grants(conn):
    from layers.grants import add_grant, live_grants, revoke_grant
    from layers.policy import access_for

    cond = _layer_row(conn, "tp_cond")
    hb = Caller("department", "hb", "hb-user")
    assert decide(hb, cond, live_grants(conn, "hb")) is None
    # a grant without a field list: every field, sensitive ones still masked
    g1 = add_grant(conn, layer="tp_cond", dept="hb", purpose="环境执法", approved_by="x")
    a = decide(hb, cond, live_grants(conn, "hb"))
    assert a.fields is None and a.masks == SENSITIVE and a.grant_id == g1
    assert a.purpose == "环境执法" and a.regions is None and a.audited
    # a newer grant naming a sensitive field: that field in clear, the newest grant wins
    g2 = add_grant(conn, layer="tp_cond", dept="hb", purpose="污染源核查", approved_by="x",
                   fields=["name", "phone"], regions=["440781"])
    a = decide(hb, cond, live_grants(conn, "hb"))
    assert a.grant_id == g2 and a.fields == ("name", "phone") and a.masks == {}
    assert a.regions == ("440781",)
    assert access_for(conn, hb, "tp_cond")[1] == a
    revoke_grant(conn, g2, "test")
    assert decide(hb, cond, live_grants(conn, "hb")).grant_id == g1
    revoke_grant(conn, g1, "test")
    assert decide(hb, cond, live_grants(conn, "hb")) is None
    # a grant that starts tomorrow is not live yet
    add_grant(conn, layer="tp_cond", dept="hb", purpose="未来", approved_by="x",
              valid_from=datetime.now(UTC) + timedelta(days=1))
    assert decide(hb, cond, live_grants(conn, "hb")) is None


def test_roles_admin_and_auditor_get_no_extra_data(conn):
    rows = {n: _layer_row(conn, n) for n in ("tp_open", "tp_uncond", "tp_cond", "tp_secret")}
    admin = Caller("admin", "wxtc", "bureau")
    as_dept = Caller("department", "wxtc", "bureau-dept")
    auditor = Caller("auditor", None, "auditor")
    anon = Caller()
    owner = Caller("department", "gtzy", "owner")
    for name, row in rows.items():
        assert decide(admin, row) == decide(as_dept, row), name
        assert decide(auditor, row) == decide(anon, row), name
        a = decide(owner, row)
        assert a is not None and a.fields is None and a.masks == {} and a.regions is None
    assert decide(admin, rows["tp_cond"]) is None and decide(admin, rows["tp_secret"]) is None
    assert decide(anon, rows["tp_open"]).masks == SENSITIVE
    assert decide(anon, rows["tp_uncond"]) is None
    # catalog entries: every department sees every entry, the public only open ones
    from layers.policy import listed

    assert all(listed(Caller("department", "hb", "h"), r) for r in rows.values())
    assert [n for n, r in rows.items() if listed(anon, r)] == ["tp_open"]
    assert [n for n, r in rows.items() if listed(auditor, r)] == ["tp_open"]
    assert set(FIELDS) >= set(SENSITIVE)


# -- audit log ----------------------------------------------------------------------

def test_audit_log_refuses_update_delete_truncate(conn, owner_database_url):
    """The app's role lacks the privilege; even the owner meets the append-only trigger."""
    from layers import audit

    audit.record(conn, action="test", caller=Caller("department", "hb", "t"), layer="tp_cond")
    with psycopg.connect(owner_database_url, autocommit=True) as owner:
        for stmt in ("UPDATE audit_log SET rows = 99", "DELETE FROM audit_log",
                     "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
            with pytest.raises(psycopg.Error, match="append-only"):
                owner.execute(stmt)


def test_audit_chain_verify_detects_edit_and_deletion(conn, owner_database_url):
    from layers import audit

    who = Caller("department", "gh", "tp-audit")
    ids = [audit.record(conn, action="ogc.items", caller=who, layer="tp_cond",
                        request={"path": f"/x/{i}", "query": "f=json"}, rows=i)
           for i in range(4)]
    assert audit.verify(conn) is None
    # tamper as the database owner, inside a transaction that is rolled back afterwards
    owner = psycopg.connect(owner_database_url, autocommit=True, row_factory=dict_row)
    for tamper, bad_id, reason in (
            (f"UPDATE audit_log SET rows = 1000 WHERE id = {ids[1]}", ids[1], "hash"),
            (f"UPDATE audit_log SET request = '{{}}' WHERE id = {ids[2]}", ids[2], "hash"),
            (f"DELETE FROM audit_log WHERE id = {ids[1]}", ids[2], "prev_hash")):
        with owner.transaction(force_rollback=True):
            owner.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete")
            owner.execute(tamper)
            broken = audit.verify(owner)
            assert broken is not None and broken["id"] == bad_id and broken["reason"] == reason
            assert bilingual(broken["message"])
    owner.close()
    assert audit.verify(conn) is None


def test_audit_show_filters(conn):
    from layers import audit

    since = datetime.now(UTC)
    audit.record(conn, action="ogc.item", caller=Caller("department", "jt", "j"),
                 layer="tp_uncond", rows=1)
    rows = audit.show(conn, dept="jt", layer="tp_uncond", since=since)
    assert len(rows) == 1 and rows[0]["rows"] == 1
    assert audit.show(conn, dept="jt", layer="tp_open", since=since) == []


def test_get_audit_for_auditor_only(conn, client):
    from layers.identity import create_key

    auditor = create_key(conn, "tp-auditor", role="auditor")["token"]
    admin = create_key(conn, "tp-admin", role="admin", dept="wxtc")["token"]
    dept = create_key(conn, "tp-dept", dept="gh")["token"]
    assert client.get("/audit").status_code == 401
    assert client.get("/audit", headers={"X-API-Key": dept}).status_code == 403
    assert client.get("/audit", headers={"X-API-Key": admin}).status_code == 403
    r = client.get("/audit", params={"dept": "gh", "limit": 5},
                   headers={"X-API-Key": auditor})
    assert r.status_code == 200
    assert all(e["dept_code"] == "gh" for e in r.json()["entries"])
    v = client.get("/audit/verify", headers={"X-API-Key": auditor}).json()
    assert v["intact"] is True


def test_data_access_through_ogc_is_audited(conn, client):
    from layers.identity import create_key

    token = create_key(conn, "tp-ogc-audit", dept="hb")["token"]
    mark = conn.execute("SELECT coalesce(max(id), 0) AS m FROM audit_log").fetchone()["m"]
    r = client.get("/ogc/collections/tp_uncond/items", params={"f": "json", "limit": 3},
                   headers={"X-API-Key": token})
    assert r.status_code == 200
    row = conn.execute("SELECT * FROM audit_log WHERE id > %s", (mark,)).fetchone()
    assert (row["caller"], row["dept_code"], row["layer"], row["rows"]) == (
        "tp-ogc-audit", "hb", "tp_uncond", 3)
    assert row["request"]["path"] == "/ogc/collections/tp_uncond/items"
    assert "limit=3" in row["request"]["query"]
    # open data is not audited
    mark = row["id"]
    client.get("/ogc/collections/tp_open/items", params={"f": "json"},
               headers={"X-API-Key": token})
    assert conn.execute("SELECT count(*) AS n FROM audit_log WHERE id > %s",
                        (mark,)).fetchone()["n"] == 0


# -- demo identities and the CLI ----------------------------------------------------

def test_demo_identities(conn, client, tmp_path):
    import jmgeo.auth as auth
    from layers.identity import DEMO_IDENTITIES, ensure_demo_identities

    path = tmp_path / "demo_keys.txt"
    first = ensure_demo_identities(conn, path=path, layer="tp_demo_parcels")
    n_keys = conn.execute("SELECT count(*) AS n FROM api_key").fetchone()["n"]
    again = ensure_demo_identities(conn, path=path, layer="tp_demo_parcels")
    assert first["keys"] == again["keys"] and set(first["keys"]) == set(DEMO_IDENTITIES)
    assert conn.execute("SELECT count(*) AS n FROM api_key").fetchone()["n"] == n_keys
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert "DEMO" in text and all(t in text for t in first["keys"].values())
    for name, (role, dept, _) in DEMO_IDENTITIES.items():
        c = auth.caller_for_token(first["keys"][name])
        assert (c.kind, c.dept_code) == (role, dept)
    # gh: live grant, 蓬江区 only, no 权利人; jy: expired
    gh = client.get("/ogc/collections/tp_demo_parcels/items", params={"f": "json"},
                    headers={"X-API-Key": first["keys"]["demo-gh"]})
    assert gh.status_code == 200
    feats = gh.json()["features"]
    assert feats and all(f["properties"]["county"] == "440703" for f in feats)
    assert all("qlr" not in f["properties"] for f in feats)
    jy = client.get("/ogc/collections/tp_demo_parcels/items", params={"f": "json"},
                    headers={"X-API-Key": first["keys"]["demo-jy"]})
    assert jy.status_code == 404


def test_cli(conn, capsys):
    from jmgeo.cli import main

    assert main(["dept", "add", "tpcli", "测试局", "91440700MA4UXXXX1X"]) == 2
    assert "check character" in capsys.readouterr().err
    assert main(["grant", "add", "tp_cond", "sw", "--purpose", "水资源调度",
                 "--approved-by", "网信统筹局", "--fields", "name,nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["grant", "add", "tp_cond", "sw", "--purpose", "水资源调度",
                 "--approved-by", "网信统筹局", "--fields", "name,area",
                 "--regions", "440703", "--to", "2099-12-31"]) == 0
    assert main(["grant", "list", "--dept", "sw"]) == 0
    out = capsys.readouterr().out
    assert "live" in out and "tp_cond" in out
    gid = conn.execute("SELECT max(id) AS id FROM layer_grant").fetchone()["id"]
    assert main(["grant", "revoke", str(gid)]) == 0
    assert main(["grant", "revoke", str(gid)]) == 2
    assert main(["key", "create", "tp-cli-client", "--dept", "sw", "--client"]) == 0
    token = capsys.readouterr().out.split(": ", 1)[1].split()[0]
    assert token.startswith("jmk_")
    assert main(["key", "revoke", token.split("_")[1]]) == 0
    assert main(["key", "list", "--dept", "sw"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["audit", "show", "--layer", "tp_cond", "--since", "2020-01-01"]) == 0
    assert "grant.add" in capsys.readouterr().out
    assert main(["audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().out


def test_audit_chain_stays_linear_under_concurrent_writers(database_url, conn):
    from concurrent.futures import ThreadPoolExecutor

    from layers import audit

    def write(i: int) -> None:
        with psycopg.connect(database_url, autocommit=True) as c:
            for j in range(5):
                audit.record(c, action="ogc.items", caller=Caller("department", "hb", f"t{i}"),
                             layer="tp_uncond", rows=j)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    assert audit.verify(conn) is None


def test_grant_expiry_and_revocation_take_effect_without_restart(conn, client):
    from layers.grants import add_grant, revoke_grant
    from layers.identity import create_key

    create_layer(conn, "tp_cond_live", "conditional")
    token = create_key(conn, "tp-live-grant", dept="rf")["token"]
    h = {"X-API-Key": token}
    url = "/ogc/collections/tp_cond_live/items?f=json"
    assert client.get(url, headers=h).status_code == 404
    g = add_grant(conn, layer="tp_cond_live", dept="rf", purpose="人防工程规划",
                  approved_by="x", valid_to=datetime.now(UTC) + timedelta(seconds=1.5))
    r = client.get(url, headers=h)
    assert r.status_code == 200 and r.json()["numberReturned"] == 4
    time.sleep(1.6)
    assert client.get(url, headers=h).status_code == 404  # expired: gone at once
    g = add_grant(conn, layer="tp_cond_live", dept="rf", purpose="人防工程规划", approved_by="x")
    assert client.get(url, headers=h).status_code == 200
    revoke_grant(conn, g, "test")
    assert client.get(url, headers=h).status_code == 404


def test_revoke_by_all_digit_prefix(conn):
    """A key prefix can be all digits (8 hex characters): revoking by it must work."""
    from layers.identity import create_key, revoke_key

    token = "jmk_12345678_" + "d" * 40
    key = create_key(conn, "tp-digits", dept="sw", token=token)
    row = revoke_key(conn, "12345678")
    assert row["id"] == key["id"] and row["prefix"] == "12345678"
