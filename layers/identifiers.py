"""Identifiers of the base libraries: 公民身份号码 (GB 11643) and 统一社会信用代码 (GB 32100).

Validation uses ``python-stdnum`` (the check characters of ``stdnum.cn.ric`` and
``stdnum.cn.uscc``, and its region table ``cn/loc``), a maintained library, not
hand-written check digits. Its ``compact``/``validate`` are not called on the hot path:
:func:`half_width` already does what ``compact`` does (and full-width too), and a second
compact per key costs more than the check itself at a million keys. What the platform
adds around it, and why:

* **normalise** first — full-width characters to half-width (NFKC: ``４４０７…Ｘ``), spaces
  and hyphens out, a lower-case ``x`` up; a 15-digit first-generation number is upgraded to
  18 digits (century ``19`` inserted, check character computed), as the public security
  bureaux did in 1999–2004;
* **refuse** (``ok=False``, with the reason in Chinese and English) a wrong length, a
  non-digit, a wrong check character, an impossible birth date, an unknown region code;
* **warn** but accept a *historical* region code (a county retired since, e.g. 440722
  台山县 until 1992): the number stays valid for life. ``stdnum``'s own ``validate``
  refuses a code not in force in the birth year, which refuses everyone born in 蓬江区
  (440703, from 1994) before 1994 who was issued a number later — so the region is read
  here from the same table with that rule relaxed;
* the USCC's embedded organisation code (GB 11714, characters 9–17) has its own check
  character; ``stdnum`` does not check it, and codes issued from old organisation codes
  sometimes fail it, so a mismatch is a **warning**, never a refusal.

An identifier that fails is never dropped or merged: the integration quarantines its
record with :attr:`KeyCheck.reason` (``baselib.integrate``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date
from functools import cache

from stdnum import numdb
from stdnum.cn import ric, uscc

from jmgeo.errors import bilingual

KINDS = ("ric", "uscc")
# GB 32100 alphabet and weights, as stdnum.cn.uscc has them (re-exported for array code)
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, S, V, Z
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# GB 11714 organisation code: 8 characters and a check character (not in stdnum)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
ORG_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class KeyCheck:
    """The verdict on one raw identifier: the normalised value (``None`` when it cannot be
    normalised), whether it is valid, why not, and warnings that do not refuse it."""

    raw: str | None
    value: str | None
    ok: bool
    reason: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def half_width(text: str) -> str:
    """Full-width to half-width (NFKC), separators out, upper case."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if c not in " \t\r\n-_.　").upper()


