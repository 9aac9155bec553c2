"""Data-quality rules for the price frame. Each returns the offending rows (empty = passed)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from fin_assets import market_calendar
from fin_assets.batch.prices import PRICE_COLUMNS


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


def non_trading_or_future_days(frame: pd.DataFrame, today: dt.date) -> pd.DataFrame:
    """Days that are weekends, NYSE holidays, or after `today` (New York time)."""
    days = frame["fecha"].dt.date
    bad = days.map(lambda day: day > today or not market_calendar.is_trading_day(day))
    return frame[bad.astype(bool)]
