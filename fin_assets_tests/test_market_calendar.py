"""Trading days per listing on exchange_calendars, checked against real Alpha Vantage bodies."""

import csv
import datetime as dt
import json
from zoneinfo import ZoneInfo

import exchange_calendars
import pytest

from fin_assets.lib import market_calendar
from fin_assets.lib.market_calendar import Exchange
from fin_assets_tests.helpers.paths import REAL_AV

UTC = dt.UTC


def real_days(name: str) -> list[dt.date]:
    """The dates of a recorded real body (JSON or datatype=csv), oldest first."""
    path = REAL_AV / name
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            days = [row["timestamp"] for row in csv.DictReader(handle)]
    else:
        days = list(json.loads(path.read_text())["Time Series (Daily)"])
    return sorted(dt.date.fromisoformat(day) for day in days)


@pytest.mark.parametrize("suffix", sorted(market_calendar.SUFFIX_CALENDARS))
def test_every_mapped_calendar_exists_with_its_timezone(suffix):
    name, timezone = market_calendar.SUFFIX_CALENDARS[suffix]
    assert name in exchange_calendars.get_calendar_names(include_aliases=True)
    assert str(exchange_calendars.get_calendar(name).tz) == timezone
    assert market_calendar.calendar_note(f"X.{suffix}" if suffix else "X") is None


@pytest.mark.parametrize(
    ("symbol", "exchange"),
    [
        ("TSLA", Exchange("", "XNYS", "America/New_York")),
        ("BRK.B", Exchange("", "XNYS", "America/New_York")),  # a share class, not an exchange
        ("RELIANCE.BSE", Exchange("BSE", "XBOM", "Asia/Kolkata")),
        ("TSCO.LON", Exchange("LON", "XLON", "Europe/London")),
        ("GPV.TRV", Exchange("TRV", "XTSX", "America/Toronto")),
        ("000002.SHZ", Exchange("SHZ", "XSHG", "Asia/Shanghai")),
        ("X.ZZZ", Exchange("ZZZ", None, "America/New_York")),
        ("SAP.DE", Exchange("DE", None, "America/New_York")),  # Yahoo's spelling: unknown
    ],
)
def test_suffix_maps_to_exchange(symbol, exchange):
    assert market_calendar.exchange_for_symbol(symbol) == exchange


def test_bse_trades_on_us_independence_day_and_closes_for_muharram():
    assert market_calendar.is_trading_day("RELIANCE.BSE", dt.date(2024, 7, 4))
    assert not market_calendar.is_trading_day("TSLA", dt.date(2024, 7, 4))
    assert not market_calendar.is_trading_day("RELIANCE.BSE", dt.date(2024, 7, 17))
    assert market_calendar.any_exchange_trades(["TSLA", "RELIANCE.BSE"], dt.date(2024, 7, 4))
    assert not market_calendar.any_exchange_trades(["TSLA", "IBM"], dt.date(2024, 7, 4))
    assert not market_calendar.any_exchange_trades([], dt.date(2024, 7, 5))


@pytest.mark.parametrize(
    ("symbol", "body"),
    [
        ("RELIANCE.BSE", "daily_reliance_bse_fullsize_2024-07-22.json"),
        ("MSFT", "daily_msft_compact_2018-08-16.json"),
        ("AMJ", "daily_amj_datatype_csv_2020-08-21.csv"),
        ("IBM", "daily_ibm_datatype_csv_2026-05-15.csv"),
    ],
)
def test_calendar_days_are_exactly_the_days_of_a_real_body(symbol, body):
    days = real_days(body)
    assert market_calendar.trading_days(symbol, days[0], days[-1]) == days


def test_unknown_suffix_falls_back_to_weekdays_with_a_note():
    note = market_calendar.calendar_note("ABC.ZZZ")
    assert note is not None and "ABC.ZZZ" in note and ".ZZZ" in note and "Monday to Friday" in note
    assert market_calendar.is_trading_day("ABC.ZZZ", dt.date(2024, 12, 25))  # a Wednesday
    assert not market_calendar.is_trading_day("ABC.ZZZ", dt.date(2024, 12, 28))  # a Saturday
    week = market_calendar.trading_days("ABC.ZZZ", dt.date(2024, 12, 23), dt.date(2024, 12, 29))
    assert week == [dt.date(2024, 12, d) for d in (23, 24, 25, 26, 27)]
    assert market_calendar.calendar_note("TSLA") is None


@pytest.mark.parametrize(
    ("symbol", "day", "trading"),
    [
        ("TSLA", dt.date(1950, 1, 2), True),  # before the calendar's data: weekdays
        ("TSLA", dt.date(1950, 1, 1), False),
        ("TSLA", dt.date(2060, 7, 5), True),  # after it
        ("RELIANCE.BSE", dt.date(1996, 8, 15), True),  # XBOM's data start in 1997
        ("RELIANCE.BSE", dt.date(2030, 1, 1), True),  # ... and end in 2026
    ],
)
def test_dates_outside_the_calendar_data_fall_back_to_weekdays(symbol, day, trading):
    assert market_calendar.is_trading_day(symbol, day) is trading


def test_ranges_across_the_end_of_the_calendar_data_do_not_crash():
    first, last = market_calendar.calendar_range("RELIANCE.BSE")
    assert first == dt.date(1997, 1, 1) and last <= dt.date(2041, 12, 31)
    around_the_end = (last - dt.timedelta(days=3), last + dt.timedelta(days=4))
    days = market_calendar.trading_days("RELIANCE.BSE", *around_the_end)
    assert days == sorted(set(days)) and all(day.weekday() < 5 for day in days)
    assert market_calendar.previous_trading_day("RELIANCE.BSE", last + dt.timedelta(days=1)) <= last
    assert market_calendar.next_trading_day("TSLA", dt.date(2099, 12, 31)) == dt.date(2100, 1, 1)


def test_market_today_is_the_date_where_the_exchange_is():
    evening_in_new_york = dt.datetime(2026, 10, 5, 20, 0, tzinfo=UTC)
    assert market_calendar.market_today("TSLA", evening_in_new_york) == dt.date(2026, 10, 5)
    assert market_calendar.market_today("RELIANCE.BSE", evening_in_new_york) == dt.date(2026, 10, 6)


def test_last_closed_session_follows_the_exchange_close():
    # BSE closes at 15:30 in Kolkata (10:00 UTC); 2 October is Gandhi Jayanti.
    before = dt.datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
    after = dt.datetime(2026, 10, 5, 10, 30, tzinfo=UTC)
    assert market_calendar.last_closed_trading_day("RELIANCE.BSE", before) == dt.date(2026, 10, 1)
    assert market_calendar.last_closed_trading_day("RELIANCE.BSE", after) == dt.date(2026, 10, 5)
    # The NYSE closes early (13:00) the day after Thanksgiving.
    early_close = dt.datetime(2026, 11, 27, 13, 30, tzinfo=ZoneInfo("America/New_York"))
    assert market_calendar.last_closed_trading_day("TSLA", early_close) == dt.date(2026, 11, 27)
