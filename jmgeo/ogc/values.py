"""Request values of the feature providers, checked before they reach SQL.

A property filter (``?area=12.5``) is cast by PostgreSQL to the column's type and a
keyset ``cursor`` carries the last row's sort key; both come from the client. Refused
here, with a message naming the parameter, is what PostgreSQL would refuse deep in a
query (``bigint out of range``, ``invalid input syntax``) or what psycopg cannot even send
(a JSON object inside a cursor): a 400 that says which parameter and how to fix it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re

from jmgeo.ogc.compat import ProviderInvalidQueryError

INT_RANGES = {"smallint": 2 ** 15, "integer": 2 ** 31, "bigint": 2 ** 63}
FLOAT_TYPES = ("double precision", "real", "numeric")
_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")
_BOOLEANS = {"t", "f", "true", "false", "yes", "no", "on", "off", "1", "0", "y", "n"}
MAX_CURSOR_CHARS = 4096
_CURSOR_MALFORMED = ("参数 cursor 无效 / parameter cursor is malformed: follow the `next` "
                     "link as given")


def _refuse(name: str, zh: str, en: str) -> ProviderInvalidQueryError:
    return ProviderInvalidQueryError(user_msg=f"参数 {name}：{zh} / parameter {name}: {en}")


def check_property_value(name: str, pgtype: str, value: str) -> None:
    """Refuse a filter value the column's type cannot hold (the column's own type, not
    the JSON schema's: a masked column compares as text and is not checked)."""
    base = pgtype.split("(")[0].strip().lower()
    if base in INT_RANGES:
        bound = INT_RANGES[base]
        if not _INT_RE.match(value) or not -bound <= int(value) < bound:
            raise _refuse(name, f"应为整数（{base}）", f"expected an integer ({base}), got "
                          f"{value[:40]!r}")
    elif base in FLOAT_TYPES:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise _refuse(name, "应为有限的数字", f"expected a finite number, got {value[:40]!r}")
    elif base == "boolean":
        if value.strip().lower() not in _BOOLEANS:
            raise _refuse(name, "应为 true 或 false", f"expected true or false, got "
                          f"{value[:40]!r}")
    elif base in ("date", "timestamp with time zone", "timestamp without time zone"):
        try:
            (dt.date if base == "date" else dt.datetime).fromisoformat(value.strip())
        except ValueError:
            raise _refuse(name, "应为 ISO 8601 日期或时间，如 2025-01-31",
                          f"expected an ISO 8601 date or time such as 2025-01-31, got "
                          f"{value[:40]!r}") from None


def _scalar_ok(value) -> bool:
    if value is None or isinstance(value, (bool, str)):
        return not isinstance(value, str) or "\x00" not in value
    if isinstance(value, int):
        return -(2 ** 63) <= value < 2 ** 63
    return isinstance(value, float) and math.isfinite(value)


def decode_cursor(token: str, keys: int | None = None) -> tuple[int, list]:
    """(the layer version, the last row's sort key) of a keyset cursor, or a 400 naming
    ``cursor``: it must be what ``PostGISProvider._next_link`` wrote — a JSON object with
    an integer ``v`` and a list ``k`` of scalars (``keys`` of them when given)."""
    try:
        if len(token) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        data = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise ProviderInvalidQueryError(user_msg=_CURSOR_MALFORMED) from exc
    version = data.get("v") if isinstance(data, dict) else None
    key = data.get("k") if isinstance(data, dict) else None
    if (not isinstance(version, int) or isinstance(version, bool)
            or not 0 <= version < 2 ** 31 or not isinstance(key, list) or not key
            or (keys is not None and len(key) != keys)
            or not all(_scalar_ok(v) for v in key)):
        raise ProviderInvalidQueryError(user_msg=_CURSOR_MALFORMED)
    return version, key
