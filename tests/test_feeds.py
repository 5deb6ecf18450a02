"""系统对接 feeds (issue 11 §2) against the real app and database: full pull, incremental
pull returning exactly the changed keys, per caller (fields, masks, regions), the three
formats, 410 past the retained history, rollback, audit and the delivery count, and the
loader recording the change set once at publish."""

from __future__ import annotations

import csv
import io
import json

import pytest
from exchange_fixtures import Api, make_callers
from policy_fixtures import FEATURES, OWNER, create_layer, create_table

from layers import registry
from layers.grants import add_grant
from layers.registry import Column, create_data_table, index_key

_N = iter(range(1, 10_000))
COLS = [Column("name"), Column("qlr"), Column("phone"), Column("sfz"),
        Column("area", "double precision"), Column("county")]


@pytest.fixture(scope="module")
def who(database_url):
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return make_callers(conn)


@pytest.fixture
def api(app_client, who):
    return {label: Api(app_client, w) for label, w in who.items()}


def _rows(version_rows):
    """{name: (lon, lat, qlr, phone, sfz, area, county)} → insertable tuples."""
    return [(i + 1, name, *vals) for i, (name, vals) in enumerate(sorted(version_rows.items()))]


def _v1() -> dict:
    return {nm: (lon, lat, qlr, phone, sfz, area, county)
            for _f, lon, lat, county, nm, qlr, phone, sfz, area in FEATURES}


def publish_version(db, name: str, rows: dict, *, kind: str) -> int:
    """Publish the next version of ``name`` with ``rows`` as the loader does (a new table,
    the key index, ``registry.publish``); returns the version."""
    layer = registry.require_layer(db, name)
    version = registry.next_version(db, name)
    with db.transaction():
        table = create_data_table(db, name, version, None if kind == "table" else "MultiPoint",
                                  COLS)
        for fid, nm, lon, lat, qlr, phone, sfz, area, county in _rows(rows):
            if kind == "table":
                db.execute(f"INSERT INTO {table} (fid, name, qlr, phone, sfz, area, county) "
                           "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                           (fid, nm, qlr, phone, sfz, area, county))
            else:
                db.execute(f"INSERT INTO {table} (fid, geom, name, qlr, phone, sfz, area, "
                           "county) VALUES (%s, ST_Multi(ST_SetSRID(ST_MakePoint(%s, %s), "
                           "4490)), %s, %s, %s, %s, %s, %s)",
                           (fid, lon, lat, nm, qlr, phone, sfz, area, county))
        index_key(db, table, "name")
        registry.publish(
            db, layer=name, version=version, table_name=table, feature_count=len(rows),
            report={}, title=layer["title"], dept=OWNER, theme="land",
            sharing_class=layer["sharing_class"], kind=kind,
            geometry_type=None if kind == "table" else "MultiPoint", key_field="name",
            sensitive_fields=layer["sensitive_fields"], field_labels=layer["field_labels"])
    return version


def resource(db, cls: str, kind: str) -> str:
    name = f"tf_{kind[:3]}_{cls[:4]}_{next(_N)}"
    if kind == "table":
        create_table(db, name, cls)
    else:
        create_layer(db, name, cls)
        db.execute("UPDATE layer SET key_field = 'name' WHERE name = %s", (name,))
    return name


def changed(v1: dict) -> dict:
    """v2: 北街 area changed, 白沙 deleted, 新会地块 inserted, 台城 phone changed."""
    v2 = dict(v1)
    lon, lat, qlr, phone, sfz, area, county = v2["北街地块"]
    v2["北街地块"] = (lon, lat, qlr, phone, sfz, 999.0, county)
    del v2["白沙地块"]
    v2["新会地块"] = (113.03, 22.52, "周新", "13500001111", "440705199909091234", 66.0, "440705")
    lon, lat, qlr, phone, sfz, area, county = v2["台城地块"]
    v2["台城地块"] = (lon, lat, qlr, "13700000000", sfz, area, county)
    return v2


def ndjson(r) -> list[dict]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in r.text.splitlines() if line]


def ops(records) -> dict[str, str]:
    return {r["key"]: r["op"] for r in records}


