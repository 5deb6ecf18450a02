"""Checks of what a request asks and an answer gives: fields, regions, periods.

Each raises :class:`exchange.errors.Invalid` (422) with a bilingual message naming the
bad value and the valid ones; nothing is written before they pass.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from exchange import store
from exchange.errors import Invalid
from jmgeo.errors import bilingual
from layers.grants import layer_fields


def regions_ok(conn) -> set[str]:
    return {r["code"] for r in store.q(conn,
            "SELECT DISTINCT r.code FROM region r JOIN region_part p ON p.region_id = r.id "
            "WHERE r.valid_to IS NULL")}


def clean_fields(conn, resource: str, fields: list[str] | None) -> list[str] | None:
    if fields is None:
        return None
    fields = list(dict.fromkeys(f.strip() for f in fields if f and f.strip()))
    known = layer_fields(conn, resource)
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise Invalid(bilingual(
            f"资源 {resource} 没有字段 {', '.join(unknown)}；可用字段：{', '.join(known)}",
            f"resource {resource!r} has no field {', '.join(map(repr, unknown))}; its fields "
            f"are {', '.join(known)}"))
    if not fields:
        raise Invalid(bilingual("字段列表为空", "the field list is empty: omit it for all fields"))
    return fields


def clean_regions(conn, res: dict[str, Any], regions: list[str] | None) -> list[str] | None:
    if regions is None:
        return None
    if res["kind"] == "table":
        raise Invalid(bilingual(
            f"{res['name']} 是数据表，没有几何，不能按区域申请：请去掉区域，或以字段限定",
            f"{res['name']!r} is a table without geometry: its rows cannot be limited by "
            "region — drop the regions (limit it by fields instead)"))
    regions = list(dict.fromkeys(r.strip() for r in regions if r and r.strip()))
    known = regions_ok(conn)
    bad = [r for r in regions if r not in known]
    if bad or not regions:
        raise Invalid(bilingual(
            f"区划代码不在江门市范围内：{', '.join(bad) or '（空）'}；可用：{', '.join(sorted(known))}",
            f"region code(s) {', '.join(bad) or '(none)'} are not regions of Jiangmen; use "
            f"one of {', '.join(sorted(known))}"))
    return regions


def check_period(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and end <= start:
        raise Invalid(bilingual(f"期限结束（{end}）应晚于开始（{start}）",
                                f"the period ends ({end}) before or when it starts ({start})"))


def within(asked: list[str] | None, given: list[str] | None, what: str) -> bool:
    """Is ``given`` within ``asked`` (None = everything)? True when it is narrower."""
    if given is None:
        if asked is not None:
            raise Invalid(bilingual(f"答复不能超出申请的{what}", f"an answer cannot give more "
                                    f"{what} than asked ({', '.join(asked)})"))
        return False
    if asked is not None and not set(given) <= set(asked):
        extra = sorted(set(given) - set(asked))
        raise Invalid(bilingual(f"答复超出申请的{what}：{', '.join(extra)}",
                                f"an answer cannot give {what} not asked for: {', '.join(extra)}"))
    return asked is None or set(given) != set(asked)
