"""Deterministic synthetic daily prices for the local stand-in.

Each symbol follows its own seeded random walk over its own exchange's trading days (NYSE for
US listings, BSE for `RELIANCE.BSE`...: see `market_calendar`) from a fixed start, so a given
(symbol, date) always has the same values, whichever window a request asks for: two fetches a
month apart overlap exactly, as the real API's do. US symbols keep the walk they always had
(the XNYS sessions 2000-2040 are the days of the former pandas NYSE rules).
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
import random
import zlib
from dataclasses import dataclass

from fin_assets.lib import market_calendar

WALK_START = dt.date(2000, 1, 3)
WALK_END = dt.date(2040, 12, 31)


@dataclass(frozen=True)
class Bar:
    day: dt.date
    open: float
    high: float
    low: float
    close: float
    volume: int

    def as_alpha_vantage_row(self) -> dict[str, str]:
        return {
            "1. open": f"{self.open:.4f}",
            "2. high": f"{self.high:.4f}",
            "3. low": f"{self.low:.4f}",
            "4. close": f"{self.close:.4f}",
            "5. volume": str(self.volume),
        }


@functools.cache
def _walk(symbol: str) -> tuple[list[dt.date], list[Bar]]:
    rng = random.Random(zlib.crc32(symbol.encode()))
    close = 20 + rng.random() * 480
    days = market_calendar.trading_days(symbol, WALK_START, WALK_END)
    bars = []
    for day in days:
        open_ = close * (1 + rng.gauss(0, 0.005))
        close = open_ * math.exp(rng.gauss(0.0001, 0.02))
        high = max(open_, close) * (1 + abs(rng.gauss(0, 0.006)))
        low = min(open_, close) * (1 - abs(rng.gauss(0, 0.006)))
        volume = int(rng.lognormvariate(15, 0.5))
        bars.append(Bar(day, *(round(v, 4) for v in (open_, high, low, close)), volume))
    return days, bars


def bars_until(symbol: str, as_of: dt.date, count: int | None) -> list[Bar]:
    """The `count` newest bars on or before `as_of` (all of them for None), oldest first."""
    days, bars = _walk(symbol)
    end = bisect.bisect_right(days, as_of)
    start = 0 if count is None else max(0, end - count)
    return bars[start:end]


def provisional_bar(symbol: str, day: dt.date) -> Bar:
    """The running session of `day`: the day's open, half its move so far, half its volume."""
    final = bars_until(symbol, day, 1)[-1]
    if final.day != day:
        raise ValueError(f"{day} is not a trading day")
    close = round(final.open + (final.close - final.open) / 2, 4)
    return Bar(
        day, final.open, max(final.open, close), min(final.open, close), close, final.volume // 2
    )