@pytest.mark.parametrize("kind", ["table", "vector"])
def test_incremental_pull_returns_exactly_the_changed_keys(api, db, kind):
    name = resource(db, "unconditional", kind)
    v1 = _v1()
    if kind == "vector":  # the layer fixture's version 1 came without change capture
        publish_version(db, name, v1, kind=kind)
    base = registry.require_layer(db, name)["current_version"]
    v = publish_version(db, name, changed(v1), kind=kind)
    owner = api["owner"]
    r = owner.get(f"/exchange/feeds/{name}", since=base)
    recs = ndjson(r)
    assert ops(recs) == {"北街地块": "update", "白沙地块": "delete", "新会地块": "insert",
                         "台城地块": "update"}
    assert r.headers["jmgeo-from-version"] == str(base)
    assert r.headers["jmgeo-to-version"] == str(v)
    assert r.headers["jmgeo-full"] == "false"
    assert f"since={v}" in r.headers["link"]
    by = {x["key"]: x for x in recs}
    assert by["北街地块"]["properties"]["area"] == 999.0
    assert by["白沙地块"]["properties"] is None
    if kind == "vector":
        assert by["新会地块"]["geometry"]["type"] == "MultiPoint"
        assert by["新会地块"]["geometry"] == {"type": "MultiPoint",
                                           "coordinates": [[113.03, 22.52]]}  # RFC 7946
    else:
        assert "geometry" not in by["新会地块"]
    # nothing changed since the current version; a full pull has every record as insert
    assert ndjson(owner.get(f"/exchange/feeds/{name}", since=v)) == []
    full = owner.get(f"/exchange/feeds/{name}")
    assert full.headers["jmgeo-full"] == "true"
    assert ops(ndjson(full)) == {k: "insert" for k in changed(v1)}


def test_unconditional_department_gets_masked_values_and_unchanged_masks_are_no_change(api, db):
    name = resource(db, "unconditional", "table")
    v1 = _v1()
    v2 = dict(v1)
    lon, lat, qlr, phone, sfz, area, county = v2["水步地块"]
    v2["水步地块"] = (lon, lat, qlr, phone[:-1] + "9", sfz, area, county)  # a masked digit
    publish_version(db, name, v2, kind="table")
    recs = ndjson(api["unrelated"].get(f"/exchange/feeds/{name}", since=1))
    rec = {r["key"]: r for r in recs}
    # phone is masked (sensitive) for a department without a grant naming it
    assert "水步地块" in rec and "*" in str(rec["水步地块"]["properties"]["phone"])
    assert rec["水步地块"]["properties"]["phone"] != v2["水步地块"][3]
    full = ndjson(api["unrelated"].get(f"/exchange/feeds/{name}"))
    for r in full:
        assert "*" in str(r["properties"]["sfz"])


def test_grant_fields_and_regions_shape_the_change_set(api, db):
    name = resource(db, "conditional", "vector")
    v1 = _v1()
    publish_version(db, name, v1, kind="vector")
    base = registry.require_layer(db, name)["current_version"]
    add_grant(db, layer=name, dept="gh", purpose="规划", approved_by="测试",
              fields=["name", "area"], regions=["440703"])
    v2 = dict(v1)
    lon, lat, qlr, phone, sfz, area, county = v2["北街地块"]
    v2["北街地块"] = (lon, lat, qlr, "13000000000", sfz, area, county)  # phone: not granted
    lon, lat, qlr, phone, sfz, area, county = v2["白沙地块"]
    v2["白沙地块"] = (112.79, 22.255, qlr, phone, sfz, area, "440781")  # leaves 蓬江区
    lon, lat, qlr, phone, sfz, area, county = v2["台城地块"]
    v2["台城地块"] = (113.075, 22.59, qlr, phone, sfz, area, "440703")  # enters 蓬江区
    publish_version(db, name, v2, kind="vector")
    gh = ndjson(api["applicant"].get(f"/exchange/feeds/{name}", since=base))
    assert ops(gh) == {"白沙地块": "delete", "台城地块": "insert"}
    assert set(gh[-1]["properties"] if gh[-1]["properties"] else gh[0]["properties"]) == \
        {"name", "area"}
    owner = ndjson(api["owner"].get(f"/exchange/feeds/{name}", since=base))
    assert ops(owner) == {"北街地块": "update", "白沙地块": "update", "台城地块": "update"}
    # ?fields= narrows (the key always comes); a field outside the grant is refused
    r = api["applicant"].get(f"/exchange/feeds/{name}", fields="area")
    assert set(ndjson(r)[0]["properties"]) == {"name", "area"}
    bad = api["applicant"].get(f"/exchange/feeds/{name}", fields="phone")
    assert bad.status_code == 400 and "phone" in bad.json()["description"]
    # no grant: the same 404 as a resource that does not exist; anonymous likewise
    for label in ("unrelated", "anonymous"):
        r = api[label].get(f"/exchange/feeds/{name}")
        assert r.status_code in (401, 404)
        if r.status_code == 404:
            assert r.json() == api[label].get("/exchange/feeds/tf_no_such_thing").json()


