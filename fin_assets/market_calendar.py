"""NYSE trading days, on pandas' holiday rules (the calendar the ecosystem already ships).

Used by the `daily_prices` checks (dates must be trading days) and by the local Alpha Vantage
stand-in (which serves trading days only, like the real API).
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)

from fin_assets.config import MARKET_TIMEZONE

NEW_YORK = ZoneInfo(MARKET_TIMEZONE)
MARKET_CLOSE = dt.time(16, 0)

# One-off closures (national days of mourning, hurricane Sandy, 9/11).
SPECIAL_CLOSURES = frozenset(
    dt.date.fromisoformat(day)
    for day in (
        "2001-09-11", "2001-09-12", "2001-09-13", "2001-09-14", "2004-06-11", "2007-01-02",
        "2012-10-29", "2012-10-30", "2018-12-05", "2025-01-09",
    )
)  # fmt: skip


class NYSEHolidayCalendar(AbstractHolidayCalendar):
    # NYSE does not close on Friday 31 December when New Year's Day falls on a Saturday.
    rules = [
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        USMartinLutherKingJr,
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, start_date="2022-01-01", observance=nearest_workday),
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas Day", month=12, day=25, observance=nearest_workday),
    ]


@functools.cache
def _holidays(year: int) -> frozenset[dt.date]:
    days = NYSEHolidayCalendar().holidays(dt.date(year, 1, 1), dt.date(year, 12, 31))
    return frozenset(day.date() for day in days) | {
        day for day in SPECIAL_CLOSURES if day.year == year
    }


def is_trading_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in _holidays(day.year)


def trading_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every trading day from `start` to `end`, both included."""
    return [d.date() for d in pd.bdate_range(start, end) if is_trading_day(d.date())]


def previous_trading_day(day: dt.date) -> dt.date:
    day -= dt.timedelta(days=1)
    while not is_trading_day(day):
        day -= dt.timedelta(days=1)
    return day


def next_trading_day(day: dt.date) -> dt.date:
    day += dt.timedelta(days=1)
    while not is_trading_day(day):
        day += dt.timedelta(days=1)
    return day


def market_today(now: dt.datetime | None = None) -> dt.date:
    """Today's date in New York, where Alpha Vantage's dates live."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(NEW_YORK).date()


def last_closed_trading_day(now: dt.datetime | None = None) -> dt.date:
    """The newest trading day whose session has closed at `now`."""
    local = (now or dt.datetime.now(dt.UTC)).astimezone(NEW_YORK)
    today = local.date()
    if is_trading_day(today) and local.time() >= MARKET_CLOSE:
        return today
    return previous_trading_day(today)
