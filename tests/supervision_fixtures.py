"""A synthetic quarter (2026Q4) for the supervision tests, in a database of its own.

Everything is placed in time by hand, so every figure of the report can be computed by
hand (the expected values are in tests/test_supervision_figures.py, with the working
days counted out). Departments: 国土 gtzy, 水务 sw, 交通 jt own resources; 环保 hb and 规划
gh consume; 网信统筹局 wxtc is the bureau.

| resource        | owner | cycle     | publishes (2026)            | quality of each version |
| --------------- | ----- | --------- | --------------------------- | ----------------------- |
| syn_parcels     | gtzy  | quarterly | 09-01, 10-09                | 80, 90                  |
| syn_boundaries  | gtzy  | other     | 07-01, 10-12                | 60, 70                  |
| syn_pipes       | sw    | monthly   | 09-15, 10-14, 11-20         | 75, 80, 85              |
| syn_bus         | jt    | weekly    | 11-02                       | (no quality report)     |

Verification tickets (基础库校核工单, by the authority that must answer; deadlines as stored):

| ticket | authority ← copy | opened | deadline | answered        | closed | at 12-31        |
| ------ | ---------------- | ------ | -------- | --------------- | ------ | --------------- |
| old    | gtzy ← sw        | 07-01  | 07-15    | 07-03 confirmed | 07-10  | (before Q4)     |
| late   | gtzy ← sw        | 09-25  | 10-12    | —               | 10-20  | closed, overdue |
| fixed  | gtzy ← sw        | 11-02  | 11-16    | 11-05 corrected | 11-10  | closed, 3 wd    |
| waits  | gtzy ← jt        | 12-01  | 12-15    | —               | —      | open, overdue   |
| young  | sw ← gtzy        | 12-21  | 2027-01-05 | —             | —      | open            |
| quick  | sw ← jt          | 12-07  | 12-21    | 12-09 confirmed | —      | answered, 2 wd  |
| next   | sw ← jt          | 2027-01-04 | 01-18 | —              | —      | (after Q4)      |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import psycopg

from exchange import requests as ex
from exchange.clock import CHINA
from layers.policy import Caller

OWNERS = {"syn_parcels": "gtzy", "syn_boundaries": "gtzy", "syn_pipes": "sw", "syn_bus": "jt"}
CYCLES = {"syn_parcels": "quarterly", "syn_boundaries": "other", "syn_pipes": "monthly",
          "syn_bus": "weekly"}
TITLES = {"syn_parcels": "合成宗地", "syn_boundaries": "合成界线", "syn_pipes": "合成供水管网",
          "syn_bus": "合成公交线路"}
PUBLISHES = {
    "syn_parcels": [(date(2026, 9, 1), 80), (date(2026, 10, 9), 90)],
    "syn_boundaries": [(date(2026, 7, 1), 60), (date(2026, 10, 12), 70)],
    "syn_pipes": [(date(2026, 9, 15), 75), (date(2026, 10, 14), 80), (date(2026, 11, 20), 85)],
    "syn_bus": [(date(2026, 11, 2), None)],
}
JUDGE = date(2026, 12, 31)  # the quarter judged complete


def at(m: int, d: int, h: int = 10, y: int = 2026) -> datetime:
    return datetime(y, m, d, h, tzinfo=CHINA)


def dept(code: str) -> Caller:
    return Caller(kind="department", dept_code=code, name=f"test:{code}")


BUREAU = Caller(kind="admin", dept_code="wxtc", name="test:bureau")


def _publish(conn, name: str, version: int, day: date, score: float | None) -> None:
    from layers.registry import Column, create_data_table, index_key, publish

    cols = [Column("code"), Column("name")]
    table = create_data_table(conn, name, version, None, cols, title=name)
    conn.execute(f"INSERT INTO {table} (fid, code, name) VALUES (1, 'P-001', '一号'), "
                 f"(2, 'P-002', '二号')")
    index_key(conn, table, "code")
    report = {"quality": {"score": score}} if score is not None else {}
    publish(conn, layer=name, version=version, table_name=table, feature_count=2,
            report=report, title=TITLES[name], dept=OWNERS[name], theme="land",
            sharing_class="conditional" if name == "syn_parcels" else "unconditional",
            kind="table", geometry_type=None, key_field="code",
            update_cycle=CYCLES[name])
    moment = datetime(day.year, day.month, day.day, 9, tzinfo=CHINA)
    conn.execute("UPDATE layer_version SET loaded_at = %s WHERE version = %s AND layer_id = "
                 "(SELECT id FROM layer WHERE name = %s)", (moment, version, name))
    conn.execute("UPDATE layer_step SET at = %s WHERE to_version = %s AND layer_id = "
                 "(SELECT id FROM layer WHERE name = %s)", (moment, version, name))


def _entry(name: str, provider: str, *, publish_date: date | None, cycle: str) -> dict:
    from catalog.vocab import BASE_ITEMS

    return {"class_code": "1", "item_code": "03", "item_name": BASE_ITEMS["03"],
            "category_code": "002", "category_name": "国土资源", "name": name,
            "provider_code": provider, "abstract": f"{name}（合成测试数据）", "format": "database",
            "sharing_type": "conditional", "sharing_condition": "经审批后共享",
            "sharing_method": "platform_api", "is_open": False, "update_cycle": cycle,
            "publish_date": publish_date, "related_codes": [],
            "items": [{"name": "编码", "data_type": "C", "length": "20",
                       "sharing_type": "conditional"}]}


@dataclass
class Quarter:
    dsn: str
    requests: dict[str, int]
    deliveries: dict[str, int]
    corrections: dict[str, int]
    tickets: dict[str, int]


def _delivery(conn, resource: str, to: str, mode: str, rows: int, when: datetime,
              deliveries: int = 1) -> int:
    return conn.execute(
        "INSERT INTO exchange_delivery (layer_id, dept_id, mode, rows, bytes, deliveries, at) "
        "SELECT l.id, d.id, %s, %s, %s, %s, %s FROM layer l, department d WHERE l.name = %s "
        "AND d.code = %s RETURNING id", (mode, rows, rows * 100, deliveries, when, resource, to)
    ).fetchone()[0]


TICKETS = {  # name → (authority, copy, opened, deadline)
    "old": ("gtzy", "sw", at(7, 1), date(2026, 7, 15)),
    "late": ("gtzy", "sw", at(9, 25), date(2026, 10, 12)),
    "fixed": ("gtzy", "sw", at(11, 2), date(2026, 11, 16)),
    "waits": ("gtzy", "jt", at(12, 1), date(2026, 12, 15)),
    "young": ("sw", "gtzy", at(12, 21), date(2027, 1, 5)),
    "quick": ("sw", "jt", at(12, 7), date(2026, 12, 21)),
    "next": ("sw", "jt", at(1, 4, y=2027), date(2027, 1, 18)),
}


def _tickets(conn) -> dict[str, int]:
    """The verification tickets of the module table: opened as an integration opens
    them, answered through ``baselib.tickets.answer``, closed as the next integration
    would close them (the disagreement gone)."""
    from baselib import tickets

    ids = {}
    for name, (auth, copy, opened, deadline) in TICKETS.items():
        ids[name] = conn.execute(
            "INSERT INTO baselib_ticket (library, key, attribute, authority_dept_id, "
            "authority_resource, authority_version, authority_value, copy_dept_id, "
            "copy_resource, copy_version, copy_value, rule_id, working_days, opened_at, "
            "deadline) SELECT 'persons', %s, 'name', a.id, 'syn_auth', 1, '陈大明', c.id, "
            "'syn_copy', 1, '陈大民', (SELECT min(id) FROM baselib_ticket_rule), 10, %s, %s "
            "FROM department a, department c WHERE a.code = %s AND c.code = %s RETURNING id",
            (f"K-{name}", opened, deadline, auth, copy)).fetchone()[0]
    for name, verdict, when in (("old", "confirmed", at(7, 3)), ("fixed", "corrected",
                                                                 at(11, 5)),
                                ("quick", "confirmed", at(12, 9))):
        tickets.answer(conn, dept(TICKETS[name][0]), ids[name], verdict, now=when,
                       version=2 if verdict == "corrected" else None)
    for name, when in (("old", at(7, 10)), ("late", at(10, 20)), ("fixed", at(11, 10))):
        conn.execute("UPDATE baselib_ticket SET status = 'closed', closed_at = %s, "
                     "resolution = 'test' WHERE id = %s", (when, ids[name]))
    return ids


def quarter_database():
    """A module fixture's body: a database of its own with the quarter built in it."""
    from conftest import create_test_database, drop_test_database, migrate

    dsn = create_test_database("jmgeo_supq")
    try:
        migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:  # the region a ticket names
            conn.execute("INSERT INTO region (code, name, kind, valid_from) VALUES "
                         "('440703', '蓬江区', 'district', '2000-01-01')")
        yield build_quarter(dsn)
    finally:
        drop_test_database(dsn)


