"""The checks on `daily_prices`, run on each symbol's fresh data *before* it is merged into the
stored history: a symbol that fails any of them is quarantined (its history and CSV rows stay as
they were) while the other symbols carry on.

Each check is one `AssetCheckSpec` of `daily_prices`; a run reports it once for all the
symbols it covered, naming each failing symbol with a sample of its offending rows.

A row on a past day that the exchange's calendar does not list as a session is neither stored
nor allowed to block the symbol: only that row is held back, with a warning naming it (the
`past_trading_days` check then fails with WARN severity). Real one-off sessions are listed in
`market_calendar.SPECIAL_SESSIONS` and pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from fin_assets.lib import market_calendar
from fin_assets.lib.batch import validation

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
        "No fecha after today at the symbol's exchange (ERROR). A row on a past day that is no "
        "session of the exchange (exchange_calendars plus market_calendar.SPECIAL_SESSIONS; "
        "unknown suffix: weekdays, with a note) is held back, not stored, and the symbol's "
        "other rows are merged (WARN).",
        "a future date",
        lambda frame, symbol, today: validation.future_days(frame, today),
    ),
)
RULE_NAMES = tuple(rule.name for rule in RULES)
PAST_TRADING_DAYS = "past_trading_days"
HISTORY_READABLE = "history_file_readable"
PLAUSIBLE_REVISIONS = "plausible_revisions"

CHECK_SPECS = [
    dg.AssetCheckSpec(rule.name, asset=DAILY_PRICES, description=rule.description) for rule in RULES
] + [
    dg.AssetCheckSpec(
        HISTORY_READABLE,
        asset=DAILY_PRICES,
        description="The stored history/<SYMBOL>.csv parses (names file and line if not).",
    ),
    dg.AssetCheckSpec(
        PLAUSIBLE_REVISIONS,
        asset=DAILY_PRICES,
        description="The fresh rows correct stored days, they do not restate them: fails when "
        f"most overlapping days changed (at least {validation.MASS_REVISION_MIN_DAYS}, more than "
        f"{validation.MASS_REVISION_SHARE:.0%}) or a settled day's price moved by more than "
        f"{validation.MAX_CORRECTION:.0%} (e.g. a split-adjusted window); the history is then "
        "kept as it was.",
    ),
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


@dataclass(frozen=True)
class HeldBack:
    """Rows of one symbol on past days its exchange's calendar does not list as sessions."""

    symbol: str
    days: tuple[dt.date, ...]
    source: str  # the raw file they came from
    sample_csv: str

    def __str__(self) -> str:
        days = ", ".join(day.isoformat() for day in self.days)
        calendar = market_calendar.exchange_for_symbol(self.symbol).calendar_name or "weekdays"
        return (
            f"{self.symbol}: {len(self.days)} row(s) held back, not stored: {days} "
            f"(no session in the {calendar} calendar; from {self.source}). The symbol's other "
            "rows are merged. A real special session belongs in "
            "market_calendar.SPECIAL_SESSIONS."
        )


def hold_back_non_sessions(
    frame: pd.DataFrame, symbol: str, today: dt.date, source: str
) -> tuple[pd.DataFrame, HeldBack | None]:
    """`frame` without its rows on past non-session days, and those rows described."""
    held = validation.non_session_days(
        frame, today, lambda start, end: set(market_calendar.trading_days(symbol, start, end))
    )
    if held.empty:
        return frame, None
    kept = frame.drop(index=held.index).reset_index(drop=True)
    days = tuple(sorted(set(held["fecha"].dt.date)))
    sample = held.head(SAMPLE_ROWS).to_csv(index=False, date_format="%Y-%m-%d")
    return kept, HeldBack(symbol, days, source, sample)


def revision_finding(
    symbol: str, stored: pd.DataFrame, fresh: pd.DataFrame, path: object
) -> Finding | None:
    """A finding when `fresh` restates the stored days of `path` instead of correcting them."""
    if stored.empty or fresh.empty:
        return None
    found = validation.revisions(stored, fresh)
    reason = validation.implausible_revision(found, stored["fecha"].max())
    if reason is None:
        return None
    top = found.table.iloc[0]
    summary = (
        f"{reason}; largest change {top['column']} on {top['fecha'].date()}: "
        f"{top['stored']:g} -> {top['fresh']:g} ({top['change']:+.1%}). {path} kept as it "
        "was: if the provider restated its history (e.g. split-adjusted), a person decides "
        "whether to rebuild it"
    )
    sample = found.table.head(SAMPLE_ROWS).assign(change=lambda t: t["change"].round(4))
    return Finding(symbol, PLAUSIBLE_REVISIONS, summary, sample.to_csv(index=False))


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
    held_back: Sequence[HeldBack] = (),
) -> list[dg.AssetCheckResult]:
    """One result per selected check, covering the `checked` symbols of this run."""
    results = []
    for name in (*RULE_NAMES, HISTORY_READABLE, PLAUSIBLE_REVISIONS):
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
        description = "; ".join(f"{f.symbol}: {f.summary}" for f in failed) or None
        warned = name == PAST_TRADING_DAYS and bool(held_back)
        if name == PAST_TRADING_DAYS and calendar_notes:
            metadata["calendar_warnings"] = dg.MetadataValue.md(
                "\n".join(f"- {note}" for note in calendar_notes.values())
            )
        if warned:
            metadata["held_back_symbols"] = ", ".join(h.symbol for h in held_back)
            metadata["held_back_rows"] = dg.MetadataValue.md(
                "\n\n".join(f"{h}\n```\n{h.sample_csv}```" for h in held_back)
            )
            description = "; ".join(filter(None, [description, *map(str, held_back)]))
        results.append(
            dg.AssetCheckResult(
                asset_key=DAILY_PRICES,
                check_name=name,
                passed=not failed and not warned,
                # Held-back rows were kept out of the history: worth a look, not a failed run.
                severity=(
                    dg.AssetCheckSeverity.WARN
                    if warned and not failed
                    else dg.AssetCheckSeverity.ERROR
                ),
                description=description,
                metadata=metadata,
            )
        )
    return results
