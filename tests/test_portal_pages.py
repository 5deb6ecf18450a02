"""The open portal's pages over HTTP (the real app, real PostGIS): search with facets,
dataset pages through the policy (a hidden dataset is the same 404 page as a missing
one), table previews with masks, region pages, the basemap, and the page weight."""

from __future__ import annotations

import gzip
import re

import pytest

pytest_plugins = ["portal_fixtures"]


@pytest.fixture(scope="module")
def client(app_client, portal_world):
    app_client.cookies.clear()
    return app_client


def test_root_redirects_to_the_portal(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/portal/"


def _titles(html: str) -> list[str]:
    return re.findall(r'<h3><a href="/portal/datasets/\d+">([^<]+)</a>', html)


def _public_titles(client, **params) -> set[str]:
    """What the catalog API lists for the anonymous: the portal may show no other entry
    (the session database holds other test modules' open layers too)."""
    api = client.get("/catalog/entries", params={"limit": 500, **params}).json()
    return {e["name"] for e in api["entries"]}


def test_home_lists_only_open_entries(client, portal_world):
    r = client.get("/portal/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert re.search(r'href="/portal/datasets/\d+"', html)
    for hidden in ("宗地（演示）", "人防工程（演示）", "道路（演示）", "企业名录（演示）"):
        assert hidden not in html


def test_search_in_chinese_with_facets(client, portal_world):
    r = client.get("/portal/datasets", params={"q": "河流"})
    assert r.status_code == 200
    assert f'/portal/datasets/{portal_world["rivers"]}"' in r.text
    assert "河流（演示）" in r.text
    # the theme facet offers 水利水务 with its count; choosing it keeps the query
    r = client.get("/portal/datasets", params={"category": "004"})
    names = _titles(r.text)
    assert "河流（演示）" in names and "水库（演示）" in names
    assert set(names) <= _public_titles(client, category="004")
    assert "宗地（演示）" not in names
    assert 'aria-current="true"' in r.text
    r = client.get("/portal/datasets", params={"kind": "table"})
    names = _titles(r.text)
    assert "策略测试表格 open" in names
    assert set(names) <= _public_titles(client, kind="table")
    assert "企业名录（演示）" not in names


def test_facets_are_the_catalog_api_s(client, portal_world):
    api = client.get("/catalog/entries", params={"q": "演示", "facets": "true"}).json()
    kinds = {f["value"]: f["count"] for f in api["facets"]["kind"]}
    assert kinds.get("vector", 0) >= 3 and "table" not in kinds  # anonymous: open only
    depts = {f["value"] for f in api["facets"]["dept"]}
    assert depts <= {"sw", "jt"}  # 水务局 and 交通运输局 open their layers


def test_dataset_page_shows_metadata_fields_versions_downloads(client, portal_world):
    r = client.get(f"/portal/datasets/{portal_world['reservoirs']}")
    assert r.status_code == 200
    html = r.text
    for text in ("信息资源代码", "水务局", "可社会公开", "每年", "版本历史", "质量概况",
                 'data-style="/ogc/collections/reservoirs/styles/default"'):
        assert text in html, text
    for fmt in ("gpkg", "shp", "shp-gbk", "geojson", "csv", "csv-gbk", "xlsx"):
        assert f'href="/downloads/reservoirs?format={fmt}"' in html
    assert "/ogc/collections/reservoirs/tiles/WebMercatorQuad/tilejson.json" in html


def test_hidden_dataset_is_the_same_404_as_a_missing_one(client, portal_world):
    hidden = client.get(f"/portal/datasets/{portal_world['tpol_conditional']}")
    missing = client.get("/portal/datasets/2000000000")
    junk = client.get("/portal/datasets/abc")
    assert hidden.status_code == missing.status_code == junk.status_code == 404
    # identical but for the page's own address (in its language-toggle link)
    hid = portal_world["tpol_conditional"]
    assert (hidden.text.replace(f"/datasets/{hid}?", "/datasets/X?")
            == missing.text.replace("/datasets/2000000000?", "/datasets/X?")
            == junk.text.replace("/datasets/abc?", "/datasets/X?"))
    assert "页面不存在" in hidden.text


def test_table_preview_masks_sensitive_fields(client, portal_world):
    r = client.get(f"/portal/datasets/{portal_world['tpol_tab_open']}")
    assert r.status_code == 200
    assert 'id="preview"' in r.text and "北街地块" in r.text
    assert "13812341234" not in r.text and "440703199001011234" not in r.text
    assert "脱敏" in r.text
    # a table has only the flat formats
    assert "format=csv" in r.text and "format=gpkg" not in r.text


def test_region_page_counts_open_layers(client, portal_world):
    r = client.get("/portal/regions/440781")
    assert r.status_code == 200
    assert "台山市" in r.text and 'id="region-layers"' in r.text
    assert "策略测试 open" in r.text  # two of its points lie in 台山市
    assert "策略测试 conditional" not in r.text
    assert client.get("/portal/regions/999999").status_code == 404


def test_english_toggle_is_kept_in_a_cookie(client):
    r = client.get("/portal/datasets", params={"lang": "en"})
    assert '<html lang="en">' in r.text and "jmgeo_lang=en" in r.headers["set-cookie"]
    r = client.get("/portal/datasets")
    assert '<html lang="en">' in r.text
    client.cookies.clear()


def test_framework_basemap_style(client):
    style = client.get("/portal/basemap.json").json()
    assert style["version"] == 8
    assert style["sources"]["regions"]["url"].endswith(
        "/ogc/collections/regions/tiles/WebMercatorQuad/tilejson.json")
    assert any(layer["type"] == "symbol" for layer in style["layers"])


def test_configured_basemap_and_its_attribution(client, monkeypatch, fresh_settings):
    monkeypatch.setenv("JMGEO_PORTAL_BASEMAP_STYLE", "/basemap/style.json")
    monkeypatch.setenv("JMGEO_PORTAL_BASEMAP_ATTRIBUTION", "审图号：粤S(2024)001号")
    fresh_settings()
    html = client.get("/portal/regions/440703").text
    assert 'data-basemap="/basemap/style.json"' in html
    assert 'data-attribution="审图号：粤S(2024)001号"' in html


@pytest.mark.parametrize("path", ["/portal/", "/portal/datasets?q=河流",
                                  "/portal/regions/440703"])
def test_pages_are_small_and_compressed(client, portal_world, path):
    """First page under 200 KB before the map: the HTML gzipped plus the portal's CSS."""
    r = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    css = client.get("/static/portal/portal.css")
    html_bytes = len(gzip.compress(r.content))
    assert html_bytes + len(css.content) < 200_000


def test_an_overdue_demo_resource_shows_the_overdue_badge(client, portal_world, database_url,
                                                          server_clock_on_another_day):
    """The dataset page's badge is supervision's ladder (``supervision.freshness``): the
    demo's rivers, last published on a day that leaves their update overdue today, are
    shown as overdue — with the missed deadline — in Chinese and in English."""
    import datetime as dt

    import psycopg

    from exchange import clock
    from supervision import freshness as sf

    today = clock.local_date(dt.datetime.now(clock.CHINA))
    with psycopg.connect(database_url, autocommit=True) as conn:
        cycle = next(r["cycle"] for r in sf.resources(conn) if r["name"] == "rivers")
        rule = sf.load_rules(conn)[cycle]
        # the latest publish day that leaves the rivers overdue (not yet delinquent) today
        # by at least one working day (on a weekend or a holiday the deadline just missed
        # is overdue by 0 working days)
        day = next(today - dt.timedelta(days=n) for n in range(1, 800)
                   if (st := sf.state([today - dt.timedelta(days=n)], rule, today))["state"]
                   == "overdue" and st["late_days"] >= 1)
        expected = sf.state([day], rule, today)
        at = dt.datetime.combine(day, dt.time(9), clock.CHINA)
        saved = conn.execute(
            "SELECT v.version, v.loaded_at FROM layer_version v JOIN layer l ON l.id = "
            "v.layer_id WHERE l.name = 'rivers'").fetchall()
        steps = conn.execute(
            "SELECT s.id, s.at FROM layer_step s JOIN layer l ON l.id = s.layer_id WHERE "
            "l.name = 'rivers' AND s.kind = 'publish'").fetchall()
        try:
            conn.execute("UPDATE layer_version SET loaded_at = %s WHERE layer_id = (SELECT id "
                         "FROM layer WHERE name = 'rivers')", (at,))
            conn.execute("UPDATE layer_step SET at = %s WHERE kind = 'publish' AND layer_id = "
                         "(SELECT id FROM layer WHERE name = 'rivers')", (at,))
            url = f"/portal/datasets/{portal_world['rivers']}"
            zh = re.search(r'<span class="badge (\w+)" id="freshness">([^<]+)</span>',
                           client.get(url, params={"lang": "zh"}).text)
            en = re.search(r'<span class="badge (\w+)" id="freshness">([^<]+)</span>',
                           client.get(url, params={"lang": "en"}).text)
        finally:
            for version, loaded in saved:
                conn.execute("UPDATE layer_version SET loaded_at = %s WHERE version = %s AND "
                             "layer_id = (SELECT id FROM layer WHERE name = 'rivers')",
                             (loaded, version))
            for sid, when in steps:
                conn.execute("UPDATE layer_step SET at = %s WHERE id = %s", (when, sid))
    client.cookies.clear()
    assert zh and en, "no freshness badge on the dataset page"
    assert zh.group(1) == en.group(1) == "late"
    deadline = expected["deadline"].isoformat()
    assert zh.group(2) == (f"逾期未更新 · 应于 {deadline} 前更新，已逾期 "
                           f"{expected['late_days']} 个工作日")
    assert en.group(2) == f"overdue · was due {deadline}: {expected['late_days']} working days late"
    assert expected["late_days"] >= 1


def test_a_region_grant_sees_no_whole_layer_figures(client, portal_world, database_url):
    """A region-limited grantee's dataset page shows no version's feature count and no
    data box: both are of the whole layer, and would say what lies outside the grant."""
    from policy_fixtures import build_world

    callers = build_world(database_url)
    page = f"/portal/datasets/{portal_world['tpol_conditional']}"
    rows = r'<tr><td>\d+[^<]*(?:<span[^>]*>[^<]*</span>)?</td><td>[^<]*</td><td>([^<]*)</td>'
    owner = client.get(page, headers={"X-API-Key": callers["owner"].token})
    assert owner.status_code == 200 and any(c.strip() for c in re.findall(rows, owner.text))
    grantee = client.get(page, headers={"X-API-Key": callers["limited_grant"].token})
    assert grantee.status_code == 200
    counts = re.findall(rows, grantee.text)
    assert counts and not any(c.strip() for c in counts)
    assert "data-bounds=" not in grantee.text
