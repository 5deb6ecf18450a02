"""OGC API - Records of the catalog under the policy: the provider directly, then through
pygeoapi's per-audience API on the real app (/ogc), then a standard client (OWSLib)."""

from __future__ import annotations

import psycopg
import pytest

from catalog import excel, samples
from jmgeo.ogc.compat import ProviderInvalidQueryError, ProviderItemNotFoundError
from jmgeo.ogc.records import CatalogRecordsProvider, records_resource
from layers.departments import ensure_departments
from layers.policy import ANONYMOUS, Caller

BUREAU = Caller(kind="admin", name="bureau")
JT = Caller(kind="department", dept_code="jt", name="jt")


@pytest.fixture(scope="module")
def imported(database_url, tmp_path_factory):
    path = samples.write_sample(tmp_path_factory.mktemp("rec") / "s.xlsx")
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn)
        excel.import_survey(conn, path, BUREAU, status="published")
    return database_url


def provider(caller: Caller) -> CatalogRecordsProvider:
    return CatalogRecordsProvider(records_resource(caller)["providers"][0])


def test_resource_carries_the_audience():
    """The provider definition carries the caller's role and department (what the
    policy's catalog filter reads) — no name or key, so callers alike share it."""
    assert records_resource(ANONYMOUS)["providers"][0]["jmgeo"] == \
        {"caller": {"kind": "anonymous", "dept_code": None}}
    assert records_resource(Caller(kind="auditor", name="aud"))["providers"][0]["jmgeo"] == \
        {"caller": {"kind": "auditor", "dept_code": None}}
    assert records_resource(JT)["providers"][0]["jmgeo"] == \
        {"caller": {"kind": "department", "dept_code": "jt"}}
    assert records_resource(Caller(kind="department", dept_code="jt", name="other key")) \
        == records_resource(JT)


def test_provider_filters_with_the_callers_own_policy_filter(imported):
    """Records are the published entries among those the policy lets *this* caller list:
    an auditor (who supervises the catalog) sees every published entry, as the bureau."""
    from layers import policy

    with psycopg.connect(imported, autocommit=True,
                         row_factory=psycopg.rows.dict_row) as conn:
        from catalog import store

        for caller in (ANONYMOUS, JT, BUREAU, Caller(kind="auditor", name="aud")):
            rows, _ = store.list_entries(conn, caller, filters={"status": "published"},
                                         limit=1000)
            want = {r["code"].replace("/", "-") for r in rows}
            fc = provider(caller).query(limit=1000)
            assert {f["id"] for f in fc["features"]} == want, caller
            assert fc["numberMatched"] == len(want)
            for r in rows:
                assert policy.entry_listed(caller, status=r["status"],
                                           owner_code=r["provider_code"],
                                           sharing_class=r["sharing_class"])
    auditor = provider(Caller(kind="auditor", name="aud"))
    assert auditor.get("301001-000001")["properties"]["sharing_type"] == "有条件共享"


def test_provider_public_sees_open_entries_only(imported):
    p = provider(ANONYMOUS)
    fc = p.query(limit=100)
    assert fc["numberMatched"] == len(fc["features"]) > 0
    assert {f["properties"]["sharing_class"] for f in fc["features"]} == {"open"}
    assert "道路中心线" in {f["properties"]["title"] for f in fc["features"]}
    rec = p.get("10303101-000001")
    assert rec["properties"]["rights"].startswith("可社会公开")
    assert rec["properties"]["themes"][0]["concepts"][0]["id"] == "10303101"
    with pytest.raises(ProviderItemNotFoundError):
        p.get("301001-000001")  # conditional: absent for the public, as if never existed
    with pytest.raises(ProviderItemNotFoundError):
        p.get("999999-000001")
    assert p.query(q="不动产")["numberMatched"] == 0


