"""The legal clock (法定答复期限): deadlines in Chinese working days.

国发〔2016〕51号 gives the owner of a conditional resource 10 *working* days to answer a
share request. Working days are not "Monday to Friday": public holidays (春节, 国庆 …) are
days off, and the 调休 make-up days — Saturdays or Sundays the 国务院办公厅 notice turns
into working days — count. The table comes from ``chinese_calendar`` (maintained, updated
each year when the State Council publishes the next year's notice).

For a year the package does not cover yet, :func:`deadline` still answers counting
weekends only, and :func:`calendar_warning` says so in both languages (the API shows it
as ``calendar_warning``): the deadline may then be a few days early or late.

The day of receipt is not counted (day 1 is the first working day *after* it): a request
filed on a Friday with 10 days is due on the Friday two weeks later. A request filed on a
non-working day (a Sunday, a holiday) is received on the next working day and counts from
there, as 《政府信息公开条例》 practice has it ("以次一工作日为收到申请之日"): filed on a
Sunday, received Monday, due on the Monday two weeks later.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime, timedelta

import chinese_calendar

# the day in Jiangmen (layers.localday), offered here beside the working days
from layers.localday import CHINA, local_date, today  # noqa: F401


class CalendarWarning(UserWarning):
    """The official holiday table does not cover a year the deadline spans."""


def _covered(year: int) -> bool:
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def is_working_day(day: date) -> bool:
    """A working day by the official table, or Monday–Friday for a year it lacks."""
    if _covered(day.year):
        return chinese_calendar.is_workday(day)
    return day.weekday() < 5


def covered_years() -> tuple[int, int]:
    """The first and last year the installed holiday table covers."""
    years = [y for y in range(2000, date.today().year + 6) if _covered(y)]
    return years[0], years[-1]


def _warning_for(years: set[int]) -> str | None:
    missing = sorted(y for y in years if not _covered(y))
    if not missing:
        return None
    first, last = covered_years()
    names = ", ".join(str(y) for y in missing)
    return (f"节假日表未覆盖 {names} 年（已安装的 chinese-calendar 覆盖 {first}–{last} 年）："
            f"期限仅按周末计算，可能有偏差，请升级 chinese-calendar / the holiday table does "
            f"not cover {names} (the installed chinese-calendar covers {first}–{last}): the "
            f"deadline counts weekends only and may be off by the holidays — upgrade "
            f"chinese-calendar")


def deadline_and_warning(start: date | datetime, working_days: int) -> tuple[date, str | None]:
    """The last working day to answer, and a warning when the table lacks a year: the
    ``working_days``-th working day after the day of receipt (a filing on a day off is
    received on the next working day)."""
    if working_days <= 0:
        raise ValueError("working_days must be positive")
    day = add_working_days(next_working_day(local_date(start)), working_days)
    return day, calendar_warning(start, day)


def deadline(start: date | datetime, working_days: int) -> date:
    """The last working day to answer a request filed at ``start``: the ``working_days``-th
    working day after the filing day. Emits :class:`CalendarWarning` (and still answers)
    for a year the official table does not cover."""
    day, warning = deadline_and_warning(start, working_days)
    if warning:
        warnings.warn(warning, CalendarWarning, stacklevel=2)
    return day


def calendar_warning(start: date | datetime, end: date) -> str | None:
    """The warning for a deadline from ``start`` to ``end``, or None when covered."""
    first = local_date(start).year
    return _warning_for(set(range(first, end.year + 1)))


def working_days_between(start: date | datetime, end: date | datetime) -> int:
    """How many working days after the receipt of ``start`` and up to ``end`` (inclusive):
    the inverse of :func:`deadline` — an answer on the ``deadline(start, n)`` day took
    ``n`` working days, one on the day of receipt 0. Supervision's answer times."""
    day = local_date(start)
    last = local_date(end)
    while not is_working_day(day) and day < last:  # received on the next working day
        day += timedelta(days=1)
    counted = 0
    while day < last:
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return counted


def next_working_day(day: date) -> date:
    """``day`` itself when it is a working day, else the first working day after it (a
    deadline that falls on a holiday moves to the next working day)."""
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def add_working_days(day: date, n: int) -> date:
    """The ``n``-th working day after ``day`` (``day`` itself not counted)."""
    counted = 0
    while counted < n:
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return day
