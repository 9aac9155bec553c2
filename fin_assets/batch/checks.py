"""Blocking checks on `daily_prices`: a failure stops `datos_financieros_csv` in the same run,
so the CSV that Logstash ships never carries rows that break them."""

from collections.abc import Callable

import dagster as dg
import pandas as pd

from fin_assets import market_calendar
from fin_assets.batch import validation
from fin_assets.batch.assets import daily_prices

SAMPLE_ROWS = 10


def _result(offending: pd.DataFrame, what: str) -> dg.AssetCheckResult:
    sample = offending.head(SAMPLE_ROWS).to_csv(index=False, date_format="%Y-%m-%d")
    return dg.AssetCheckResult(
        passed=offending.empty,
        description=None if offending.empty else f"{len(offending)} row(s) with {what}",
        metadata={
            "offending_rows": len(offending),
            "sample": dg.MetadataValue.md(f"```\n{sample}```" if not offending.empty else "none"),
        },
    )


def _frame_check(
    name: str, description: str, rule: Callable[[pd.DataFrame], pd.DataFrame], what: str
) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=daily_prices, name=name, blocking=True, description=description)
    def _check(daily_prices: pd.DataFrame) -> dg.AssetCheckResult:
        return _result(rule(daily_prices), what)

    return _check


unique_symbol_day = _frame_check(
    "unique_symbol_day",
    "One row per (simbolo, fecha).",
    validation.duplicate_symbol_days,
    "a duplicated (simbolo, fecha)",
)
prices_consistent = _frame_check(
    "prices_positive_and_consistent",
    "Prices > 0 and minimo <= apertura, cierre <= maximo.",
    validation.inconsistent_prices,
    "non-positive or inconsistent prices",
)
volume_non_negative = _frame_check(
    "volume_non_negative", "volumen >= 0.", validation.negative_volumes, "a negative volume"
)
no_missing_values = _frame_check(
    "no_missing_values",
    "No empty cell in any column.",
    validation.rows_with_missing_values,
    "missing values",
)


@dg.asset_check(
    asset=daily_prices,
    blocking=True,
    description="Every fecha is an NYSE trading day, not after today in New York.",
)
def past_trading_days(daily_prices: pd.DataFrame) -> dg.AssetCheckResult:
    today = market_calendar.market_today()
    return _result(
        validation.non_trading_or_future_days(daily_prices, today),
        f"a weekend, holiday or future date (today is {today})",
    )


price_checks = [
    unique_symbol_day,
    prices_consistent,
    volume_non_negative,
    no_missing_values,
    past_trading_days,
]
