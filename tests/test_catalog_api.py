"""The catalog API: lifecycle by role, visibility, filters, errors, upload, DCAT.

Exercised through the real app with real API keys (one per role / department).
"""

from __future__ import annotations

import hashlib

import psycopg
import pytest

from catalog import samples
from layers.departments import ensure_departments
from layers.identity import create_key


def _token(who: str) -> str:
    return f"jmk_{hashlib.md5(who.encode()).hexdigest()[:8]}_catalog-api-test-{'x' * 24}"


# caller → (principal, role, department) of the key the tests send
PRINCIPALS = {"department:gtzy": ("tc-gtzy", "department", "gtzy"),
              "department:sw": ("tc-sw", "department", "sw"),
              "department:jt": ("tc-jt", "department", "jt"),
              "admin:": ("tc-admin", "admin", "wxtc")}


@pytest.fixture(scope="module")
def client(database_url, app_client):
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn)
        for who, (name, role, dept) in PRINCIPALS.items():
            if not conn.execute("SELECT 1 FROM principal WHERE name = %s", (name,)).fetchone():
                create_key(conn, name, role=role, dept=dept, token=_token(who))
    return app_client


def as_(who: str) -> dict[str, str]:
    """Headers for a caller: "" is anonymous, else a key of PRINCIPALS."""
    return {"X-API-Key": _token(who)} if who else {}


GTZY, SW, JT, ADMIN = as_("department:gtzy"), as_("department:sw"), as_("department:jt"), \
    as_("admin:")

ENTRY = {
    "class_code": "3", "item_code": "01", "item_name": "江门市国土资源局",
    "category_code": "002", "category_name": "土地供应", "name": "土地供应计划（接口测试）",
    "abstract": "年度国有建设用地供应计划及执行情况。", "format": "电子表格",
    "sharing_type": "有条件共享", "sharing_condition": "用于用地审批", "sharing_method":
    "共享平台（接口）", "is_open": "否", "update_cycle": "每年",
    "items": [{"name": "地块编号", "data_type": "C", "length": 20},
              {"name": "供应面积", "data_type": "数值型", "length": "12,2"},
              {"name": "供应方式道路", "data_type": "C", "length": 10}],
}


def test_lifecycle_by_role(client):
    r = client.post("/catalog/entries", json=ENTRY, headers=GTZY)
    assert r.status_code == 201, r.text
    e = r.json()
    eid = e["id"]
    assert e["status"]["key"] == "draft" and e["code"].startswith("301002/")
    assert e["format"] == {"key": "spreadsheet", "label": "电子表格"}
    assert e["items"][1]["data_type"] == "N" and e["items"][1]["length"] == "12,2"
    assert e["provider"]["code"] == "gtzy"
    for who in (as_(""), SW):
        assert client.get(f"/catalog/entries/{eid}", headers=who).status_code == 404
        assert client.get("/catalog/entries/999999", headers=who).status_code == 404
    assert client.patch(f"/catalog/entries/{eid}", json={"abstract": "x"},
                        headers=SW).status_code == 404
    r = client.patch(f"/catalog/entries/{eid}", json={"abstract": "年度供地计划及执行。"},
                     headers=GTZY)
    assert r.status_code == 200 and r.json()["outcome"] == "updated"
    assert client.post(f"/catalog/entries/{eid}/submit", headers=GTZY).json()["status"][
        "key"] == "submitted"
    assert client.patch(f"/catalog/entries/{eid}", json={"abstract": "y"},
                        headers=GTZY).status_code == 409
    assert client.post(f"/catalog/entries/{eid}/review", json={"decision": "approve"},
                       headers=GTZY).status_code == 403
    r = client.post(f"/catalog/entries/{eid}/review", json={"decision": "return"},
                    headers=ADMIN)
    assert r.status_code == 400 and "理由" in r.json()["description"]
    r = client.post(f"/catalog/entries/{eid}/review",
                    json={"decision": "return", "reasons": "请补充信息项的数据长度说明"},
                    headers=ADMIN)
    assert r.json()["status"]["key"] == "draft"
    assert r.json()["review"]["comment"] == "请补充信息项的数据长度说明"
    client.post(f"/catalog/entries/{eid}/submit", headers=GTZY)
    assert client.post(f"/catalog/entries/{eid}/publish", headers=ADMIN).status_code == 409
    client.post(f"/catalog/entries/{eid}/review", json={"decision": "approve"}, headers=ADMIN)
    r = client.post(f"/catalog/entries/{eid}/publish", headers=ADMIN)
    assert r.json()["status"]["key"] == "published" and r.json()["publish_date"]
    # every department sees a published entry's metadata; the public only open ones
    r = client.get(f"/catalog/entries/{eid}", headers=SW)
    assert r.status_code == 200 and "review" not in r.json()
    assert client.get(f"/catalog/entries/{eid}", headers=as_("")).status_code == 404
    h = client.get(f"/catalog/entries/{eid}/history", headers=GTZY).json()["history"]
    assert [x["action"] for x in h] == ["create", "edit", "submit", "return", "submit",
                                        "approve", "publish"]
    assert {x["actor"] for x in h} == {"tc-gtzy", "tc-admin"}  # the principals behind the keys
    assert client.get(f"/catalog/entries/{eid}/history", headers=SW).status_code == 404


