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
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads

# orjson reads an integer beyond 64 bits as a float, silently (a numeric(30) column's
# 123456789012345678901234567890 would come back 1.2345678901234568e+29): any number token
# with a run of 19 or more digits is left to the standard library (long decimals too, only
# to be safe: orjson rounded 300,000 random ones as the standard library does). A run
# inside a string is no number: a 19-digit 宗地代码 held as text sent every parcel row to
# the slow path. Found without a regular expression — a regex scan of a geometry's digits
# cost more than decoding it: each byte is mapped to its class (digit, number character,
# what may precede a number: ``[ : ,`` or whitespace, anything else) in one ``translate``,
# then each run of 19 digits is walked back to the token it belongs to.
_CLASS = bytearray(b"x" * 256)
for _c in b"0123456789":
    _CLASS[_c] = ord("0")
for _c in b".eE+-":
    _CLASS[_c] = ord("n")
for _c in b"[:, \t\n\r":
    _CLASS[_c] = ord("s")
_CLASS = bytes(_CLASS)
_RUN = b"0" * 19


def has_long_number(data: str | bytes | bytearray | memoryview) -> bool:
    """Whether the JSON text holds a number token with 19 or more digits in a row.

    A token starts the text or follows ``[``, ``:``, ``,`` or whitespace; walking back
    over digits and ``.eE+-`` from a run reaches that character if the run is in a
    number. Text in a string that looks like one (``", 1234567890123456789"``) also
    counts: slower then, never different."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    cls = bytes(data).translate(_CLASS)
    pos = cls.find(_RUN)
    while pos != -1:
        j = pos - 1
        while j >= 0 and cls[j] in b"0n":
            j -= 1
        if j < 0 or cls[j] == 0x73:             # "s": the text's start or a separator
            return True
        pos = cls.find(_RUN, pos + 19)
    return False


def loads(data: str | bytes) -> Any:
    """``json.loads``'s value, via orjson when it reads the text the same way."""
    if not has_long_number(data):
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
