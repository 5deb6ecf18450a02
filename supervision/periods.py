"""A supervision period: a month (``2026-11``), a quarter (``2026Q4``) or a year (``2026``).

Days are China's calendar days; a period is ``[start, end)``. A period not yet over is
reported *as of* today (its figures say so); one that has not begun is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from exchange import clock
from exchange.errors import Conflict, Forbidden, Invalid, NotFound
from jmgeo.errors import bilingual

# the errors of a supervision action are the exchange's (one status-coded family:
# 422 invalid, 403 forbidden, 404 not found, 409 conflict — jmgeo.http maps ``status``)
__all__ = ["Conflict", "Forbidden", "Invalid", "NotFound", "Period", "current_quarter",
           "parse_period", "previous_month"]


_FORMS = (r"(?P<y>\d{4})", r"(?P<y>\d{4})-?[Qq](?P<q>[1-4])", r"(?P<y>\d{4})-(?P<m>\d{1,2})")


@dataclass(frozen=True)
class Period:
    """One reporting period and the day its figures are taken at."""

    label: str  # 2026, 2026Q4, 2026-11
    kind: str  # year | quarter | month
    start: date
    end: date  # exclusive
    as_of: date  # the last day counted: end - 1, or today while the period runs

    @property
    def complete(self) -> bool:
        return self.as_of >= date.fromordinal(self.end.toordinal() - 1)

    @property
    def zh(self) -> str:
        y = self.start.year
        if self.kind == "year":
            return f"{y}年"
        if self.kind == "quarter":
            return f"{y}年第{'一二三四'[(self.start.month - 1) // 3]}季度"
        return f"{y}年{self.start.month}月"

    @property
    def last_day(self) -> date:
        return date.fromordinal(self.end.toordinal() - 1)

    def contains(self, moment: date | datetime | None) -> bool:
        """Is this day (or time, taken in China) inside the period, up to ``as_of``?"""
        if moment is None:
            return False
        day = clock.local_date(moment)
        return self.start <= day <= self.as_of


def _bad(text: str) -> Invalid:
    return Invalid(bilingual(
        f"统计期 {text!r} 格式错误，应为年（2026）、季度（2026Q4）或月（2026-11）",
        f"period {text!r} is malformed: give a year (2026), a quarter (2026Q4) or a month "
        "(2026-11)"))


def parse_period(text: str | None, today: date | None = None) -> Period:
    """The period named by ``text``; :class:`Invalid` for a malformed or future one."""
    raw = (text or "").strip()
    today = today or clock.local_date(datetime.now(clock.CHINA))
    for form in _FORMS:
        m = re.fullmatch(form, raw)
        if m:
            break
    else:
        raise _bad(raw)
    y = int(m["y"])
    if y < 2000:
        raise _bad(raw)
    gd = m.groupdict()
    if gd.get("q"):
        q = int(gd["q"])
        start, kind, label = date(y, 3 * q - 2, 1), "quarter", f"{y}Q{q}"
        end = date(y + 1, 1, 1) if q == 4 else date(y, 3 * q + 1, 1)
    elif gd.get("m"):
        mo = int(gd["m"])
        if not 1 <= mo <= 12:
            raise _bad(raw)
        start, kind, label = date(y, mo, 1), "month", f"{y}-{mo:02d}"
        end = date(y + 1, 1, 1) if mo == 12 else date(y, mo + 1, 1)
    else:
        start, end, kind, label = date(y, 1, 1), date(y + 1, 1, 1), "year", str(y)
    if start > today:
        raise Invalid(bilingual(
            f"统计期 {label} 尚未开始（今天是 {today:%Y-%m-%d}），不能出具通报",
            f"period {label} has not begun (today is {today}): choose a past or the "
            "current period"))
    last = date.fromordinal(end.toordinal() - 1)
    return Period(label, kind, start, end, min(last, today))


def current_quarter(today: date | None = None) -> str:
    """The label of the quarter ``today`` is in (what the demo reports)."""
    today = today or clock.local_date(datetime.now(clock.CHINA))
    return f"{today.year}Q{(today.month - 1) // 3 + 1}"


def previous_month(today: date | None = None) -> str:
    """The label of the month before ``today``'s (what the monthly job files)."""
    today = today or clock.local_date(datetime.now(clock.CHINA))
    y, m = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{y}-{m:02d}"