def test_validation_errors_name_every_field(client):
    bad = dict(ENTRY, name="坏条目", sharing_condition=None, format="矢量图",
               items=[{"name": "a", "data_type": "Q"}])
    r = client.post("/catalog/entries", json=bad, headers=GTZY)
    assert r.status_code == 400
    fields = {(e["field"], e.get("item")) for e in r.json()["errors"]}
    assert {("sharing_condition", None), ("format", None), ("data_type", 0)} <= fields
    r = client.post("/catalog/entries", json=dict(ENTRY, provider_code="sw"), headers=GTZY)
    assert r.status_code == 403
    assert client.post("/catalog/entries", json=ENTRY, headers=as_("")).status_code == 403
    assert client.post("/catalog/entries", json=dict(ENTRY, bogus=1),
                       headers=GTZY).status_code == 422


def test_filters_search_and_public_view(client, tmp_path):
    path = samples.write_sample(tmp_path / "s.xlsx")
    with open(path, "rb") as fh:
        assert client.post("/catalog/import", files={"sheet": ("s.xlsx", fh.read())},
                           headers=GTZY).status_code == 403
    with open(path, "rb") as fh:
        r = client.post("/catalog/import?publish=true", files={"sheet": ("s.xlsx", fh.read())},
                        headers=ADMIN)
    assert r.status_code == 200, r.text
    assert sum(r.json()["counts"].values()) == 11
    pub = client.get("/catalog/entries?limit=100", headers=as_("")).json()
    names = {e["name"] for e in pub["entries"]}
    assert names >= {"道路中心线", "地质灾害隐患点", "江门市水资源公报"}
    assert all(e["sharing_class"] == "open" for e in pub["entries"])
    dept = client.get("/catalog/entries?limit=100", headers=JT).json()
    assert {"不动产登记信息", "人防工程分布"} <= {e["name"] for e in dept["entries"]}
    r = client.get("/catalog/entries", params={"sharing_type": "不予共享", "dept": "rf"},
                   headers=JT).json()
    assert [e["name"] for e in r["entries"]] == ["人防工程分布"]
    r = client.get("/catalog/entries", params={"format": "矢量", "dept": "sw"},
                   headers=JT).json()
    got = {e["name"] for e in r["entries"]}
    assert {"河道管理范围线", "城市供水管网"} <= got and "江门市水资源公报" not in got
    assert all(e["format"]["key"] == "vector" and e["provider"]["code"] == "sw"
               for e in r["entries"])
    r = client.get("/catalog/entries", params={"update_cycle": "实时", "class": "2"},
                   headers=JT).json()
    assert [e["name"] for e in r["entries"]] == ["公交车辆实时到站信息"]
    r = client.get("/catalog/entries", params={"q": "道路"}, headers=JT).json()
    got = [e["name"] for e in r["entries"]]
    assert got[0] == "道路中心线" and "道路运输经营许可证" in got
    assert "土地供应计划（接口测试）" in got  # only an item mentions 道路
    assert got.index("道路运输经营许可证") < got.index("土地供应计划（接口测试）")
    r = client.get("/catalog/entries", params={"q": "道路"}, headers=as_("")).json()
    assert [e["name"] for e in r["entries"]] == ["道路中心线"]
    doc = client.get("/catalog/dcat", headers=as_("")).json()
    assert {d["dct:accessRights"]["@id"] for d in doc["dcat:dataset"]} == {"jm:open"}
    v = client.get("/catalog/vocabularies").json()
    assert v["sharing_type"]["values"]["conditional"] == "有条件共享"


def test_hostile_input_is_a_client_error(client):
    assert client.get("/catalog/entries/99999999999", headers=JT).status_code == 422
    assert client.get("/catalog/entries/0", headers=JT).status_code == 422
    r = client.post("/catalog/entries", json=dict(ENTRY, name="控制\x00字符\x07测试"),
                    headers=GTZY)
    assert r.status_code == 201 and r.json()["name"] == "控制字符测试"
    for q in ("'", "\\", "%_", "a:*&|!", "（）", "x" * 200, "道" * 200, "道路' & '人口"):
        r = client.get("/catalog/entries", params={"q": q}, headers=JT)
        assert r.status_code == 200, (q, r.text)
    assert client.get("/catalog/entries", params={"q": "x" * 201}).status_code == 422
    r = client.get("/catalog/entries", params={"sort": "bogus", "limit": 5}, headers=JT)
    assert r.status_code == 200
    assert client.get("/catalog/entries", params={"limit": 0}).status_code == 422


def test_mounted_in_the_platform_app(app_client, database_url):
    """``jmgeo.catalog_api.router`` is mounted in jmgeo.app: real authentication decides."""
    assert app_client.get("/catalog/vocabularies").status_code == 200
    from layers.identity import create_key

    with psycopg.connect(database_url, autocommit=True,
                         row_factory=psycopg.rows.dict_row) as conn:
        key = {"X-API-Key": create_key(conn, "catalog-app-jt", dept="jt")["token"]}
    anon = app_client.get("/catalog/entries", params={"limit": 200}).json()
    assert all(e["sharing_class"] == "open" for e in anon["entries"])
    dept = app_client.get("/catalog/entries", params={"limit": 200}, headers=key).json()
    assert dept["numberMatched"] >= anon["numberMatched"]
    r = app_client.post("/catalog/entries", json=dict(ENTRY, name="应用内创建"), headers=key)
    assert r.status_code == 201 and r.json()["provider"]["code"] == "jt"
    assert app_client.get(f"/catalog/entries/{r.json()['id']}").status_code == 404
