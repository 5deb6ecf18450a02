"""Catalog model, codes, lifecycle, history and layer sync — against a real PostGIS."""

from __future__ import annotations

import pytest

from catalog import store, sync, vocab
from layers.departments import ensure_departments
from layers.policy import ANONYMOUS, Caller, sees_every_entry

ADMIN = Caller(kind="admin", name="bureau")
GTZY = Caller(kind="department", dept_code="gtzy", name="gtzy-user")
SW = Caller(kind="department", dept_code="sw", name="sw-user")


def content(name="不动产登记信息", **kw):
    c = {"class_code": "3", "item_code": "01", "item_name": "江门市国土资源局",
         "category_code": "009", "category_name": "测试登记", "name": name,
         "provider_code": "gtzy", "abstract": "全市不动产登记簿信息", "format": "database",
         "sharing_type": "conditional", "sharing_condition": "仅用于行政审批",
         "sharing_method": "platform_api", "is_open": False, "update_cycle": "daily",
         "items": [{"name": "不动产单元号", "data_type": "C", "length": "28"},
                   {"name": "坐落", "data_type": "C", "length": "200"},
                   {"name": "登记日期", "data_type": "D"}]}
    c.update(kw)
    return c


@pytest.fixture
def conn(db):
    ensure_departments(db)
    return db


def test_codes_parse_and_validate():
    assert vocab.classification_prefix("1", "03", "001") == "103001"
    assert vocab.classification_prefix("2", "01", "002", "01") == "20100201"
    assert vocab.parse_code("１０３００１/０００００２") == ("103001", 2)
    for bad in ("103001-000001", "403001/000001", "103001/0001", "103001/000000"):
        with pytest.raises(vocab.CodeError):
            vocab.parse_code(bad)


def test_validation_lists_every_problem():
    bad = content(sharing_type="conditional", sharing_condition="", is_open=True,
                  format="矢量图", items=[{"name": "a", "data_type": "Q"},
                                        {"name": "a", "data_type": "C"}])
    fields = {(p.field, p.item) for p in store.validate(None, bad)}
    assert ("sharing_condition", None) in fields
    assert ("is_open", None) in fields
    assert ("format", None) in fields
    assert ("data_type", 0) in fields
    assert ("name", 1) in fields and ("length", 1) in fields
    assert store.validate(None, content(sharing_type="not_shared", sharing_condition=None))
    assert not store.validate(None, content())


def test_lifecycle_review_history_and_codes(conn, server_clock_on_another_day):
    from layers.localday import today

    eid = store.create(conn, content("生命周期测试"), GTZY)
    e = store.get_entry(conn, eid)
    assert e["status"] == "draft" and e["code"].startswith("301009/")
    eid2 = store.create(conn, content("生命周期测试二"), GTZY)
    seq1 = vocab.parse_code(e["code"])[1]
    assert vocab.parse_code(store.get_entry(conn, eid2)["code"])[1] == seq1 + 1
    with pytest.raises(store.Forbidden):
        store.create(conn, content("别人的", provider_code="gtzy"), SW)
    with pytest.raises(store.Conflict):
        store.create(conn, content("生命周期测试"), GTZY)  # duplicate name
    with pytest.raises(store.NotFound):
        store.transition(conn, eid, "submit", SW)  # a draft is invisible to others
    store.transition(conn, eid, "submit", GTZY)
    with pytest.raises(store.Forbidden):
        store.transition(conn, eid, "approve", GTZY)
    with pytest.raises(store.CatalogError):
        store.transition(conn, eid, "return", ADMIN, "")
    store.transition(conn, eid, "return", ADMIN, "摘要过于简单，请补充数据范围")
    e = store.get_entry(conn, eid)
    assert e["status"] == "draft" and e["review_state"] == "returned"
    assert store.edit(conn, eid, {"abstract": "全市不动产登记簿信息，覆盖7个县级行政区"}, GTZY) \
        == "updated"
    assert store.edit(conn, eid, {"abstract": "全市不动产登记簿信息，覆盖7个县级行政区"}, GTZY) \
        == "unchanged"
    store.transition(conn, eid, "submit", GTZY)
    with pytest.raises(store.Conflict):
        store.transition(conn, eid, "publish", ADMIN)  # not yet approved
    store.transition(conn, eid, "approve", ADMIN)
    e = store.transition(conn, eid, "publish", ADMIN)
    assert e["status"] == "published" and e["publish_date"] == today()  # Jiangmen's day
    # published: departments see its metadata, the public does not (conditional)
    assert store.visible(SW, e) and not store.visible(ANONYMOUS, e)
    store.transition(conn, eid, "retire", GTZY)
    actions = [(h["action"], h["actor"]) for h in store.history(conn, eid)]
    assert actions == [("create", "gtzy-user"), ("submit", "gtzy-user"),
                       ("return", "bureau"), ("edit", "gtzy-user"), ("submit", "gtzy-user"),
                       ("approve", "bureau"), ("publish", "bureau"), ("retire", "gtzy-user")]
    edit = store.history(conn, eid)[3]
    assert "abstract" in edit["changes"]