def test_key_withheld_or_masked_is_refused(api, db):
    name = resource(db, "conditional", "table")
    add_grant(db, layer=name, dept="gh", purpose="规划", approved_by="测试", fields=["area"])
    r = api["applicant"].get(f"/exchange/feeds/{name}")
    assert r.status_code == 400
    assert "name" in r.json()["description"] and "/" in r.json()["description"]
    layer = resource(db, "open", "vector")
    db.execute("UPDATE layer SET key_field = NULL WHERE name = %s", (layer,))
    r = api["anonymous"].get(f"/exchange/feeds/{layer}")
    assert r.status_code == 400 and "--key" in r.json()["description"]


def test_formats_geojsonseq_and_csv(api, db):
    name = resource(db, "unconditional", "vector")
    publish_version(db, name, _v1(), kind="vector")
    publish_version(db, name, changed(_v1()), kind="vector")
    owner = api["owner"]
    r = owner.get(f"/exchange/feeds/{name}", since=2, format="geojsonseq")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json-seq")
    parts = [p for p in r.text.split("\x1e") if p]
    assert all(p.endswith("\n") for p in parts)
    feats = [json.loads(p) for p in parts]
    assert {f["id"]: f["op"] for f in feats}["白沙地块"] == "delete"
    assert all(f["type"] == "Feature" for f in feats)
    r = owner.get(f"/exchange/feeds/{name}", since=2, format="csv")
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert {row["name"]: row["op"] for row in table} == ops(
        ndjson(owner.get(f"/exchange/feeds/{name}", since=2)))
    ins = next(row for row in table if row["op"] == "insert")
    assert ins["geometry_wkt"].startswith("MULTIPOINT")
    bad = owner.get(f"/exchange/feeds/{name}", format="shp")
    assert bad.status_code == 422


def test_versions_history_and_rollback(api, db):
    name = resource(db, "unconditional", "table")
    v2 = publish_version(db, name, changed(_v1()), kind="table")
    owner = api["owner"]
    assert owner.get(f"/exchange/feeds/{name}", since=7).status_code == 400
    # a rollback to v1 is a step too: from v2 the pull is the inverse change set
    registry.rollback(db, name, 1)
    back = ndjson(owner.get(f"/exchange/feeds/{name}", since=v2))
    assert ops(back) == {"北街地块": "update", "白沙地块": "insert", "新会地块": "delete",
                         "台城地块": "update"}
    v3 = publish_version(db, name, changed(_v1()), kind="table")
    assert ops(ndjson(owner.get(f"/exchange/feeds/{name}", since=v2))) == {}
    info = owner.get(f"/exchange/feeds/{name}/versions").json()
    assert info == {"resource": name, "key_field": "name", "current_version": v3,
                    "oldest_version": 1}
    # pruned history: 410 naming the oldest version a pull may start from; a resource with
    # live grants is refused unless forced, and the prune is audited
    registry.prune(db, name, keep=1)
    assert db.execute("SELECT request->'dropped_versions' FROM audit_log WHERE layer = %s "
                      "AND action = 'layer.prune'", (name,)).fetchone()[0] == [1, v2]
    r = owner.get(f"/exchange/feeds/{name}", since=1)
    assert r.status_code == 410
    assert r.json()["oldest_version"] == v3
    assert "全量" in r.json()["description"] and "full" in r.json()["description"]


