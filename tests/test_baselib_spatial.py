"""Spatial link of persons (issue 15 §5): a person's address (住址) → town and county codes
of the framework, so "how many persons per town" is a region statistic; the codes are
part of a private address and masked like it."""

from __future__ import annotations

import psycopg
import pytest
from baselib_fixtures import golden, reset_sources, ric, setup

from baselib import libraries, spatial_link
from baselib.demo import publish_source
from baselib.integrate import integrate

ADDRESSES = [  # (address, town code, county code) — what each must locate to
    ("江门市蓬江区棠下镇建设路1号", "440703101", "440703"),       # the register's form
    ("广东省江门市蓬江区棠下镇港口路2号", "440703101", "440703"),  # with the province
    ("蓬江区荷塘镇育德街3号", "440703102", "440703"),             # without the city
    ("江门市新会区会城街道胜利路4号", "440705001", "440705"),      # a street (街道)
    ("台山市台城街道江华路5号", "440781001", "440781"),
    ("恩城街道白石大道6号", "440785001", "440785"),              # no county: by the town
    ("江门市台山市某村7号", None, "440781"),                     # no town: the county only
    ("某省某市某路8号", None, None),                             # neither: unlocated
    (None, None, None),                                          # no address at all
]


@pytest.fixture(scope="module")
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as c:
        setup(c)
        reset_sources(c, "persons")
        rows = [{"sfzh": ric(200 + 2 * i), "xm": f"测试{i}", "zz": a}
                for i, (a, _, _) in enumerate(ADDRESSES)]
        publish_source(c, "tbsp_gaj", "gaj", rows, "sfzh")
        libraries.add_source(c, "persons", "tbsp_gaj", "sfzh", {"name": "xm", "address": "zz"})
        yield c


def test_persons_addresses_located_in_the_framework(conn):
    report = integrate(conn, "persons", by="test")
    assert report["located"] == {"town": 6, "county_only": 1, "unlocated": 2}
    g = golden(conn, "persons")
    for i, (_, town, county) in enumerate(ADDRESSES):
        r = g[ric(200 + 2 * i)]
        assert (r["town_code"], r["county_code"]) == (town, county), ADDRESSES[i]


def test_persons_per_town_is_a_region_statistic(conn):
    table = conn.execute("SELECT v.table_name FROM layer l JOIN layer_version v ON "
                         "v.layer_id = l.id AND v.version = l.current_version WHERE "
                         "l.name = 'persons'").fetchone()[0]
    towns = {(r["code"], r["name"]): r["n"] for r in spatial_link.per_region(conn, table)}
    assert towns == {("440703101", "棠下镇"): 2, ("440703102", "荷塘镇"): 1,
                     ("440705001", "会城街道"): 1, ("440781001", "台城街道"): 1,
                     ("440785001", "恩城街道"): 1, (None, None): 3}
    counties = {r["code"]: r["n"] for r in spatial_link.per_region(conn, table, "county")}
    assert counties == {"440703": 3, "440705": 1, "440781": 2, "440785": 1, None: 2}


def test_a_persons_codes_are_masked_like_the_address():
    lib = libraries.LIBRARIES["persons"]
    assert lib.sensitive["town_code"] == lib.sensitive["county_code"] == \
        lib.sensitive["address"] == "full"
    assert {"town_code", "county_code"} <= set(lib.derived)
