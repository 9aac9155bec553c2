"""Data-quality rules for one symbol's price frame. Each returns the offending rows (empty =
passed); they run on a symbol's fresh data before it may enter the stored history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd

from fin_assets.batch.prices import PRICE_COLUMNS

# Plausibility bounds: anything outside is a parsing or data error, not a market. The oldest
# daily bars Alpha Vantage serves are from 1999; the dearest share (BRK.A) trades below 1e6.
EARLIEST_PLAUSIBLE_DAY = dt.date(1970, 1, 1)
MAX_PLAUSIBLE_PRICE = 1e8
MAX_PLAUSIBLE_VOLUME = 10**13


def duplicate_symbol_days(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame.duplicated(subset=["simbolo", "fecha"], keep=False)]


def inconsistent_prices(frame: pd.DataFrame) -> pd.DataFrame:
    """Prices must be > 0 and the day's low <= open, close <= the day's high."""
    positive = (frame[list(PRICE_COLUMNS)] > 0).all(axis=1)
    inside = (
        (frame["minimo"] <= frame["apertura"])
        & (frame["minimo"] <= frame["cierre"])
        & (frame["apertura"] <= frame["maximo"])
        & (frame["cierre"] <= frame["maximo"])
    )
    return frame[~(positive & inside)]


def negative_volumes(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["volumen"] < 0]


def rows_with_missing_values(frame: pd.DataFrame) -> pd.DataFrame:
    missing = frame.isna().any(axis=1) | (frame["simbolo"].astype(str).str.strip() == "")
    return frame[missing]


def implausible_values(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates before 1970, prices that are not finite or above 1e8, volumes above 1e13."""
    early = frame["fecha"] < pd.Timestamp(EARLIEST_PLAUSIBLE_DAY)
    prices = frame[list(PRICE_COLUMNS)].to_numpy(dtype="float64")
    wild = ~np.isfinite(prices).all(axis=1) | (prices > MAX_PLAUSIBLE_PRICE).any(axis=1)
    huge_volume = frame["volumen"] > MAX_PLAUSIBLE_VOLUME
    return frame[early | wild | huge_volume]


def non_trading_or_future_days(
    frame: pd.DataFrame, today: dt.date, trading_days: Callable[[dt.date, dt.date], set[dt.date]]
) -> pd.DataFrame:
    """Days after `today` or outside `trading_days(first, last)` (the exchange's sessions)."""
    if frame.empty:
        return frame
    days = frame["fecha"].dt.date
    # Days before the plausible range are `implausible_values`' to report; no calendar spans them.
    first = max(min(days), EARLIEST_PLAUSIBLE_DAY)
    sessions = trading_days(first, max(first, min(max(days), today)))
    bad = (days > today) | ~days.isin(sessions)
    return frame[bad.to_numpy(dtype=bool)]
