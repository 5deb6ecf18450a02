"""The serving path's JSON (``jmgeo.jsonfast``) gives the standard library's values for
every input — orjson where it can, ``json`` for what orjson refuses — through the
platform's real connection pool and pygeoapi's patched ``to_json``."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import random

import pytest

from jmgeo import jsonfast

AWKWARD = [
    '{"n": 123456789012345678901234567890}',          # beyond 64 bits: a numeric(30)
    '{"s": "\\ud800 lone surrogate"}',                  # PostgreSQL's json keeps it
    '{"a": 1, "a": 2}',                                 # duplicate keys: the last wins
    '{"zh": "江门市蓬江区", "f": 1.5e-7, "big": 1e300, "neg": -0.0}',
    '{"id": "440703199001011234567", "f": 0.12345678901234567890123}',
    '{"inf": 1e400}', '[' * 900 + ']' * 900, '[]', '"text"', 'null',
    '123456789012345678901234567890', ' -12345678901234567890', '[\n\t12345678901234567890]',
    '{"a":\r\n-0.000012345678901234567891}', '[1,2.5e1234567890123456789]',
    '{"zddm": "4407050000000259934", "n": 12345678901234567890123}',
]


def _number_texts(rnd: random.Random) -> str:
    """A JSON text with numbers of 1-30 digits (integers, long fractions, exponents) in
    every position a number token can take, beside strings full of digits."""
    def num() -> str:
        digits = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 30)))
        digits = digits.lstrip("0") or "0"
        kind = rnd.randrange(4)
        text = {0: digits, 1: f"0.{digits}", 2: f"{digits[:1]}.{digits[1:] or '0'}e-5",
                3: f"{digits}.5"}[kind]
        return ("-" if rnd.random() < 0.3 else "") + text
    ws = ["", " ", "\n", "\t", "\r\n  "]
    items = [num() if rnd.random() < 0.6 else json.dumps(
        "".join(rnd.choice("0123456789,: ") for _ in range(rnd.randint(0, 25))))
        for _ in range(rnd.randint(1, 6))]
    if rnd.random() < 0.5:
        return "[" + ",".join(rnd.choice(ws) + i + rnd.choice(ws) for i in items) + "]"
    return "{" + ",".join(f'"k{n}"' + rnd.choice(ws) + ":" + rnd.choice(ws) + i
                         for n, i in enumerate(items)) + "}"


def test_loads_gives_the_standard_librarys_value_for_every_number_position():
    rnd = random.Random(16)
    for _ in range(3000):
        text = _number_texts(rnd)
        assert repr(jsonfast.loads(text)) == repr(json.loads(text)), text
        assert repr(jsonfast.loads(text.encode())) == repr(json.loads(text)), text


def test_a_19_digit_code_in_a_string_keeps_the_fast_path(monkeypatch):
    """A 宗地代码 is 19 digits: held as text it is no number, and every parcel row must not
    fall to the standard library's decoder for it (a third of the row's decode time)."""
    row = '{"zddm": "4407050000000259934", "qlr": "张三", "zdmj": 6864.62, "fid": 7}'
    monkeypatch.setattr(jsonfast.json, "loads", lambda *_a, **_k: pytest.fail("slow path"))
    assert jsonfast.loads(row) == {"zddm": "4407050000000259934", "qlr": "张三",
                                   "zdmj": 6864.62, "fid": 7}
    assert jsonfast.loads(row.encode())["zddm"] == "4407050000000259934"


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