def test_pull_is_audited_and_counted(api, db):
    name = resource(db, "unconditional", "table")
    mark = db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
    r = api["unrelated"].get(f"/exchange/feeds/{name}")
    assert len(ndjson(r)) == 4
    audit = db.execute("SELECT action, dept_code FROM audit_log WHERE id > %s AND layer = %s",
                       (mark, name)).fetchall()
    assert audit == [("feed", "hb")]
    count = db.execute(
        "SELECT e.mode, d.code, e.rows, e.bytes FROM exchange_delivery e JOIN layer l ON "
        "l.id = e.layer_id JOIN department d ON d.id = e.dept_id WHERE l.name = %s",
        (name,)).fetchall()
    assert count == [("system", "hb", 4, len(r.content))]


def test_the_loader_records_the_change_set_once_at_publish(db, database_url, tmp_path):
    from loaders.pipeline import LoadOptions, load

    name = f"tf_load_{next(_N)}"
    header = "code,title,amount\n"
    (tmp_path / "a.csv").write_text(header + "A1,甲,1\nA2,乙,2\nA3,丙,3\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text(header + "A1,甲,1\nA2,乙,20\nA4,丁,4\n", encoding="utf-8")
    opts = dict(dept="scjg", layer=name, theme="enterprise", sharing="unconditional",
                kind="table", key="code")
    load(tmp_path / "a.csv", LoadOptions(**opts), dsn=database_url, progress=False)
    dry = load(tmp_path / "b.csv", LoadOptions(**opts, dry_run=True), dsn=database_url,
               progress=False)
    assert dry["key"]["diff"] == {"against_version": 1, "added": 1, "removed": 1,
                                  "changed": 1}
    report = load(tmp_path / "b.csv", LoadOptions(**opts), dsn=database_url, progress=False)
    assert report["key"]["diff"] == {"against_version": 1, "added": 1, "removed": 1,
                                     "changed": 1}
    stored = db.execute(
        "SELECT v.report->'key'->'diff' FROM layer_version v JOIN layer l ON l.id = "
        "v.layer_id WHERE l.name = %s AND v.version = 2", (name,)).fetchone()[0]
    assert stored == report["key"]["diff"]
    steps = db.execute(
        "SELECT s.from_version, s.to_version, s.kind, array_agg(c.key || ':' || c.op ORDER BY "
        "c.key) FROM layer_step s JOIN layer l ON l.id = s.layer_id LEFT JOIN layer_change c "
        "ON c.step_id = s.id WHERE l.name = %s GROUP BY s.id ORDER BY s.id",
        (name,)).fetchall()
    assert steps == [(None, 1, "publish", [None]),
                     (1, 2, "publish", ["A2:u", "A3:d", "A4:i"])]


def test_a_field_added_in_the_new_version_updates_every_record(api, db, database_url,
                                                               tmp_path):
    from loaders.pipeline import LoadOptions, load

    name = f"tf_schema_{next(_N)}"
    (tmp_path / "a.csv").write_text("code,title\nB1,甲\nB2,乙\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("code,title,amount\nB1,甲,5\nB2,乙,6\n",
                                    encoding="utf-8")
    opts = dict(dept="gtzy", layer=name, theme="land", sharing="unconditional",
                kind="table", key="code")
    load(tmp_path / "a.csv", LoadOptions(**opts), dsn=database_url, progress=False)
    load(tmp_path / "b.csv", LoadOptions(**opts), dsn=database_url, progress=False)
    recs = ndjson(api["owner"].get(f"/exchange/feeds/{name}", since=1))
    assert [(r["key"], r["op"], r["properties"]["amount"]) for r in recs] == [
        ("B1", "update", 5), ("B2", "update", 6)]


def test_prune_is_refused_with_live_grants_unless_forced(db):
    import pytest as _pytest

    name = resource(db, "conditional", "table")
    publish_version(db, name, changed(_v1()), kind="table")
    add_grant(db, layer=name, dept="gh", purpose="规划", approved_by="测试")
    with _pytest.raises(registry.RegistryError) as err:
        registry.prune(db, name, keep=1)
    assert "--force" in str(err.value) and "授权" in str(err.value)
    assert db.execute("SELECT to_regclass(%s)", (f"layer_data.{name}_v1",)).fetchone()[0]
    assert registry.prune(db, name, keep=1, force=True)["dropped_versions"] == [1]
