"""Trading days per listing, on the `exchange_calendars` library.

Alpha Vantage names a listing's exchange by a suffix (`TSCO.LON`, `RELIANCE.BSE`; none for US
listings) and serves each listing on its own exchange's trading days, so every question here
takes the symbol. Used by the batch checks (dates must be trading days), the schedule (skip days
on which no configured exchange trades) and the local stand-in (which serves trading days only).

- A suffix with no known calendar falls back to weekdays-only; `calendar_note` says so, for the
  checks to put into metadata. It is never a hard failure.
- Calendars are built once per exchange over `CALENDAR_START`..`CALENDAR_END` (clipped to the
  years the library has holiday data for). Dates outside that range fall back to weekdays-only
  rather than raising: history files may hold rows older than the library knows.
- `SPECIAL_SESSIONS` adds the real one-off sessions the library does not list (Muhurat trading,
  budget-day and disaster-recovery-drill Saturdays): they are sessions like any other here.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import exchange_calendars
import pandas as pd

log = logging.getLogger(__name__)

CALENDAR_START = dt.date(1990, 1, 1)
CALENDAR_END = dt.date(2041, 12, 31)
# Alpha Vantage labels every daily series "US/Eastern", whatever the exchange: the best guess
# of "today" for a listing whose exchange is unknown.
FALLBACK_TIMEZONE = "America/New_York"
FALLBACK_CLOSE = dt.time(16, 0)
US_SUFFIX = ""

# Alpha Vantage suffix -> (exchange_calendars name, the calendar's timezone). Every name is
# checked against `exchange_calendars.get_calendar_names()` by the tests.
SUFFIX_CALENDARS: dict[str, tuple[str, str]] = {
    US_SUFFIX: ("XNYS", "America/New_York"),  # NYSE and Nasdaq share one holiday calendar
    "LON": ("XLON", "Europe/London"),
    "TRT": ("XTSE", "America/Toronto"),
    "TRV": ("XTSX", "America/Toronto"),  # TSX Venture (the library's alias of XTSE)
    "DEX": ("XETR", "Europe/Berlin"),  # Xetra
    "FRK": ("XFRA", "Europe/Berlin"),  # Frankfurt floor
    "BSE": ("XBOM", "Asia/Kolkata"),
    "NSE": ("XBOM", "Asia/Kolkata"),  # no XNSE in the library; NSE and BSE share holidays
    "SHH": ("XSHG", "Asia/Shanghai"),
    "SHZ": ("XSHG", "Asia/Shanghai"),  # no XSHE in the library; Shenzhen closes with Shanghai
    "SAO": ("BVMF", "America/Sao_Paulo"),  # B3
    "PAR": ("XPAR", "Europe/Paris"),
    "AMS": ("XAMS", "Europe/Amsterdam"),
}

# Real one-off sessions that exchange_calendars (4.13) does not list, per calendar: day -> the
# session's close, local time (the exchanges' circulars). Rows on them are real trading and
# belong in the history; a row on any other non-session day is held back by the batch checks,
# whose warning points here. Add a day when an exchange announces one (Muhurat every Diwali).
SPECIAL_SESSIONS: dict[str, dict[dt.date, dt.time]] = {
    "XBOM": {  # BSE and NSE hold them together
        dt.date(2023, 11, 12): dt.time(19, 15),  # Muhurat trading (Diwali, a Sunday)
        dt.date(2024, 1, 20): dt.time(15, 30),  # Saturday: full session with a DR-site switch
        dt.date(2024, 3, 2): dt.time(12, 30),  # Saturday: special live session from DR site
        dt.date(2024, 5, 18): dt.time(12, 30),  # Saturday: special live session from DR site
        dt.date(2024, 11, 1): dt.time(19, 0),  # Muhurat trading (Diwali)
        dt.date(2025, 2, 1): dt.time(15, 30),  # Saturday: Union Budget day
        dt.date(2025, 10, 21): dt.time(14, 45),  # Muhurat trading (Diwali)
    },
}


@dataclass(frozen=True)
class Exchange:
    suffix: str  # "" for US listings
    calendar_name: str | None  # None: weekdays-only fallback
    timezone: str


@dataclass(frozen=True)
class _Sessions:
    """One exchange's sessions over the range the calendar was built for."""

    first: dt.date
    last: dt.date
    days: frozenset[dt.date]
    ordered: tuple[dt.date, ...]
    closes: dict[dt.date, dt.datetime]  # session -> close (aware, UTC)


def suffix_of(symbol: str) -> str:
    """`TSCO.LON` -> `LON`; `TSLA`, `BRK.B` (a one-letter US share class) -> `""`.

    Any longer suffix names an exchange; one not in the table gets the weekdays fallback and
    its note, rather than silently the US calendar (`SAP.DE` is a Yahoo spelling, not ours).
    """
    head, dot, tail = symbol.strip().upper().rpartition(".")
    if not dot or not head or len(tail) == 1:
        return US_SUFFIX
    return tail


def exchange_for_symbol(symbol: str) -> Exchange:
    suffix = suffix_of(symbol)
    known = SUFFIX_CALENDARS.get(suffix)
    if known is None:
        return Exchange(suffix, None, FALLBACK_TIMEZONE)
    name, timezone = known
    return Exchange(suffix, name, timezone)


def calendar_note(symbol: str) -> str | None:
    """The warning for a listing whose trading days are guessed (weekdays-only), else None."""
    exchange = exchange_for_symbol(symbol)
    if exchange.calendar_name is None:
        return (
            f"{symbol}: no exchange calendar is known for the suffix '.{exchange.suffix}'; "
            "its trading days are assumed to be Monday to Friday (holidays not excluded)"
        )
    if _sessions(exchange.calendar_name) is None:
        return (
            f"{symbol}: the {exchange.calendar_name} calendar could not be built; "
            "its trading days are assumed to be Monday to Friday (holidays not excluded)"
        )
    return None


