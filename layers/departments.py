"""Departments (部门) and their 统一社会信用代码 (unified social credit code, GB 32100-2015).

The code is 18 characters: registration authority (1), organisation type (1), the
registration region's admin code (6), the organisation code (9, GB 11714, with its own
check digit) and a check character computed over the first 17 with weights 3^i mod 31.
"""

from __future__ import annotations

from typing import Any

from jmgeo.errors import UserError

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, S, V, Z
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
ORG_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class InvalidUSCC(UserError, ValueError):
    """A 统一社会信用代码 that fails its format or check characters."""


def uscc_check_char(first17: str) -> str:
    total = sum(USCC_CHARSET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def org_check_char(first8: str) -> str:
    total = sum(ORG_CHARSET.index(c) * w for c, w in zip(first8, ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def validate_uscc(code: str) -> str:
    """Return the normalised code or raise InvalidUSCC saying what is wrong and how to fix it."""
    norm = code.strip().upper()
    if len(norm) != 18:
        raise InvalidUSCC(f"统一社会信用代码应为18位 / the USCC {code!r} must have 18 characters "
                          f"(it has {len(norm)})")
    bad = [c for c in norm if c not in USCC_CHARSET]
    if bad:
        raise InvalidUSCC(f"统一社会信用代码含非法字符 / the USCC {code!r} contains "
                          f"{''.join(sorted(set(bad)))!r} (I, O, S, V, Z are never used)")
    if not norm[2:8].isdigit():
        raise InvalidUSCC(f"统一社会信用代码第3–8位应为行政区划码 / characters 3–8 of {code!r} "
                          "must be the registering region's 6-digit code")
    if all(c in ORG_CHARSET for c in norm[8:16]) and org_check_char(norm[8:16]) != norm[16]:
        raise InvalidUSCC(f"组织机构代码校验位错误 / the organisation-code check digit of {code!r} "
                          f"is {norm[16]!r}, expected {org_check_char(norm[8:16])!r}")
    expected = uscc_check_char(norm[:17])
    if norm[17] != expected:
        raise InvalidUSCC(f"统一社会信用代码校验码错误 / the check character of {code!r} is "
                          f"{norm[17]!r}, expected {expected!r}: check for a typo")
    return norm


def make_uscc(prefix: str, region: str, org8: str) -> str:
    """Build a valid code from its parts (used for demo departments and tests)."""
    first17 = prefix + region + org8 + org_check_char(org8)
    return first17 + uscc_check_char(first17)


# Demo departments of the 2017 work plan (names as the plan uses them). Codes are
# generated with valid check characters; they are not the real organisations' codes.
DEMO_DEPARTMENTS: list[dict[str, Any]] = [
    {"code": "gtzy", "name": "江门市国土资源局", "uscc": make_uscc("11", "440700", "00701001")},
    {"code": "sw", "name": "江门市水务局", "uscc": make_uscc("11", "440700", "00701002")},
    {"code": "jt", "name": "江门市交通运输局", "uscc": make_uscc("11", "440700", "00701003")},
    {"code": "rf", "name": "江门市人民防空办公室", "uscc": make_uscc("11", "440700", "00701004")},
    {"code": "gh", "name": "江门市城乡规划局", "uscc": make_uscc("11", "440700", "00701005")},
    {"code": "hb", "name": "江门市环境保护局", "uscc": make_uscc("11", "440700", "00701006")},
    {"code": "wxtc", "name": "江门市网信统筹局", "uscc": make_uscc("11", "440700", "00701007")},
    {"code": "scjg", "name": "江门市市场监督管理局", "uscc": make_uscc("11", "440700", "00701009")},
]


def ensure_departments(conn, departments: list[dict[str, Any]] = DEMO_DEPARTMENTS) -> int:
    """Insert the given departments if absent (idempotent); returns how many exist."""
    for d in departments:
        conn.execute(
            "INSERT INTO department (code, name, uscc) VALUES (%s, %s, %s) "
            "ON CONFLICT (code) DO NOTHING", (d["code"], d["name"], validate_uscc(d["uscc"])))
    return len(departments)
