"""A table resource served like a layer (issue 9 §1): a conditional enterprise table
(企业名录, key 统一社会信用代码 ``uscc``) under /ogc and /downloads, through the policy.

Callers: the owner (gtzy); gh with a grant naming its fields (法定代表人 ``fddbr`` left
out, 联系电话 ``lxdh`` named → clear); jt with a grant for every field (sensitive fields
masked); hb with a grant limited to a region (a table's rows lie in no region: no rows);
jy without a grant (the table does not exist for it).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import openpyxl
import psycopg
import pytest

from layers.access_sql import item_id_field
from layers.policy import Access

TABLE = "tsv_enterprise"
NONEXISTENT = "tsv_never_existed"
OWNER = "gtzy"
COLUMNS = ["uscc", "qymc", "fddbr", "lxdh", "zczb", "clrq", "hy"]
SENSITIVE = {"fddbr": "person_name", "lxdh": "phone"}
GH_FIELDS = ["uscc", "qymc", "lxdh", "zczb", "hy"]
INDUSTRIES = ["制造业", "批发和零售业", "建筑业"]


def _uscc(i: int) -> str:
    return f"91440700MA{i:07d}X"[:18]


ROWS = [{"fid": i + 1, "uscc": _uscc(i), "qymc": f"江门市第{i}号实业有限公司",
         "fddbr": ["陈大明", "李小红", "欧阳志强"][i % 3], "lxdh": f"1381234{i:04d}",
         "zczb": round(50 + i * 17.5, 2), "clrq": date(2010 + i % 10, 1 + i % 12, 1),
         "hy": INDUSTRIES[i % 3]} for i in range(23)]
BY_KEY = {r["uscc"]: r for r in ROWS}


@pytest.fixture(scope="module")
def world(database_url):
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.grants import add_grant
    from layers.identity import DEMO_EXTRA_DEPARTMENTS, create_key
    from layers.registry import Column, create_data_table, index_key, publish

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
        with conn.transaction():
            cols = [Column("uscc", "text", "统一社会信用代码"), Column("qymc", "text", "企业名称"),
                    Column("fddbr", "text", "法定代表人"), Column("lxdh", "text", "联系电话"),
                    Column("zczb", "double precision", "注册资本（万元）"),
                    Column("clrq", "date", "成立日期"), Column("hy", "text", "行业")]
            table = create_data_table(conn, TABLE, 1, None, cols, title="企业名录")
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {table} (fid, {', '.join(COLUMNS)}) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s)",
                    [(r["fid"], *[r[c] for c in COLUMNS]) for r in ROWS])
            index_key(conn, table, "uscc")
            publish(conn, layer=TABLE, version=1, table_name=table, feature_count=len(ROWS),
                    report={}, title="企业名录（测试）", dept=OWNER, theme="land",
                    sharing_class="conditional", kind="table", geometry_type=None,
                    key_field="uscc", sensitive_fields=SENSITIVE,
                    field_labels={"uscc": "统一社会信用代码", "qymc": "企业名称"})
        add_grant(conn, layer=TABLE, dept="gh", purpose="企业信用核查", approved_by="测试",
                  fields=GH_FIELDS)
        add_grant(conn, layer=TABLE, dept="jt", purpose="运输企业核对", approved_by="测试")
        # `jmgeo grant add` refuses a region scope on a table (it has no geometry); a row
        # written by other means (an older release, a hand edit) must still fail closed
        conn.execute(
            "INSERT INTO layer_grant (layer_id, dept_id, purpose, regions, approved_by) "
            "SELECT l.id, d.id, '环保执法', ARRAY['440703'], '测试' FROM layer l, department d "
            "WHERE l.name = %s AND d.code = 'hb'", (TABLE,))
        stamp = datetime.now(UTC).timestamp()
        keys = {d: create_key(conn, f"tsv-{d}-{stamp}", dept=d)["token"]
                for d in ("gh", "jt", "hb", "jy", OWNER)}
    return keys


def headers(world, who: str) -> dict:
    return {"X-API-Key": world[who]}


def items(client, world, who, **params):
    params.setdefault("f", "json")
    params.setdefault("limit", 100)
    return client.get(f"/ogc/collections/{TABLE}/items", params=params,
                      headers=headers(world, who))


def test_collection_says_it_is_a_table(app_client, world):
    r = app_client.get(f"/ogc/collections/{TABLE}", params={"f": "json"},
                       headers=headers(world, "gh"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert "table" in body["keywords"] and "表格" in body["keywords"]
    assert not any("/tiles" in link["href"] for link in body["links"])
    assert "spatial" not in (body.get("extent") or {})  # no geometry, no spatial extent
    listed = app_client.get("/ogc/collections", params={"f": "json"},
                            headers=headers(world, "gh")).json()["collections"]
    by_id = {c["id"]: c for c in listed}
    assert "spatial" not in (by_id[TABLE].get("extent") or {})
    assert "spatial" in by_id["regions"]["extent"]  # layers keep theirs
    q = app_client.get(f"/ogc/collections/{TABLE}/queryables", params={"f": "json"},
                       headers=headers(world, "gh")).json()["properties"]
    assert set(q) == set(GH_FIELDS)  # no geometry, no fddbr, no fid, no region
    oas = app_client.get("/ogc/openapi", params={"f": "json"},
                         headers=headers(world, "gh")).json()
    params = {p.get("name") or p["$ref"].rsplit("/", 1)[-1]
              for p in oas["paths"][f"/collections/{TABLE}/items"]["get"]["parameters"]}
    assert "cursor" in params and "limit" in params
    assert not params & {"region", "bbox", "bbox-crs", "crs"}


def test_items_limited_and_keyed_by_the_key(app_client, world):
    r = items(app_client, world, "gh")
    assert r.status_code == 200, r.text
    feats = r.json()["features"]
    assert {f["id"] for f in feats} == set(BY_KEY)
    for f in feats:
        assert f["geometry"] is None
        src = BY_KEY[f["id"]]
        assert set(f["properties"]) == set(GH_FIELDS)
        assert f["properties"]["lxdh"] == src["lxdh"]  # the grant names it: clear
        assert f["properties"]["zczb"] == src["zczb"]
    assert r.headers["cache-control"].startswith("private")


def test_grant_for_every_field_masks_sensitive_ones(app_client, world):
    feats = items(app_client, world, "jt").json()["features"]
    assert len(feats) == len(ROWS)
    for f in feats:
        src = BY_KEY[f["id"]]
        assert set(f["properties"]) == set(COLUMNS)
        assert f["properties"]["fddbr"] != src["fddbr"] and "*" in f["properties"]["fddbr"]
        assert f["properties"]["lxdh"] == src["lxdh"][:3] + "****" + src["lxdh"][-4:]
    owner = items(app_client, world, OWNER).json()["features"]
    assert {f["properties"]["fddbr"] for f in owner} == {r["fddbr"] for r in ROWS}


def test_cql2_filter_and_sortby(app_client, world):
    r = items(app_client, world, "gh", filter="hy = '制造业' AND zczb > 100", sortby="-zczb")
    assert r.status_code == 200, r.text
    got = [f["id"] for f in r.json()["features"]]
    want = [x["uscc"] for x in sorted(ROWS, key=lambda x: -x["zczb"])
            if x["hy"] == "制造业" and x["zczb"] > 100]
    assert got == want and want
    # CQL2 JSON in a POST body
    body = {"op": "like", "args": [{"property": "qymc"}, "%第1%"]}
    r = app_client.post(f"/ogc/collections/{TABLE}/items", params={"f": "json", "limit": 100},
                        content=__import__("json").dumps(body),
                        headers={**headers(world, "gh"), "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert {f["id"] for f in r.json()["features"]} == \
        {x["uscc"] for x in ROWS if "第1" in x["qymc"]}


def test_keyset_paging_across_pages(app_client, world):
    seen: list[str] = []
    r = items(app_client, world, "gh", limit=5, sortby="hy")
    pages = 0
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [f["id"] for f in body["features"]]
        pages += 1
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        if not nxt:
            break
        assert "cursor=" in nxt[0]
        r = app_client.get(nxt[0], headers=headers(world, "gh"))
    assert pages == 5 and len(seen) == len(set(seen)) == len(ROWS)
    assert [BY_KEY[k]["hy"] for k in seen] == sorted(BY_KEY[k]["hy"] for k in seen)


def test_properties_select_and_item_by_key(app_client, world):
    r = items(app_client, world, "gh", properties="qymc")
    assert r.status_code == 200, r.text
    assert all(set(f["properties"]) == {"qymc"} for f in r.json()["features"])
    key = ROWS[3]["uscc"]
    r = app_client.get(f"/ogc/collections/{TABLE}/items/{key}", params={"f": "json"},
                       headers=headers(world, "gh"))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == key and r.json()["geometry"] is None
    assert r.json()["properties"]["qymc"] == ROWS[3]["qymc"]
    assert app_client.get(f"/ogc/collections/{TABLE}/items/91440700XXXXXXXXXX",
                          params={"f": "json"}, headers=headers(world, "gh")).status_code == 404


@pytest.mark.parametrize("param", ["filter", "sortby", "properties"])
def test_hidden_field_refused_like_unknown(app_client, world, param):
    def ask(field):
        value = f"{field} = '陈大明'" if param == "filter" else field
        return items(app_client, world, "gh", **{param: value})

    hidden, unknown = ask("fddbr"), ask("no_such_field")
    assert hidden.status_code == unknown.status_code == 400
    assert hidden.text.replace("fddbr", "F") == unknown.text.replace("no_such_field", "F")


def test_no_bbox_no_region_no_spatial_filter(app_client, world):
    r = items(app_client, world, "gh", bbox="112,22,113,23")
    assert r.status_code == 400 and "bbox" in r.json()["description"]
    r = items(app_client, world, "gh", region="440703")
    assert r.status_code == 400 and "region" in r.json()["description"]
    r = items(app_client, world, "gh", filter="S_INTERSECTS(geometry, POINT(113 22.5))")
    assert r.status_code == 400
    r = app_client.get("/regions/440700/stats", params={"layer": TABLE},
                       headers=headers(world, "gh"))
    assert r.status_code == 400 and "table" in r.text


def test_region_scoped_grant_fails_closed(app_client, world):
    r = items(app_client, world, "hb")
    assert r.status_code == 200 and r.json()["features"] == []
    r = app_client.get(f"/ogc/collections/{TABLE}/items/{ROWS[0]['uscc']}",
                       params={"f": "json"}, headers=headers(world, "hb"))
    assert r.status_code == 404
    r = app_client.get(f"/downloads/{TABLE}", params={"format": "csv"},
                       headers=headers(world, "hb"))
    assert r.status_code == 200
    assert list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")))) == \
        [["uscc", "qymc", "fddbr", "lxdh", "zczb", "clrq", "hy"]]


def test_no_rights_is_404_like_nonexistent(app_client, world):
    for path in ("/ogc/collections/{}", "/ogc/collections/{}/items",
                 f"/ogc/collections/{{}}/items/{ROWS[0]['uscc']}", "/downloads/{}"):
        mine = app_client.get(path.format(TABLE), params={"f": "json"},
                              headers=headers(world, "jy"))
        none = app_client.get(path.format(NONEXISTENT), params={"f": "json"},
                              headers=headers(world, "jy"))
        assert mine.status_code == none.status_code == 404
        assert mine.text.replace(TABLE, "X") == none.text.replace(NONEXISTENT, "X")
        assert TABLE not in mine.text
    anon = app_client.get(f"/ogc/collections/{TABLE}/items", params={"f": "json"})
    assert anon.status_code == 404


def _download(client, world, who, fmt):
    r = client.get(f"/downloads/{TABLE}", params={"format": fmt}, headers=headers(world, who))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, no-store"
    return r


def test_download_csv_with_bom(app_client, world, db):
    mark = db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
    r = _download(app_client, world, "gh", "csv")
    assert r.content.startswith("\ufeff".encode())
    assert r.headers["content-disposition"].endswith(".csv") or ".csv" in \
        r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [list(rows[0])] == [GH_FIELDS]  # the grant's fields, table order, no fid/WKT
    assert {x["uscc"]: x["lxdh"] for x in rows} == {x["uscc"]: x["lxdh"] for x in ROWS}
    audit = db.execute("SELECT dept_code, layer, rows, action FROM audit_log WHERE id > %s",
                       (mark,)).fetchall()
    assert audit == [("gh", TABLE, len(ROWS), "download")]


def test_download_csv_gbk(app_client, world):
    r = _download(app_client, world, "jt", "csv-gbk")
    assert not r.content.startswith(b"\xef\xbb\xbf")
    text = r.content.decode("gbk")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(ROWS)
    by_key = {x["uscc"]: x for x in rows}
    for src in ROWS:
        got = by_key[src["uscc"]]
        assert got["qymc"] == src["qymc"]
        assert got["fddbr"] != src["fddbr"] and "*" in got["fddbr"]  # masked for jt


def test_download_xlsx(app_client, world, monkeypatch):
    from jmgeo.downloads import export

    monkeypatch.setattr(export, "BATCH", 4)  # batches stream: several fetches, same rows
    r = _download(app_client, world, "gh", "xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    header, *rows = [list(x) for x in wb.worksheets[0].iter_rows(values_only=True)]
    assert header == GH_FIELDS
    got = {x[0]: dict(zip(header, x, strict=True)) for x in rows}
    assert set(got) == set(BY_KEY)
    for key, props in got.items():
        assert props["zczb"] == BY_KEY[key]["zczb"]  # typed cells, not text
        assert props["lxdh"] == BY_KEY[key]["lxdh"]
    labels = dict(list(wb["fields"].iter_rows(values_only=True))[1:])
    assert labels["uscc"] == "统一社会信用代码"


def test_download_geometry_format_of_a_table_is_400(app_client, world):
    for fmt in ("gpkg", "shp", "geojson"):
        r = app_client.get(f"/downloads/{TABLE}", params={"format": fmt},
                           headers=headers(world, "gh"))
        assert r.status_code == 400
        assert "csv, csv-gbk, xlsx" in r.json()["description"]
    r = app_client.get(f"/downloads/{TABLE}", params={"format": "csv", "region": "440703"},
                       headers=headers(world, "gh"))
    assert r.status_code == 400 and "region" in r.json()["description"]


def test_item_id_is_the_key_only_when_the_key_is_given_clear():
    """A person table keyed by 身份证号 (masked) or a grant without the key: the id would
    hand out what the fields withhold, so it is the fid."""
    assert item_id_field(Access("t", "open"), "uscc") == "uscc"
    assert item_id_field(Access("t", "open", masks={"sfz": "id_number"}), "sfz") == "fid"
    assert item_id_field(Access("t", "conditional", fields=("qymc",)), "uscc") == "fid"
    assert item_id_field(Access("t", "conditional", fields=("uscc",)), "uscc") == "uscc"
    assert item_id_field(Access("t", "open"), None) == "fid"


def test_typed_access_reaches_providers_and_the_fingerprint_is_exact():
    """The provider entry carries the policy's ``Access`` itself; the audience cache key
    changes with every decision in it (fields, masks, regions, grant) and only then."""
    import copy

    from jmgeo.ogc import config
    from jmgeo.ogc.provider import PostGISProvider, provider_access

    layer = {"name": "t", "title": "t", "table_name": "layer_data.t_v1",
             "current_version": 1, "kind": "vector"}
    base = Access("t", "conditional", fields=("a",), masks={"b": "phone"}, regions=("440703",),
                  grant_id=7)

    def fp(access):
        return config.fingerprint({"t": config.layer_resource(layer, access)}, "http://x")

    assert fp(base) == fp(Access("t", "conditional", fields=("a",), masks={"b": "phone"},
                                 regions=("440703",), grant_id=7))
    for changed in (Access("t", "conditional", fields=("a", "b"), masks={"b": "phone"},
                           regions=("440703",), grant_id=7),
                    Access("t", "conditional", fields=("a",), masks={}, regions=("440703",),
                           grant_id=7),
                    Access("t", "conditional", fields=("a",), masks={"b": "phone"},
                           regions=None, grant_id=7),
                    Access("t", "conditional", fields=("a",), masks={"b": "phone"},
                           regions=("440703",), grant_id=8)):
        assert fp(changed) != fp(base)
    entry = config.layer_resource(layer, base)["providers"][0]
    assert provider_access(copy.deepcopy(entry)) == base  # pygeoapi deep-copies configs
    with pytest.raises(TypeError):
        PostGISProvider({**entry, "jmgeo": {**entry["jmgeo"], "access": {"fields": None}}})


def test_printed_config_spells_the_access_out(world, database_url):
    """``jmgeo ogc config`` prints YAML: each typed ``Access`` becomes a plain mapping."""
    import yaml

    from jmgeo.db import connection
    from jmgeo.ogc import config
    from layers.policy import Caller

    with connection() as conn:
        resources, _ = config.audience_resources(conn, Caller("department", "gh", "gh"))
    cfg = yaml.safe_load(yaml.safe_dump(config.printable(config.build_config(
        resources, "http://x")), allow_unicode=True))
    access = cfg["resources"][TABLE]["providers"][0]["jmgeo"]["access"]
    assert access["fields"] == GH_FIELDS and access["masks"] == {}
    assert cfg["resources"][TABLE]["providers"][0]["id_field"] == "uscc"
