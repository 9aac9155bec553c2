"""The checks on `daily_prices`, run on each symbol's fresh data *before* it is merged into the
stored history: a symbol that fails any of them is quarantined (its history and CSV rows stay as
they were) while the other symbols carry on.

Each check is one `AssetCheckSpec` of `daily_prices`; a run reports it once for all the
symbols it covered, naming each failing symbol with a sample of its offending rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from fin_assets import market_calendar
from fin_assets.batch import validation

DAILY_PRICES = dg.AssetKey("daily_prices")
SAMPLE_ROWS = 10


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    what: str  # "N row(s) with <what>"
    find: Callable[[pd.DataFrame, str, dt.date], pd.DataFrame]


RULES = (
    Rule(
        "unique_symbol_day",
        "One row per (simbolo, fecha).",
        "a duplicated (simbolo, fecha)",
        lambda frame, symbol, today: validation.duplicate_symbol_days(frame),
    ),
    Rule(
        "prices_positive_and_consistent",
        "Prices > 0 and minimo <= apertura, cierre <= maximo.",
        "non-positive or inconsistent prices",
        lambda frame, symbol, today: validation.inconsistent_prices(frame),
    ),
    Rule(
        "volume_non_negative",
        "volumen >= 0.",
        "a negative volume",
        lambda frame, symbol, today: validation.negative_volumes(frame),
    ),
    Rule(
        "no_missing_values",
        "No empty cell in any column.",
        "missing values",
        lambda frame, symbol, today: validation.rows_with_missing_values(frame),
    ),
    Rule(
        "plausible_values",
        "fecha from 1970 on; prices finite and at most 1e8; volumen at most 1e13.",
        "implausible dates or values",
        lambda frame, symbol, today: validation.implausible_values(frame),
    ),
    Rule(
        "past_trading_days",
        "Every fecha is a session of the symbol's exchange (exchange_calendars; unknown "
        "suffix: weekdays, with a note) and not after today there.",
        "a weekend, holiday or future date",
        lambda frame, symbol, today: validation.non_trading_or_future_days(
            frame, today, lambda start, end: set(market_calendar.trading_days(symbol, start, end))
        ),
    ),
)
RULE_NAMES = tuple(rule.name for rule in RULES)
HISTORY_READABLE = "history_file_readable"

CHECK_SPECS = [
    dg.AssetCheckSpec(rule.name, asset=DAILY_PRICES, description=rule.description)
    for rule in RULES
] + [
    dg.AssetCheckSpec(
        HISTORY_READABLE,
        asset=DAILY_PRICES,
        description="The stored history/<SYMBOL>.csv parses (names file and line if not).",
    )
]


@dataclass(frozen=True)
class Finding:
    """One check failed for one symbol."""

    symbol: str
    check: str
    summary: str  # "3 row(s) with ..."
    sample_csv: str  # the first offending rows, as CSV

    def __str__(self) -> str:
        return f"{self.symbol}: {self.check}: {self.summary}\n{self.sample_csv}".rstrip()


def run_rules(frame: pd.DataFrame, symbol: str, today: dt.date) -> list[Finding]:
    """Every rule that `frame` (one symbol's fresh rows) breaks."""
    findings = []
    for rule in RULES:
        offending = rule.find(frame, symbol, today)
        if not offending.empty:
            sample = offending.head(SAMPLE_ROWS).to_csv(index=False, date_format="%Y-%m-%d")
            summary = f"{len(offending)} row(s) with {rule.what}"
            if rule.name == "past_trading_days":
                summary += f" (today there is {today})"
            findings.append(Finding(symbol, rule.name, summary, sample))
    return findings


def check_results(
    checked: list[str],
    findings: list[Finding],
    calendar_notes: Mapping[str, str],
    selected: set[str],
) -> list[dg.AssetCheckResult]:
    """One result per selected check, covering the `checked` symbols of this run."""
    results = []
    for name in (*RULE_NAMES, HISTORY_READABLE):
        if name not in selected:
            continue
        failed = [f for f in findings if f.check == name]
        metadata: dict[str, dg.RawMetadataValue] = {
            "checked_symbols": ", ".join(checked) or "none",
            "failed_symbols": ", ".join(f.symbol for f in failed) or "none",
            "offending_rows": dg.MetadataValue.md(
                "\n\n".join(f"**{f.symbol}**: {f.summary}\n```\n{f.sample_csv}```" for f in failed)
                or "none"
            ),
        }
        if name == "past_trading_days" and calendar_notes:
            metadata["calendar_warnings"] = dg.MetadataValue.md(
                "\n".join(f"- {note}" for note in calendar_notes.values())
            )
        results.append(
            dg.AssetCheckResult(
                asset_key=DAILY_PRICES,
                check_name=name,
                passed=not failed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=(
                    "; ".join(f"{f.symbol}: {f.summary}" for f in failed) if failed else None
                ),
                metadata=metadata,
            )
        )
    return results
