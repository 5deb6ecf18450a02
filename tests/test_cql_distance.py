"""DWITHIN / BEYOND: why jmgeo.ogc.cql has no branch for them.

The translator once bound their parameters in the wrong order (distance before
geometry). No request can reach such a branch: pygeoapi parses ``?filter=`` with
pygeofilter's CQL2 text parser and a POST body with its CQL2 JSON parser, and neither
produces ``DistanceWithin`` / ``DistanceBeyond``. So the branch is gone; these tests
hold the reason (they fail when a pygeofilter upgrade starts parsing the distance
operators — then translate them, geometry parameters first) and that a distance node
is refused, not translated wrongly.
"""

from __future__ import annotations

import json

import pytest
from psycopg import sql
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text

from jmgeo.ogc.cql import CQLError, CQLTranslator

POINT = {"type": "Point", "coordinates": [113.08, 22.58]}  # 江门市区 (蓬江区)
ITEMS = "/ogc/collections/regions/items"


def _post(client, body):
    return client.post(ITEMS, params={"f": "json"}, content=json.dumps(body),
                       headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("op", ["s_dwithin", "dwithin", "s_beyond", "beyond"])
def test_cql2_json_has_no_distance_operator(op):
    body = {"op": op, "args": [{"property": "geom"}, POINT, 1000]}
    with pytest.raises(ValueError, match="Unable to parse"):
        parse_cql2_json(body)


@pytest.mark.parametrize("text", [
    "DWITHIN(geom, POINT(113.08 22.58), 1000, meters)",
    "S_DWITHIN(geom, POINT(113.08 22.58), 1000, meters)",
    "BEYOND(geom, POINT(113.08 22.58), 1000, meters)",
])
def test_cql2_text_has_no_distance_operator(text):
    with pytest.raises(Exception):  # noqa: B017 - lark's UnexpectedToken et al.
        parse_cql2_text(text)


def test_a_distance_filter_is_a_400_through_the_api(app_client):
    # control: the same route and point with S_INTERSECTS finds the region it lies in
    ok = _post(app_client, {"op": "s_intersects", "args": [{"property": "geom"}, POINT]})
    assert ok.status_code == 200, ok.text
    codes = {f["id"] for f in ok.json()["features"]}
    assert "440703" in codes  # 蓬江区
    for op in ("s_dwithin", "s_beyond"):
        r = _post(app_client, {"op": op, "args": [{"property": "geom"}, POINT, 1000]})
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "InvalidParameterValue"
    r = app_client.get(ITEMS, params={"f": "json", "filter":
                                      "DWITHIN(geom, POINT(22.58 113.08), 1000, meters)"})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("cls", [ast.DistanceWithin, ast.DistanceBeyond])
def test_the_translator_refuses_a_distance_node(cls):
    node = cls(ast.Attribute("geom"), values.Geometry(POINT), 1000, "meters")
    tr = CQLTranslator(lambda name: sql.Identifier(name), sql.Identifier("geom"))
    with pytest.raises(CQLError, match="unsupported filter construct"):
        tr(node)
    assert tr.params == []
