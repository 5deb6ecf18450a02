"""A small world for the sharing-policy tests: one layer per sharing class, callers, keys.

Layers are named ``tpol_<class>`` (owned by 国土资源局 gtzy) so they cannot collide with
the demo layers other tests load into the same session database. Each has four point
features, two in 蓬江区 (440703) and two in 台山市 (440781), and three sensitive fields.

The **table** kind (issue 9): ``tpol_tab_<class>``, one table resource per sharing class
with the same four rows and fields but no geometry, keyed by ``name`` (the key a
department knows, e.g. 宗地代码). Its conditional grant limits fields like the layer's but
has no region scope (a region scope on a table fails closed: tests/test_tables_serve.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

CLASSES = ("open", "unconditional", "conditional", "not_shared")
OWNER = "gtzy"
FIELDS = ("name", "qlr", "phone", "sfz", "area", "county")
SENSITIVE = {"qlr": "person_name", "phone": "phone", "sfz": "id_number"}
LABELS = {"name": "地块名称", "qlr": "权利人", "phone": "联系电话", "sfz": "身份证号",
          "area": "面积", "county": "所在区县"}
FEATURES = [  # fid, lon, lat, county code, attributes
    (1, 113.08, 22.58, "440703", "北街地块", "陈大明", "13812341234", "440703199001011234", 120.5),
    (2, 113.07, 22.61, "440703", "白沙地块", "李小红", "13987654321", "440703198502022345", 88.0),
    (3, 112.79, 22.25, "440781", "台城地块", "黄志强", "13711112222", "440781197703033456", 300.0),
    (4, 112.78, 22.26, "440781", "水步地块", "梁美", "13633334444", "440781196604044567", 45.25),
]
GRANT_REGION = "440703"
GRANT_FIELDS = ["name", "phone", "area", "county"]  # not 权利人 (qlr), not 身份证号 (sfz)


KINDS = ("vector", "table")
TABLE_KEY = "name"


def layer_name(cls: str, kind: str = "vector") -> str:
    return f"tpol_{cls}" if kind == "vector" else f"tpol_tab_{cls}"


def _title(name: str, cls: str, kind: str) -> str:
    """The matrix's own resources carry the titles its catalog checks search for; any
    other resource made with these helpers (test_policy's ``tp_*``) gets its name in the
    title, so its catalog entry cannot collide with theirs (one name per department)."""
    if name != layer_name(cls, kind):
        return f"策略测试 {name}"
    return f"策略测试{'表格' if kind == 'table' else ''} {cls}"


def create_layers(conn: psycopg.Connection) -> None:
    for cls in CLASSES:
        create_layer(conn, layer_name(cls), cls)
        create_table(conn, layer_name(cls, "table"), cls)


def create_table(conn: psycopg.Connection, name: str, cls: str, owner: str = OWNER,
                 rows=None) -> None:
    """A published table resource ``name`` (no geometry, key ``name``) of sharing class
    ``cls`` with the four test rows (or ``rows``: (fid, name, qlr, phone, sfz, area,
    county) tuples)."""
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.identity import DEMO_EXTRA_DEPARTMENTS
    from layers.registry import Column, create_data_table, index_key, publish

    ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
    if conn.execute("SELECT 1 FROM layer WHERE name = %s", (name,)).fetchone():
        return
    if rows is None:
        rows = [(fid, nm, qlr, phone, sfz, area, county)
                for fid, _lon, _lat, county, nm, qlr, phone, sfz, area in FEATURES]
    with conn.transaction():
        cols = [Column("name"), Column("qlr"), Column("phone"), Column("sfz"),
                Column("area", "double precision"), Column("county")]
        table = create_data_table(conn, name, 1, None, cols, title=name)
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} (fid, name, qlr, phone, sfz, area, county) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
        index_key(conn, table, TABLE_KEY)
        publish(conn, layer=name, version=1, table_name=table, feature_count=len(rows),
                report={}, title=_title(name, cls, "table"), dept=owner, theme="land",
                sharing_class=cls, kind="table", geometry_type=None, key_field=TABLE_KEY,
                legal_basis="《测试法》第1条" if cls == "not_shared" else None,
                sensitive_fields=SENSITIVE, field_labels=LABELS)


def create_layer(conn: psycopg.Connection, name: str, cls: str, owner: str = OWNER) -> None:
    """A published layer ``name`` of sharing class ``cls`` with the four test features."""
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.identity import DEMO_EXTRA_DEPARTMENTS
    from layers.registry import Column, create_data_table, publish

    ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
    if conn.execute("SELECT 1 FROM layer WHERE name = %s", (name,)).fetchone():
        return
    with conn.transaction():
        cols = [Column("name"), Column("qlr"), Column("phone"), Column("sfz"),
                Column("area", "double precision"), Column("county")]
        table = create_data_table(conn, name, 1, "MultiPoint", cols, title=name)
        for fid, lon, lat, county, nm, qlr, phone, sfz, area in FEATURES:
            conn.execute(
                f"INSERT INTO {table} (fid, geom, name, qlr, phone, sfz, area, county) "
                "VALUES (%s, ST_Multi(ST_SetSRID(ST_MakePoint(%s, %s), 4490)), %s, %s, "
                "%s, %s, %s, %s)", (fid, lon, lat, nm, qlr, phone, sfz, area, county))
        publish(conn, layer=name, version=1, table_name=table, feature_count=len(FEATURES),
                report={}, title=_title(name, cls, "vector"), dept=owner, theme="land",
                sharing_class=cls,
                legal_basis="《测试法》第1条" if cls == "not_shared" else None,
                sensitive_fields=SENSITIVE, field_labels=LABELS)


@dataclass(frozen=True)
class TestCaller:
    label: str
    dept: str | None
    token: str | None


def build_world(database_url: str) -> dict[str, TestCaller]:
    """The resources of every sharing class and kind, and the callers (with keys) that
    the access tests ask with — what a module-scoped ``world`` fixture returns."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_layers(conn)
        return create_callers(conn)


def create_callers(conn: psycopg.Connection) -> dict[str, TestCaller]:
    """anonymous, unrelated (hb), limited grant (gh), expired grant (jy), owner (gtzy)."""
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.grants import add_grant, list_grants
    from layers.identity import DEMO_EXTRA_DEPARTMENTS, create_key

    ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
    cond = layer_name("conditional")
    have = {(g["dept"], g["notes"]) for g in list_grants(conn, layer=cond)}
    if ("gh", "tpol") not in have:
        add_grant(conn, layer=cond, dept="gh", purpose="控制性详细规划编制",
                  approved_by="测试审批人", fields=GRANT_FIELDS, regions=[GRANT_REGION],
                  notes="tpol")
    if ("jy", "tpol") not in have:
        add_grant(conn, layer=cond, dept="jy", purpose="学校布点规划（已结束）",
                  approved_by="测试审批人", valid_from=datetime(2025, 9, 1, tzinfo=UTC),
                  valid_to=datetime(2025, 12, 1, tzinfo=UTC), notes="tpol")
    tab = layer_name("conditional", "table")
    have = {(g["dept"], g["notes"]) for g in list_grants(conn, layer=tab)}
    if ("gh", "tpol") not in have:  # fields limited; no region scope (see the docstring)
        add_grant(conn, layer=tab, dept="gh", purpose="企业名录核查",
                  approved_by="测试审批人", fields=GRANT_FIELDS, notes="tpol")
    if ("jy", "tpol") not in have:
        add_grant(conn, layer=tab, dept="jy", purpose="学校布点规划（已结束）",
                  approved_by="测试审批人", valid_from=datetime(2025, 9, 1, tzinfo=UTC),
                  valid_to=datetime(2025, 12, 1, tzinfo=UTC), notes="tpol")
    out = {"anonymous": TestCaller("anonymous", None, None)}
    for label, dept in (("unrelated", "hb"), ("limited_grant", "gh"), ("expired_grant", "jy"),
                        ("owner", OWNER)):
        key = create_key(conn, f"tpol-{label}-{datetime.now(UTC).timestamp()}", dept=dept)
        out[label] = TestCaller(label, dept, key["token"])
    return out