def build_quarter(dsn: str) -> Quarter:
    """Fill the database at ``dsn`` with the synthetic quarter (see the module table)."""
    from catalog import store
    from catalog.sync import SYNC_CALLER, sync_layer
    from layers.departments import DEMO_DEPARTMENTS, ensure_departments
    from layers.identity import DEMO_EXTRA_DEPARTMENTS
    from supervision import feedback

    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_departments(conn, DEMO_DEPARTMENTS + DEMO_EXTRA_DEPARTMENTS)
        # the survey sheet of 国土: one resource later loaded, one never (and no 发布日期)
        store.save(conn, _entry(TITLES["syn_parcels"], "gtzy", publish_date=date(2026, 1, 5),
                                cycle="quarterly"), dept("gtzy"), status="published")
        store.save(conn, _entry("不动产登记簿", "gtzy", publish_date=None, cycle="yearly"),
                   dept("gtzy"), status="published")
        for name, pubs in PUBLISHES.items():
            for version, (day, score) in enumerate(pubs, 1):
                _publish(conn, name, version, day, score)
        for name in ("syn_parcels", "syn_boundaries", "syn_pipes"):  # syn_bus: no entry
            sync_layer(conn, name)
        conn.execute("UPDATE catalog_entry SET created_at = %s", (at(9, 1),))
        conn.execute("UPDATE layer SET created_at = %s", (at(7, 1),))
        assert SYNC_CALLER.name == "system:layer-sync"

        owner = dept("gtzy")
        reqs = {}
        r = ex.file_request(conn, dept("hb"), resource="syn_parcels", purpose="环境监测",
                            now=at(10, 12))
        ex.answer(conn, owner, r["id"], decision="approve", now=at(10, 15))
        reqs["on_time"] = r["id"]
        r = ex.file_request(conn, dept("hb"), resource="syn_parcels", purpose="污染源普查",
                            now=at(10, 29))
        ex.answer(conn, owner, r["id"], decision="refuse", reason="范围过大", now=at(11, 17))
        reqs["late"] = r["id"]
        r = ex.file_request(conn, dept("sw"), resource="syn_parcels", purpose="防汛",
                            now=at(10, 31))  # a Saturday: received Monday 11-02
        ex.answer(conn, owner, r["id"], decision="approve", now=at(11, 2, 15))
        reqs["same_day"] = r["id"]
        r = ex.file_request(conn, dept("jt"), resource="syn_parcels", purpose="道路规划",
                            now=at(12, 1))
        reqs["unanswered"] = r["id"]
        r = ex.file_request(conn, dept("jt"), resource="syn_parcels", purpose="上季度",
                            now=at(9, 28))
        reqs["last_quarter"] = r["id"]

        dl = {"parcels_hb": _delivery(conn, "syn_parcels", "hb", "download", 100, at(10, 20)),
              "parcels_sw": _delivery(conn, "syn_parcels", "sw", "system", 50, at(11, 5)),
              "pipes_hb": _delivery(conn, "syn_pipes", "hb", "query", 1, at(11, 6), 30),
              "pipes_jt": _delivery(conn, "syn_pipes", "jt", "fep", 200, at(9, 20))}
        feedback.rate_delivery(conn, dept("hb"), dl["parcels_hb"], score=4, comment="字段齐全",
                               now=at(10, 21))
        feedback.rate_delivery(conn, dept("hb"), dl["pipes_hb"], score=2, comment="坐标缺失",
                               now=at(11, 7))
        c1 = feedback.raise_correction(conn, dept("hb"), resource="syn_parcels", field="name",
                                       description="名称错字", now=at(10, 21))
        feedback.answer_correction(conn, owner, c1["id"], outcome="fixed", version=2,
                                   now=at(10, 23))
        c2 = feedback.raise_correction(conn, dept("hb"), resource="syn_pipes", region="440703",
                                       description="蓬江区管网缺失", now=at(11, 9))
        feedback.answer_correction(conn, dept("sw"), c2["id"], outcome="not_error",
                                   reason="该区域为规划管网，尚未建设", now=at(11, 20))
        c3 = feedback.raise_correction(conn, dept("jt"), resource="syn_pipes",
                                       record_key="P-001", description="管径错误",
                                       now=at(12, 10))
        ticket_ids = _tickets(conn)
    return Quarter(dsn, reqs, dl, {"fixed": c1["id"], "not_error": c2["id"],
                                   "open": c3["id"]}, ticket_ids)