def calendar_range(symbol: str) -> tuple[dt.date, dt.date] | None:
    """The dates the listing's calendar covers; outside them (or for None) weekdays-only."""
    sessions = _sessions_for(symbol)
    return (sessions.first, sessions.last) if sessions else None


@functools.cache
def _sessions(name: str) -> _Sessions | None:
    # Building a calendar takes ~0.1 s, hence the cache; a calendar the library cannot build
    # (its data are inconsistent for the range) degrades to weekdays-only with a note.
    try:
        # The factory class knows the years its holiday data cover (bound_min/bound_max are
        # classmethods); building outside them raises.
        canonical = exchange_calendars.resolve_alias(name)  # e.g. XTSX is XTSE's calendar
        factory = exchange_calendars.calendar_utils._default_calendar_factories[canonical]
        start = max(CALENDAR_START, _as_date(factory.bound_min()) or CALENDAR_START)
        end = min(CALENDAR_END, _as_date(factory.bound_max()) or CALENDAR_END)
        with warnings.catch_warnings():  # the library's own pandas 3 deprecation notices
            warnings.filterwarnings("ignore", message="Series.values returning")
            calendar = exchange_calendars.get_calendar(
                name, start=start.isoformat(), end=end.isoformat()
            )
        sessions = list(calendar.sessions.date)  # vectorised: ~10x faster than per Timestamp
        closes = dict(zip(sessions, calendar.closes.dt.to_pydatetime(), strict=True))
        zone = ZoneInfo(str(calendar.tz))
    except Exception as exc:  # noqa: BLE001 - any library failure means "no calendar"
        log.warning("exchange calendar %s unavailable: %s", name, exc)
        return None
    canonical = exchange_calendars.resolve_alias(name)
    for day, close in SPECIAL_SESSIONS.get(canonical, {}).items():
        if start <= day <= end and day not in closes:
            closes[day] = dt.datetime.combine(day, close, tzinfo=zone).astimezone(dt.UTC)
    ordered = tuple(sorted(closes))
    return _Sessions(start, end, frozenset(ordered), ordered, closes)


def _as_date(value: pd.Timestamp | None) -> dt.date | None:
    return None if value is None else value.date()


def _sessions_for(symbol: str) -> _Sessions | None:
    name = exchange_for_symbol(symbol).calendar_name
    return _sessions(name) if name else None


def is_trading_day(symbol: str, day: dt.date) -> bool:
    if isinstance(day, dt.datetime):
        day = day.date()
    sessions = _sessions_for(symbol)
    if sessions is None or not sessions.first <= day <= sessions.last:
        return day.weekday() < 5
    return day in sessions.days


def trading_days(symbol: str, start: dt.date, end: dt.date) -> list[dt.date]:
    """Every trading day of the listing from `start` to `end`, both included."""
    sessions = _sessions_for(symbol)
    if sessions is None:
        return _weekdays(start, end)
    low = bisect.bisect_left(sessions.ordered, start)
    high = bisect.bisect_right(sessions.ordered, end)
    return (
        _weekdays(start, min(end, sessions.first - dt.timedelta(days=1)))
        + list(sessions.ordered[low:high])
        + _weekdays(max(start, sessions.last + dt.timedelta(days=1)), end)
    )


def _weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    """Monday to Friday from `start` to `end` (empty when `start` is after `end`)."""
    days = (dt.date.fromordinal(n) for n in range(start.toordinal(), end.toordinal() + 1))
    return [day for day in days if day.weekday() < 5]


def previous_trading_day(symbol: str, day: dt.date) -> dt.date:
    day -= dt.timedelta(days=1)
    while not is_trading_day(symbol, day):
        day -= dt.timedelta(days=1)
    return day


def next_trading_day(symbol: str, day: dt.date) -> dt.date:
    day += dt.timedelta(days=1)
    while not is_trading_day(symbol, day):
        day += dt.timedelta(days=1)
    return day


def _local_now(symbol: str, now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:  # a naive time is taken as UTC, not as this machine's zone
        now = now.replace(tzinfo=dt.UTC)
    return now.astimezone(ZoneInfo(exchange_for_symbol(symbol).timezone))


def market_today(symbol: str, now: dt.datetime | None = None) -> dt.date:
    """Today's date where the listing's exchange is."""
    return _local_now(symbol, now).date()


def session_close(symbol: str, day: dt.date) -> dt.datetime:
    """When the session of `day` closes (aware); early closes come from the calendar."""
    sessions = _sessions_for(symbol)
    if sessions is not None and day in sessions.closes:
        return sessions.closes[day]
    zone = ZoneInfo(exchange_for_symbol(symbol).timezone)
    return dt.datetime.combine(day, FALLBACK_CLOSE, tzinfo=zone)


def last_closed_trading_day(symbol: str, now: dt.datetime | None = None) -> dt.date:
    """The newest trading day whose session has closed at `now`, in the exchange's time."""
    local = _local_now(symbol, now)
    today = local.date()
    if is_trading_day(symbol, today) and local >= session_close(symbol, today):
        return today
    return previous_trading_day(symbol, today)


def any_exchange_trades(symbols: Iterable[str], day: dt.date) -> bool:
    """Whether at least one of the listings trades on `day` (the schedule skips other days)."""
    return any(is_trading_day(symbol, day) for symbol in symbols)
