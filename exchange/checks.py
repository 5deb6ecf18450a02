"""Checks of what a request asks and an answer gives: fields, regions, periods.

Each raises :class:`exchange.errors.Invalid` (422) with a bilingual message naming the
bad value and the valid ones; nothing is written before they pass.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from exchange.errors import Invalid
from jmgeo.errors import bilingual
from layers.grants import GrantError, check_fields, check_regions


def clean_fields(conn, resource: str, fields: list[str] | None) -> list[str] | None:
    """``layers.grants.check_fields`` — the grants' own rule — answered as a 422."""
    try:
        return check_fields(conn, resource, fields)
    except GrantError as exc:
        raise Invalid(str(exc)) from exc


def clean_regions(conn, res: dict[str, Any], regions: list[str] | None) -> list[str] | None:
    """``layers.grants.check_regions`` — the grants' own rule — answered as a 422."""
    try:
        return check_regions(conn, res["name"], res["kind"], regions)
    except GrantError as exc:
        raise Invalid(str(exc)) from exc


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
