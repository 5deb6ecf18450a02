"""JSON in and out of the serving path with orjson, with the standard library's answers.

Why: profiling `jmgeo serve` under load (py-spy, GIL samples, bbox items of 100 parcels)
put a third of the request's Python time in JSON — psycopg decoding every feature's
``json`` geometry and properties with ``json.loads``, and pygeoapi's ``to_json``
re-encoding the whole collection with ``json.dumps`` (ASCII-escaping every Chinese
character). orjson does both several times faster. It is a drop-in only where it gives
the same JSON: whatever it refuses — an integer beyond 64 bits (a ``numeric(30)`` column),
a lone surrogate, a key that is not a string — goes to the standard library, so no input
answers differently, only faster (``tests/test_jsonfast.py``). Text stays UTF-8 rather
than ``\\uXXXX`` escapes (the same JSON to every parser).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads

# orjson reads an integer beyond 64 bits as a float, silently (a numeric(30) column's
# 123456789012345678901234567890 would come back 1.2345678901234568e+29): any run of 19
# or more digits — such an integer, or a long decimal — is left to the standard library
_LONG_DIGITS = re.compile(r"\d{19,}")
_LONG_DIGITS_B = re.compile(rb"\d{19,}")


def loads(data: str | bytes) -> Any:
    """``json.loads``'s value, via orjson when it reads the text the same way."""
    long_digits = _LONG_DIGITS_B if isinstance(data, bytes | bytearray | memoryview) \
        else _LONG_DIGITS
    if long_digits.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:  # a lone surrogate, 1e400, very deep nesting …
            pass
    return json.loads(data)


def use_for_json_columns(conn: psycopg.Connection) -> None:
    """A pool's ``configure`` hook: this connection's json/jsonb values decoded by
    :func:`loads`."""
    set_json_loads(loads, conn)


def fast_to_json(original: Callable[..., str], serial: Callable[[Any], Any]
                 ) -> Callable[..., str]:
    """pygeoapi's ``to_json`` (compact dump, then ``<``/``>`` escaped), via orjson;
    ``original`` for pretty output and for whatever orjson refuses. ``serial`` is
    pygeoapi's ``default`` hook (dates, decimals …), also used for datetimes so they
    are written exactly as before."""
    option = orjson.OPT_PASSTHROUGH_DATETIME

    def to_json(dict_: Any, pretty: bool = False) -> str:
        if pretty:
            return original(dict_, pretty)
        try:
            text = orjson.dumps(dict_, default=serial, option=option).decode()
        except TypeError:  # orjson.JSONEncodeError too: a big int, a non-str key …
            return original(dict_, pretty)
        return text.replace("<", "&lt;").replace(">", "&gt;")

    return to_json
