"""Departments (部门) and their 统一社会信用代码 (unified social credit code, GB 32100-2015).

The code is 18 characters: registration authority (1), organisation type (1), the
registration region's admin code (6), the organisation code (9, GB 11714, with its own
check digit) and a check character computed over the first 17 with weights 3^i mod 31.
The checks are ``python-stdnum``'s (``stdnum.cn.uscc``) through ``layers.identifiers``,
the one place identifiers are normalised and validated; a department's own code is
refused on any error there (a wrong embedded organisation-code check digit is a warning
in the base libraries, where old codes must still be integrated, but a department the
platform registers must have a clean code).
"""

from __future__ import annotations

from typing import Any

from jmgeo.errors import UserError
from layers.identifiers import (  # noqa: F401 - re-exported (tests compute codes in arrays)
    ORG_CHARSET,
    ORG_WEIGHTS,
    USCC_CHARSET,
    USCC_WEIGHTS,
    check_uscc,
    make_uscc,
    org_check_char,
)


class InvalidUSCC(UserError, ValueError):
    """A 统一社会信用代码 that fails its format or check characters."""


def validate_uscc(code: str) -> str:
    """Return the normalised code or raise InvalidUSCC saying what is wrong and how to fix it."""
    verdict = check_uscc(code)
    if not verdict.ok:
        raise InvalidUSCC(f"{verdict.reason} ({code!r})")
    if verdict.warnings:  # an organisation-code mismatch: refused for a department
        raise InvalidUSCC(f"{verdict.warnings[0]} ({code!r})")
    return verdict.value or code


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