def _make_layer(conn, name, title, sharing, dept="jt", legal=None, sensitive=None):
    from layers import registry

    table = registry.create_data_table(
        conn, name, 1, "MultiLineString",
        [registry.Column("road_name", "text", "道路名称"),
         registry.Column("grade", "integer", "道路等级"),
         registry.Column("phone", "text", "联系电话")], title=title)
    conn.execute(f"INSERT INTO {table} (fid, geom, road_name, grade) VALUES "
                 "(1, ST_GeomFromText('MULTILINESTRING((113.0 22.5, 113.1 22.6))', 4490),"
                 " '迎宾大道', 1)")
    registry.publish(conn, layer=name, version=1, table_name=table, feature_count=1,
                     report={}, title=title, dept=dept, theme="transport",
                     sharing_class=sharing, legal_basis=legal, update_cycle="monthly",
                     sensitive_fields=sensitive or {})


def test_layer_sync_maps_sharing_classes(conn):
    _make_layer(conn, "cat_roads", "道路中心线（同步测试）", "open", sensitive={"phone": "phone"})
    r = sync.sync_layer(conn, "cat_roads")
    assert r["outcome"] == "created"
    e = store.get_entry(conn, r["entry_id"])
    assert e["status"] == "published" and e["format"] == "vector"
    assert e["sharing_type"] == "unconditional" and e["is_open"]
    assert e["update_cycle"] == "monthly" and e["layer_version"] == 1
    assert e["code"].startswith("103005/")
    items = {i["field"]: i for i in e["items"]}
    assert items["road_name"]["name"] == "道路名称" and items["grade"]["data_type"] == "I"
    assert items["geom"]["data_type"] == "G"
    assert items["phone"]["sharing_type"] == "conditional"  # sensitive: masked w/o grant
    assert e["extent"] == [113.0, 22.5, 113.1, 22.6]
    assert sync.sync_layer(conn, "cat_roads")["outcome"] == "unchanged"
    from layers import registry

    registry.register_layer(conn, name="cat_roads", title="道路中心线（同步测试）", dept="jt",
                            theme="transport", sharing_class="not_shared",
                            legal_basis="《中华人民共和国保守国家秘密法》第九条",
                            update_cycle="monthly")
    assert sync.sync_layer(conn, "cat_roads")["outcome"] == "updated"
    e = store.get_entry(conn, r["entry_id"])
    assert e["sharing_type"] == "not_shared" and not e["is_open"]
    assert "保守国家秘密法" in e["sharing_condition"]
    for cls, expected in (("unconditional", ("unconditional", False, None)),
                          ("conditional", ("conditional", False, sync.CONDITION_DEFAULT))):
        registry.register_layer(conn, name="cat_roads", title="道路中心线（同步测试）",
                                dept="jt", theme="transport", sharing_class=cls,
                                update_cycle="monthly")
        sync.sync_layer(conn, "cat_roads")
        e = store.get_entry(conn, r["entry_id"])
        assert (e["sharing_type"], e["is_open"], e["sharing_condition"]) == expected
    assert store.history(conn, r["entry_id"])[-1]["action"] == "sync"


def test_ensure_synced_follows_registry_epoch(conn):
    sync.ensure_synced(conn)
    assert sync.ensure_synced(conn) is False
    _make_layer(conn, "cat_pipes", "供水管线（同步测试）", "unconditional", dept="sw")
    assert sync.ensure_synced(conn) is True
    assert store.get_entry(conn, layer_name="cat_pipes")["provider_code"] == "sw"


