"""Full insurance coverage (全员足额参保, issue 15 §6): its own resource — legal person ×
employee × insurance status, joined to the base libraries by USCC and ID number — and its
indicator, legal persons with employees but no insurance record per town, against values
counted by hand."""

from __future__ import annotations

import random

import psycopg
import pytest
from baselib_fixtures import golden, reset_sources, ric, setup, uscc

from baselib import libraries, themes
from baselib.demo import publish_source
from baselib.integrate import integrate
from layers.policy import ANONYMOUS, Caller

TANGXIA, HUICHENG, TAICHENG = "440703101", "440705001", "440781001"
ADDRESS = {TANGXIA: "江门市蓬江区棠下镇建设路{}号", HUICHENG: "江门市新会区会城街道胜利路{}号",
           TAICHENG: "台山市台城街道江华路{}号"}
E = {n: uscc(900 + n) for n in range(1, 8)}
TOWN = {1: TANGXIA, 2: TANGXIA, 3: HUICHENG, 4: TAICHENG, 5: TANGXIA, 6: HUICHENG}  # 7: none
P = {n: ric(300 + 2 * n) for n in range(1, 10)}  # P9 is not in the population base
COVERAGE = [  # (employer, employee, status)
    (1, 1, "正常参保"), (1, 2, "未参保"),   # E1 insures one of two: has a record
    (2, 3, "未参保"), (2, 4, "未参保"),     # E2 (棠下) insures nobody: counted
    (3, 5, "未参保"),                       # E3 (会城) insures nobody: counted
    (4, 6, "暂停缴费"),                     # E4: a suspended record is a record
    (6, 7, None),                            # E6 (会城): no status at all: counted
    (6, 9, "未参保"),
    (7, 8, "未参保"),                        # E7 is not a legal person of the base
]
# E5 (棠下) has no employees: not counted; P9 alone would not make an employee, but E6
# has P7 → 棠下 1 (E2), 会城 2 (E3, E6)
EXPECTED = {TANGXIA: 1, HUICHENG: 2}
BUREAU = Caller(kind="admin", dept_code="wxtc", name="bureau")


@pytest.fixture(scope="module")
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as c:
        setup(c)
        reset_sources(c, "legal_persons")
        reset_sources(c, "persons")
        lp = [{"tyshxydm": E[n], "mc": f"测试企业{n}", "zs": ADDRESS[t].format(n)}
              for n, t in TOWN.items()]
        publish_source(c, "tbt_scjg", "scjg", lp, "tyshxydm")
        libraries.add_source(c, "legal_persons", "tbt_scjg", "tyshxydm",
                             {"name": "mc", "address": "zs"})
        people = [{"sfzh": P[n], "xm": f"职工{n}"} for n in range(1, 9)]
        publish_source(c, "tbt_gaj", "gaj", people, "sfzh")
        libraries.add_source(c, "persons", "tbt_gaj", "sfzh", {"name": "xm"})
        integrate(c, "legal_persons", by="test")
        integrate(c, "persons", by="test")
        rows = [{"record_no": f"T{i}", "uscc": E[e], "id_number": P[p],
                 "insurance_status": s, "contribution_base": "6800"}
                for i, (e, p, s) in enumerate(COVERAGE)]
        publish_source(c, "insurance_coverage", "rsj", rows, "record_no", theme="insurance",
                       sharing="unconditional", sensitive={"id_number": "id_number"})
        yield c


def test_the_employers_are_located(conn):
    g = golden(conn, "legal_persons")
    assert {k: r["town_code"] for k, r in g.items()} == {E[n]: t for n, t in TOWN.items()}


def test_enterprises_with_employees_but_no_insurance_record_per_town(conn):
    got = {i["indicator"]: i for i in themes.indicators(conn, BUREAU)}
    ind = got["uninsured_employers_per_town"]
    assert ind["theme"] == "insurance" and ind["theme_name"] == "全员足额参保"
    assert {v["code"]: v["n"] for v in ind["values"]} == EXPECTED


def test_an_indicator_needs_every_resource_it_reads(conn):
    # the public sees none of the base libraries: no indicator at all
    assert themes.indicators(conn, ANONYMOUS) == []


def test_demo_coverage_rows_join_both_libraries():
    rng = random.Random(7)
    employers = [uscc(i) for i in range(50)]
    people = [ric(i) for i in range(1, 400, 2)]
    rows = themes.insurance_rows(rng, employers, people)
    assert len({r["record_no"] for r in rows}) == len(rows)  # the key is unique
    assert len({r["id_number"] for r in rows}) == len(rows)  # one employer per person
    assert {r["uscc"] for r in rows} <= set(employers)
    by: dict[str, set[str]] = {}
    for r in rows:
        by.setdefault(r["uscc"], set()).add(r["insurance_status"])
    assert any(s == {themes.NO_INSURANCE} for s in by.values())  # some insure nobody
    assert any(themes.NO_INSURANCE not in s for s in by.values())  # most insure everyone
    assert all(r["contribution_base"] == "0" for r in rows
               if r["insurance_status"] == themes.NO_INSURANCE)