def test_provider_departments_see_every_published_entry(imported):
    p = provider(JT)
    fc = p.query(limit=100, q="道路")
    titles = [f["properties"]["title"] for f in fc["features"]]
    assert titles[0] == "道路中心线" and "道路运输经营许可证" in titles
    rec = p.get("103041-000001")  # not shared: the entry and its legal basis, no data
    assert "人民防空法" in rec["properties"]["rights"]
    assert rec["links"] == []
    fc = p.query(properties=[("sharing_type", "有条件共享"), ("provider", "江门市水务局")])
    assert [f["properties"]["title"] for f in fc["features"]] == ["城市供水管网"]
    assert p.query(resulttype="hits", properties=[("format", "矢量")])["features"] == []
    fc = p.query(sortby=[{"property": "title", "order": "-"}], limit=3)
    assert len(fc["features"]) == 3
    fc = p.query(datetime_="2024-04-01/2024-04-30")
    assert [f["properties"]["title"] for f in fc["features"]] == ["道路中心线"]
    with pytest.raises(ProviderInvalidQueryError):
        p.query(sortby=[{"property": "sharing_condition", "order": "+"}])


@pytest.fixture
def ogc_with_catalog(app_client, imported):
    """The real app: jmgeo.ogc.config puts the catalog in every audience."""
    return app_client


def _dept_key(database_url: str, dept: str) -> dict[str, str]:
    from layers.identity import create_key

    with psycopg.connect(database_url, autocommit=True,
                         row_factory=psycopg.rows.dict_row) as conn:
        token = create_key(conn, f"records-test-{dept}", dept=dept)["token"]
    return {"X-API-Key": token}


def test_records_through_pygeoapi_under_the_policy(ogc_with_catalog, database_url):
    client = ogc_with_catalog
    r = client.get("/ogc/collections/catalog?f=json")
    assert r.status_code == 200, r.text
    assert r.json()["itemType"] == "record"
    r = client.get("/ogc/collections/catalog/items", params={"q": "道路", "f": "json"})
    assert r.status_code == 200, r.text
    titles = [f["properties"]["title"] for f in r.json()["features"]]
    assert titles == ["道路中心线"]  # the public: open entries only
    assert client.get("/ogc/collections/catalog/items/301001-000001?f=json").status_code \
        == 404
    key = _dept_key(database_url, "jt")
    r = client.get("/ogc/collections/catalog/items", params={"q": "道路", "f": "json"},
                   headers=key)
    titles = [f["properties"]["title"] for f in r.json()["features"]]
    assert titles[0] == "道路中心线" and "道路运输经营许可证" in titles
    r = client.get("/ogc/collections/catalog/items/301001-000001?f=json", headers=key)
    assert r.status_code == 200 and r.json()["properties"]["sharing_type"] == "有条件共享"
    r = client.get("/ogc/collections/catalog/queryables?f=json", headers=key)
    assert r.status_code == 200 and "sharing_type" in r.json()["properties"]
    r = client.get("/ogc/collections/catalog/items",
                   params={"sharing_type": "不予共享", "f": "json"}, headers=key)
    assert {f["properties"]["title"] for f in r.json()["features"]} >= {"人防工程分布"}


def test_owslib_records_client(live_server, imported):
    from owslib.ogcapi.records import Records

    w = Records(live_server + "/ogc")
    assert "catalog" in w.records()
    res = w.collection_items("catalog", q="道路")
    assert res["features"][0]["properties"]["title"] == "道路中心线"
    assert {f["properties"]["sharing_class"] for f in res["features"]} == {"open"}


def test_owslib_records_client_in_process(ogc_with_catalog, monkeypatch, database_url):
    """OWSLib (a standard OGC API client) searching the catalog, routed in-process to the
    real app — public and department audiences."""
    import owslib.ogcapi as ogcapi
    from owslib.ogcapi.records import Records

    client = ogc_with_catalog

    def http_get(url, headers=None, auth=None, params=None, **kw):
        return client.get(url, headers=headers or {}, params=params or {})

    monkeypatch.setattr(ogcapi, "http_get", http_get)
    public = Records("http://testserver/ogc")
    assert "catalog" in public.records()
    res = public.collection_items("catalog", q="道路")
    assert [f["properties"]["title"] for f in res["features"]] == ["道路中心线"]
    dept = Records("http://testserver/ogc", headers=_dept_key(database_url, "sw"))
    res = dept.collection_items("catalog", q="道路", limit=50)
    titles = [f["properties"]["title"] for f in res["features"]]
    assert titles[0] == "道路中心线" and "道路运输经营许可证" in titles
    rec = dept.collection_item("catalog", "301001-000001")
    assert rec["properties"]["sharing_type"] == "有条件共享" and rec["links"]
    assert not any(lk.get("rel") == "item" for lk in rec["links"])  # no data link