def org_check_char(first8: str) -> str:
    """GB 11714 check character of an organisation code's first 8 characters."""
    total = sum(ORG_CHARSET.index(c) * w for c, w in zip(first8, ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def ric_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character (stdnum's, which reads all but the last)."""
    return ric.calc_check_digit(first17 + "0")


def upgrade15(number: str) -> str:
    """A 15-digit first-generation number as 18 digits (``19`` century, check character)."""
    first17 = number[:6] + "19" + number[6:15]
    return first17 + ric_check_char(first17)


@cache
def region_status(code: str) -> tuple[str, str | None]:
    """``('current' | 'historical' | 'unknown', name)`` of a 6-digit region code by the
    stdnum region table (years in brackets: ``[1983-1992]台山县`` is historical)."""
    info = {k: v for _part, props in numdb.get("cn/loc").info(code) for k, v in props.items()}
    county = info.get("county")
    if not county:
        return "unknown", None
    names = county.split(",")
    for name in names:
        if not name.startswith("[") or name.split("]", 1)[0].endswith("-"):
            return "current", name.split("]", 1)[-1]
    return "historical", names[-1].split("]", 1)[-1]


def _fail(raw: str | None, value: str | None, zh: str, en: str) -> KeyCheck:
    return KeyCheck(raw, value, False, bilingual(zh, en))


def check_ric(raw: str | None, *, today: date | None = None) -> KeyCheck:
    """Normalise and validate a 公民身份号码 (see the module docstring)."""
    if raw is None or not str(raw).strip():
        return _fail(raw, None, "身份证号为空", "the ID number is empty")
    number = half_width(str(raw))  # what ric.compact does, and full-width too
    warnings: list[str] = []
    if len(number) == 15 and number.isdigit():
        number = upgrade15(number)
        warnings.append(bilingual("15位身份证号已升为18位", "15-digit ID number upgraded to 18"))
    if len(number) != 18:
        return _fail(raw, number, f"身份证号应为18位（或15位），实为{len(number)}位",
                     f"an ID number has 18 (or 15) characters, not {len(number)}")
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        return _fail(raw, number, "身份证号含非法字符（前17位应为数字，末位为数字或X）",
                     "an ID number is 17 digits and a digit or X")
    expected = ric_check_char(number[:17])
    if number[17] != expected:
        return _fail(raw, number, f"身份证号校验码错误：末位为{number[17]}，应为{expected}",
                     f"wrong check character {number[17]!r}, expected {expected!r}: a typo?")
    try:  # ric.get_birth_date, without compacting the number a second time
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return _fail(raw, number, f"身份证号中的出生日期 {number[6:14]} 不存在",
                     f"the birth date {number[6:14]} in the ID number does not exist")
    if born.year < 1880 or (born.year >= 2000 and born > (today or date.today())):
        return _fail(raw, number, f"身份证号中的出生日期 {born} 不合理",
                     f"the birth date {born} in the ID number is impossible")
    status, name = region_status(number[:6])
    if status == "unknown":
        return _fail(raw, number, f"身份证号中的行政区划代码 {number[:6]} 不存在",
                     f"unknown region code {number[:6]} in the ID number")
    if status == "historical":
        warnings.append(bilingual(f"行政区划代码 {number[:6]}（{name}）已撤销，号码仍有效",
                                  f"historical region code {number[:6]} ({name}): the number "
                                  "stays valid"))
    return KeyCheck(raw, number, True, None, tuple(warnings))


def check_uscc(raw: str | None) -> KeyCheck:
    """Normalise and validate a 统一社会信用代码 (see the module docstring)."""
    if raw is None or not str(raw).strip():
        return _fail(raw, None, "统一社会信用代码为空", "the USCC is empty")
    code = half_width(str(raw))  # what uscc.compact does, and full-width too
    if len(code) != 18:
        return _fail(raw, code, f"统一社会信用代码应为18位，实为{len(code)}位",
                     f"a USCC has 18 characters, not {len(code)}")
    bad = sorted({c for c in code if c not in USCC_CHARSET})
    if bad:
        return _fail(raw, code, f"统一社会信用代码含非法字符 {''.join(bad)}（不用 I、O、S、V、Z）",
                     f"the USCC contains {''.join(bad)!r} (I, O, S, V, Z are never used)")
    if not code[:8].isdigit():
        return _fail(raw, code, "统一社会信用代码第1–8位应为数字（登记管理部门、机构类别、行政区划码）",
                     "characters 1–8 of a USCC are digits (authority, type, region code)")
    expected = uscc.calc_check_digit(code)  # length and alphabet are checked above
    if code[17] != expected:
        return _fail(raw, code, f"统一社会信用代码校验码错误：末位为{code[17]}，应为{expected}",
                     f"wrong check character {code[17]!r}, expected {expected!r}: a typo?")
    warnings: list[str] = []
    if region_status(code[2:8])[0] == "unknown" and code[2:8] != "100000":
        warnings.append(bilingual(f"登记行政区划码 {code[2:8]} 未知", f"unknown registration "
                                  f"region {code[2:8]}"))
    org = code[8:17]
    if all(c in ORG_CHARSET for c in org[:8]) and org_check_char(org[:8]) != org[8]:
        warnings.append(bilingual(
            f"内含组织机构代码校验位为{org[8]}，应为{org_check_char(org[:8])}",
            f"the embedded organisation code's check character is {org[8]!r}, expected "
            f"{org_check_char(org[:8])!r}"))
    return KeyCheck(raw, code, True, None, tuple(warnings))


def check(kind: str, raw: str | None) -> KeyCheck:
    """:func:`check_ric` or :func:`check_uscc` by key kind."""
    if kind == "ric":
        return check_ric(raw)
    if kind == "uscc":
        return check_uscc(raw)
    raise ValueError(f"unknown key kind {kind!r}")


def make_uscc(prefix: str, region: str, org8: str) -> str:
    """A valid code from its parts (demo departments, generators, tests)."""
    first17 = prefix + region + org8 + org_check_char(org8)
    return first17 + uscc.calc_check_digit(first17 + "0")


def make_ric(region: str, born: date, seq: int) -> str:
    """A valid 18-digit ID number (generators and tests; ``seq`` odd = male)."""
    first17 = f"{region}{born:%Y%m%d}{seq % 1000:03d}"
    return first17 + ric_check_char(first17)
