"""The calendar day in Jiangmen, for every date the platform records or judges by.

Why one place: the server's own clock may be set to UTC (containers usually are), where
``date.today()`` is yesterday for Jiangmen from 00:00 to 08:00 China time — a catalog
entry published at 07:00 got the previous day's date, and update deadlines were judged a
day behind. Catalog, exchange and supervision all ask here (``exchange.clock`` re-exports
it beside the working-day calendar); it lives in ``layers`` because that is what all of
them already build on.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def today() -> date:
    """Today in Jiangmen (China Standard Time), whatever the server's time zone."""
    return datetime.now(CHINA).date()


def local_date(start: date | datetime) -> date:
    """The calendar day in China of a moment (a date is taken as it is; a naive datetime
    is taken as already local)."""
    if isinstance(start, datetime):
        if start.tzinfo is None:
            return start.date()
        return start.astimezone(CHINA).date()
    return start