def test_catalog_visibility_is_the_policy_rule(conn):
    """SQL visibility (lists, search, records) == store.visible (one entry), both the
    policy's (catalog_filter / entry_listed), for every caller × class × status; and ==
    layers.policy.listed for published entries of callers who do not see every entry."""
    ids = {}
    for cls, (st, is_open, cond) in {
            "open": ("unconditional", True, None),
            "unconditional": ("unconditional", False, None),
            "conditional": ("conditional", False, "审批后共享"),
            "not_shared": ("not_shared", False, "《保密法》")}.items():
        for status in ("published", "draft"):
            c = content(f"可见性{cls}{status}", sharing_type=st, is_open=is_open,
                        sharing_condition=cond,
                        items=[{"name": "编号", "data_type": "C", "length": "10",
                                "sharing_type": st}])
            eid, _ = store.save(conn, c, ADMIN, status=status)
            ids[(cls, status)] = eid
    callers = [ANONYMOUS, Caller(kind="auditor", name="aud"), SW, GTZY,
               Caller(kind="admin", dept_code="wxtc", name="bureau")]
    for caller in callers:
        listed, _ = store.list_entries(conn, caller, q="可见性", limit=100)
        by_sql = {r["id"] for r in listed}
        for (cls, status), eid in ids.items():
            e = store.get_entry(conn, eid)
            assert (eid in by_sql) == store.visible(caller, e), (caller, cls, status)
            if status == "published" and not sees_every_entry(caller) and caller != GTZY:
                from layers.policy import listed as policy_listed

                assert store.visible(caller, e) == policy_listed(
                    caller, {"name": "x", "sharing_class": cls, "owner_code": "gtzy"})
    assert {r["id"] for r in store.list_entries(conn, ANONYMOUS, q="可见性")[0]} == \
        {ids[("open", "published")]}
    # the auditor supervises the catalog: every entry in every state, as the bureau
    auditor = Caller(kind="auditor", name="aud")
    assert {r["id"] for r in store.list_entries(conn, auditor, q="可见性", limit=100)[0]} \
        == set(ids.values())


def test_history_is_append_only(conn):
    import psycopg as pg

    eid = store.create(conn, content("历史不可改"), GTZY)
    with pytest.raises(pg.errors.RaiseException):
        conn.execute("UPDATE catalog_history SET actor = 'someone else' WHERE entry_id = %s",
                     (eid,))


def test_demo_catalog_is_idempotent(database_url):
    from catalog.demo import load_demo_catalog

    first = load_demo_catalog(database_url, log=lambda *_: None)
    assert first["updated"] == 0
    again = load_demo_catalog(database_url, log=lambda *_: None)
    assert again == {"created": 0, "updated": 0, "unchanged": 11}


def test_loader_registers_the_layer_in_the_catalog(conn, database_url, tmp_path):
    """``jmgeo load`` publishes, then calls sync_layer: the entry is there at once."""
    import json

    from loaders.pipeline import LoadOptions, load

    gj = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"名称": "江门大道", "等级": "主干路"},
         "geometry": {"type": "LineString", "coordinates": [[113.05, 22.58], [113.09, 22.61]]}}]}
    path = tmp_path / "roads.geojson"
    path.write_text(json.dumps(gj, ensure_ascii=False), encoding="utf-8")
    report = load(path, LoadOptions(dept="jt", layer="cat_loaded_roads", theme="transport",
                                    sharing="open", title="城市道路（装载测试）",
                                    update_cycle="monthly"),
                  dsn=database_url, progress=False)
    assert report["catalog"]["outcome"] == "created", report.get("warnings")
    e = store.get_entry(conn, layer_name="cat_loaded_roads")
    assert e["code"] == report["catalog"]["code"] and e["status"] == "published"
    assert e["sharing_class"] == "open" and e["update_cycle"] == "monthly"
    assert {i["name"] for i in e["items"]} >= {"名称", "等级", "几何图形"}
    rows, _ = store.list_entries(conn, ANONYMOUS, q="道路")
    assert "城市道路（装载测试）" in [r["name"] for r in rows]


def test_concurrent_creates_of_one_name_conflict_cleanly(database_url):
    import threading

    import psycopg as pg

    with pg.connect(database_url, autocommit=True) as c:
        ensure_departments(c)
    results = []
    barrier = threading.Barrier(4, timeout=30)

    def worker():
        with pg.connect(database_url, autocommit=True) as c:
            barrier.wait()
            try:
                results.append(store.create(c, content("并发创建"), GTZY))
            except store.Conflict:
                results.append("conflict")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(map(str, results)).count("conflict") == 3
