"""The serving path's JSON (``jmgeo.jsonfast``) gives the standard library's values for
every input — orjson where it can, ``json`` for what orjson refuses — through the
platform's real connection pool and pygeoapi's patched ``to_json``."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pytest

from jmgeo import jsonfast

AWKWARD = [
    '{"n": 123456789012345678901234567890}',          # beyond 64 bits: a numeric(30)
    '{"s": "\\ud800 lone surrogate"}',                  # PostgreSQL's json keeps it
    '{"a": 1, "a": 2}',                                 # duplicate keys: the last wins
    '{"zh": "江门市蓬江区", "f": 1.5e-7, "big": 1e300, "neg": -0.0}',
    '{"id": "440703199001011234567", "f": 0.12345678901234567890123}',
    '{"inf": 1e400}', '[' * 900 + ']' * 900, '[]', '"text"', 'null',
]


@pytest.mark.parametrize("text", AWKWARD)
def test_loads_gives_the_standard_librarys_value(text):
    assert repr(jsonfast.loads(text)) == repr(json.loads(text))
    assert repr(jsonfast.loads(text.encode())) == repr(json.loads(text))


@pytest.mark.parametrize("value", [
    {"n": 123456789012345678901234567890}, {1: "int key", None: "none key"},
    {"when": dt.datetime(2026, 12, 2, 8, 30, tzinfo=dt.UTC), "day": dt.date(2026, 12, 2)},
    {"zh": "宗地<边界>", "list": [1, 2.5, True, None]},
])
def test_to_json_is_the_same_json(value):
    from jmgeo.ogc.compat import itemtypes_api, to_json
    from jmgeo.ogc.patches import apply

    apply()
    assert json.loads(itemtypes_api.to_json(value)) == json.loads(to_json(value))


def test_pygeoapi_to_json_same_value_same_escaping():
    from jmgeo.ogc.compat import itemtypes_api, json_serial, to_json
    from jmgeo.ogc.patches import apply

    apply()
    fast = itemtypes_api.to_json
    assert fast is not to_json
    value = {"name": "<b>江门</b>", "n": 10 ** 30, "d": decimal.Decimal("1.25"),
             "t": dt.datetime(2026, 1, 5, 9, 0), "nested": [{"x": 1}]}
    assert json.loads(fast(value)) == json.loads(to_json(value))
    assert "&lt;b&gt;" in fast(value) and "<" not in fast(value)
    assert fast({"t": dt.date(2026, 1, 5)}) == '{"t":"2026-01-05"}'
    assert json_serial(dt.date(2026, 1, 5)) == "2026-01-05"
    assert fast(value, True) == to_json(value, True)  # pretty output: pygeoapi's own


def test_json_columns_through_the_platforms_pool(database_url, monkeypatch):
    from jmgeo import db, settings

    monkeypatch.setenv("DATABASE_URL", database_url)
    settings.reset_settings()
    try:
        with db.connection() as conn:
            row = conn.execute(
                "SELECT '{\"n\": 123456789012345678901234567890, \"zh\": \"台山\"}'::json AS a,"
                " json_build_object('f', 0.1::float8, 'k', 'x') AS b, "
                "'[1, {\"d\": null}]'::jsonb AS c").fetchone()
    finally:
        settings.reset_settings()
    assert row["a"] == {"n": 123456789012345678901234567890, "zh": "台山"}
    assert row["b"] == {"f": 0.1, "k": "x"} and row["c"] == [1, {"d": None}]
