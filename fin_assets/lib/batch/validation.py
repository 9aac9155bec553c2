"""Data-quality rules for one symbol's price frame. Each returns the offending rows (empty =
passed); they run on a symbol's fresh data before it may enter the stored history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fin_assets.lib.batch.prices import PRICE_COLUMNS

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


def future_days(frame: pd.DataFrame, today: dt.date) -> pd.DataFrame:
    """Rows dated after `today` (the exchange's date): a clock or parsing error, never data."""
    return frame[(frame["fecha"].dt.date > today).to_numpy(dtype=bool)]


def non_session_days(
    frame: pd.DataFrame, today: dt.date, trading_days: Callable[[dt.date, dt.date], set[dt.date]]
) -> pd.DataFrame:
    """Rows up to `today` on a day outside `trading_days(first, last)` (the exchange's
    sessions). Future rows are `future_days`' to report."""
    if frame.empty:
        return frame
    days = frame["fecha"].dt.date
    past = days <= today
    if not past.any():
        return frame.iloc[:0]
    # Days before the plausible range are `implausible_values`' to report; no calendar spans them.
    first = max(min(days[past]), EARLIEST_PLAUSIBLE_DAY)
    sessions = trading_days(first, max(first, max(days[past])))
    return frame[(past & ~days.isin(sessions)).to_numpy(dtype=bool)]


def non_trading_or_future_days(
    frame: pd.DataFrame, today: dt.date, trading_days: Callable[[dt.date, dt.date], set[dt.date]]
) -> pd.DataFrame:
    """Days after `today` or outside `trading_days(first, last)` (the exchange's sessions)."""
    bad = future_days(frame, today).index.union(non_session_days(frame, today, trading_days).index)
    return frame.loc[frame.index.isin(bad)]


# A provider may correct a few stored days (the provisional newest day, a volume); it does not
# restate most of them, nor move a settled day's price this much: that is a restatement (e.g.
# a split-adjusted window), and merging it would put a fake jump into the kept history.
MASS_REVISION_MIN_DAYS = 3
MASS_REVISION_SHARE = 0.5
MAX_CORRECTION = 0.2


@dataclass(frozen=True)
class Revisions:
    """How fresh rows change the stored days they overlap."""

    overlapping: int
    # One row per revised day: fecha, column (the price that moved most), stored, fresh,
    # change (relative, e.g. -0.667), largest |change| first.
    table: pd.DataFrame

    @property
    def revised(self) -> int:
        return len(self.table)


def revisions(history: pd.DataFrame, fresh: pd.DataFrame) -> Revisions:
    columns = [*PRICE_COLUMNS, "volumen"]
    stored = history.drop_duplicates("fecha", keep="last").set_index("fecha")
    new = fresh.drop_duplicates("fecha", keep="last").set_index("fecha")
    days = new.index.intersection(stored.index)
    before, after = stored.loc[days, columns], new.loc[days, columns]
    changed = (before != after).any(axis=1)
    before, after = before[changed], after[changed]
    prices_before = before[list(PRICE_COLUMNS)].to_numpy(dtype="float64")
    prices_after = after[list(PRICE_COLUMNS)].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        change = prices_after / prices_before - 1.0
    change = np.nan_to_num(change, nan=0.0, posinf=np.inf, neginf=-np.inf)
    worst = np.abs(change).argmax(axis=1) if len(change) else np.array([], dtype=int)
    rows = np.arange(len(worst))
    table = pd.DataFrame(
        {
            "fecha": before.index,
            "column": [PRICE_COLUMNS[i] for i in worst],
            "stored": prices_before[rows, worst],
            "fresh": prices_after[rows, worst],
            "change": change[rows, worst],
        }
    )
    order = table["change"].abs().sort_values(ascending=False, kind="stable").index
    return Revisions(len(days), table.loc[order].reset_index(drop=True))


def implausible_revision(found: Revisions, newest_stored_day: pd.Timestamp | None) -> str | None:
    """Why `found` is no correction, or None. The newest stored day may have been stored while
    its session ran (provisional): its change, however large, is the close arriving."""
    if found.revised >= MASS_REVISION_MIN_DAYS and found.revised > (
        MASS_REVISION_SHARE * found.overlapping
    ):
        return f"{found.revised} of {found.overlapping} overlapping stored day(s) revised"
    settled = found.table[found.table["fecha"] != newest_stored_day]
    beyond = settled[settled["change"].abs() > MAX_CORRECTION]
    if not beyond.empty:
        return (
            f"{len(beyond)} settled stored day(s) moved by more than {MAX_CORRECTION:.0%} "
            f"({found.revised} of {found.overlapping} overlapping day(s) revised)"
        )
    return None
