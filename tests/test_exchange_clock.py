"""The legal clock: 10 working days across 国庆 and 春节, with 调休 make-up days.

The expected working days are written out here from the State Council notices
(国办发明电〔2024〕12号 for 2025, 国办发明电〔2025〕7号 for 2026), independently of the
package, and every day of both years is compared with the clock.
"""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta

import pytest

from exchange import clock


def _days(first: date, last: date) -> set[date]:
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


OFFICIAL = {  # year: (public holidays off, make-up working days on a weekend)
    2025: (_days(date(2025, 1, 1), date(2025, 1, 1)) | _days(date(2025, 1, 28), date(2025, 2, 4))
           | _days(date(2025, 4, 4), date(2025, 4, 6)) | _days(date(2025, 5, 1), date(2025, 5, 5))
           | _days(date(2025, 5, 31), date(2025, 6, 2))
           | _days(date(2025, 10, 1), date(2025, 10, 8)),
           {date(2025, 1, 26), date(2025, 2, 8), date(2025, 4, 27), date(2025, 9, 28),
            date(2025, 10, 11)}),
    2026: (_days(date(2026, 1, 1), date(2026, 1, 3)) | _days(date(2026, 2, 15), date(2026, 2, 23))
           | _days(date(2026, 4, 4), date(2026, 4, 6)) | _days(date(2026, 5, 1), date(2026, 5, 5))
           | _days(date(2026, 6, 19), date(2026, 6, 21))
           | _days(date(2026, 9, 25), date(2026, 9, 27))
           | _days(date(2026, 10, 1), date(2026, 10, 7)),
           {date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9),
            date(2026, 9, 20), date(2026, 10, 10)}),
}


@pytest.mark.parametrize("year", sorted(OFFICIAL))
def test_every_day_of_two_years_matches_the_official_notice(year):
    off, makeup = OFFICIAL[year]
    wrong = []
    for day in _days(date(year, 1, 1), date(year, 12, 31)):
        expected = day in makeup or (day.weekday() < 5 and day not in off)
        if clock.is_working_day(day) != expected:
            wrong.append(day.isoformat())
    assert not wrong, sorted(wrong)


def _count_by_hand(start: date, n: int, year: int) -> date:
    """An independent count over the official table above."""
    off, makeup = OFFICIAL[year]

    def working(d):
        return d in makeup or (d.weekday() < 5 and d not in off)

    day = start
    while not working(day):
        day += timedelta(days=1)
    while n:
        day += timedelta(days=1)
        n -= working(day)
    return day


@pytest.mark.parametrize(("filed", "due"), [
    # 2025 国庆+中秋: Oct 1–8 off; Sun Sep 28 and Sat Oct 11 are working days
    (date(2025, 9, 26), date(2025, 10, 16)),  # Fri: 28, 29, 30, 9, 10, 11, 13, 14, 15, 16
    (date(2025, 9, 30), date(2025, 10, 21)),
    (date(2025, 10, 3), date(2025, 10, 22)),  # filed in the holiday: received Oct 9
    # 2025 春节: Jan 28 – Feb 4 off; Sun Jan 26 and Sat Feb 8 work
    (date(2025, 1, 24), date(2025, 2, 13)),
    (date(2025, 1, 25), date(2025, 2, 14)),  # a Saturday: received Sun Jan 26 (make-up)
    # 2026 春节: Feb 15–23 off; Sat Feb 14 and Sat Feb 28 work
    (date(2026, 2, 13), date(2026, 3, 5)),
    (date(2026, 2, 15), date(2026, 3, 9)),   # the first day of the holiday
    # 2026 国庆: Oct 1–7 off; Sun Sep 20 and Sat Oct 10 work; 中秋 Sep 25–27
    (date(2026, 9, 18), date(2026, 10, 9)),   # 20, 21–24, 28–30, Oct 8, 9
    (date(2026, 9, 30), date(2026, 10, 20)),
    # an ordinary Sunday: received Monday Nov 30, due ten working days later
    (date(2026, 11, 29), date(2026, 12, 14)),
])
def test_deadlines_across_national_day_and_spring_festival(filed, due):
    assert clock.deadline(filed, 10) == due
    assert _count_by_hand(filed, 10, filed.year) == due
    # a filing time is a moment in China: 23:30 UTC on Thursday Sep 25 is Friday in Jiangmen
    if filed == date(2025, 9, 26):
        late = datetime(2025, 9, 25, 23, 30, tzinfo=UTC)
        assert clock.deadline(late, 10) == due


def test_a_shorter_rule_counts_fewer_days():
    assert clock.deadline(date(2025, 9, 26), 5) == date(2025, 10, 10)
    with pytest.raises(ValueError):
        clock.deadline(date(2025, 9, 26), 0)


def test_a_year_the_table_does_not_cover_warns_clearly_and_still_answers():
    first, last = clock.covered_years()
    beyond = date(last + 1, 3, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        due = clock.deadline(beyond, 10)
    assert (due - beyond).days >= 14  # weekends skipped
    assert due.weekday() < 5
    assert caught and issubclass(caught[0].category, clock.CalendarWarning)
    text = str(caught[0].message)
    assert str(last + 1) in text and "chinese-calendar" in text and "weekends only" in text
    assert "节假日表未覆盖" in text
    assert clock.calendar_warning(beyond, due) == text
    # a covered span has no warning
    assert clock.deadline_and_warning(date(last, 3, 2), 10)[1] is None
    assert clock.calendar_warning(date(last, 3, 2), date(last, 3, 16)) is None
