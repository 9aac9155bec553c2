"""The batch flow as one Dagster step over every symbol partition of a run.

`alpha_vantage_daily_raw` and `daily_prices` are partitioned by symbol and
`datos_financieros_csv` is one file fed by every partition. A scheduled run covers every
symbol (single-run backfill policy: Dagster's fixed cost per run is seconds), yet each symbol
succeeds or fails on its own:

- Dagster marks a partition *failed* when a run that planned it ends failed without
  materialising it, and an `Output` of a multi-partition step materialises every partition of
  the run at once. So the step reports each good symbol with its own
  `AssetMaterialization(partition=...)`, yields no `Output` for the partitioned assets, writes
  the CSV, and only then fails the run naming the quarantined symbols.
- The three assets share this step because a failing upstream step would stop the CSV step:
  the CSV must still be written for the symbols that are fine. The step can be subset (any of
  the three assets alone), reading the others from their files (`storage.py`).
- Every file goes through `fin_assets.lib.file_store`. A symbol's damaged file (its history, its
  raw folder or stored response) quarantines that symbol like a failed check; a run-level
  file (the CSV, the extraction log, the data folder) fails the run with one message naming
  the file and the problem.
"""

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd

from fin_assets.defs.batch import checks, formatting
from fin_assets.defs.batch.specs import (
    CSV,
    CSV_COLUMN_LINEAGE,
    EVERY_SYMBOL_FETCHED,
    PRICES,
    RAW,
    RAW_CHECK_SPECS,
    batch_specs,
)
from fin_assets.defs.resources.alpha_vantage import AlphaVantageResource
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.lib import market_calendar
from fin_assets.lib.alpha_vantage import responses
from fin_assets.lib.alpha_vantage.errors import AlphaVantageError
from fin_assets.lib.batch import prices, storage
from fin_assets.lib.batch.extraction_log import ExtractionLog
from fin_assets.lib.batch.storage import StoredFileError
from fin_assets.lib.file_store import DataFolder
from fin_assets.lib.symbols import validate_symbol


@dataclass
class Fetched:
    path: Path
    payload: dict


@dataclass
class BatchOutcome:
    """What happened to each symbol in one step; `problems` fail the run at the end."""

    fetched: dict[str, Fetched] = field(default_factory=dict)
    fetch_failures: dict[str, AlphaVantageError] = field(default_factory=dict)
    findings: list[checks.Finding] = field(default_factory=list)
    updated: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    # Run-level files that could not be written (the CSV): named in the run's failure.
    file_problems: list[str] = field(default_factory=list)

    def quarantine(self, symbol: str, text: str) -> None:
        self.problems[symbol] = (
            f"{self.problems[symbol]}\n{text}" if symbol in self.problems else text
        )


def build_batch_assets(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name="daily_batch",
        specs=batch_specs(partitions_def),
        check_specs=[*RAW_CHECK_SPECS, *checks.CHECK_SPECS],
        can_subset=True,
        pool="alpha_vantage",
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def daily_batch(
        context: dg.AssetExecutionContext,
        alpha_vantage: AlphaVantageResource,
        settings: PipelineSettings,
    ) -> Iterator:
        """Fetch each symbol, check its fresh rows, merge the clean ones into their history,
        rewrite the CSV; then fail the run if any symbol was quarantined, naming it."""
        selected = context.selected_asset_keys
        outcome = BatchOutcome()
        symbols = run_symbols(context)
        try:
            files = data_folder(settings)
            if RAW in selected:
                yield from fetch_all(context, symbols, alpha_vantage, settings, files, outcome)
            elif PRICES in selected:
                load_stored_raw(symbols, storage.RawStore(settings.raw_dir, files), outcome)
            if PRICES in selected:
                yield from update_histories(context, settings, files, outcome)
            if CSV in selected:
                keys = partitions_def.get_partition_keys()
                yield from write_csv(context, keys, settings, files, outcome)
        except StoredFileError as problem:
            # Symbols' files are handled per symbol below; what gets here is a run-level file.
            outcome.file_problems.append(str(problem))
        if outcome.problems or outcome.file_problems:
            raise dg.Failure(
                description=failure_description(outcome),
                metadata={
                    "failed_symbols": ", ".join(outcome.problems),
                    "file_problems": "\n".join(outcome.file_problems) or "none",
                },
            )

    return daily_batch


def failure_description(outcome: BatchOutcome) -> str:
    parts = [f"File problem: {problem}" for problem in outcome.file_problems]
    if outcome.problems:
        parts.append(
            "Quarantined (history and CSV rows kept as they were):\n\n"
            + "\n\n".join(f"- {s}: {text}" for s, text in outcome.problems.items())
        )
    return "\n\n".join(parts)


def data_folder(settings: PipelineSettings) -> DataFolder:
    try:
        return DataFolder(settings.data_path)
    except OSError as error:  # FIN_DATA_DIR names a file, or a folder that cannot be made
        where = Path(settings.data_dir)
        raise StoredFileError(where, None, f"cannot be the data folder: {error.strerror}") from None


def run_symbols(context: dg.AssetExecutionContext) -> list[str]:
    """The symbol partitions of this run (none when only the CSV is rebuilt). A run of the
    partitioned assets that names no symbol fails: it would fetch nothing and succeed."""
    partitioned = bool({RAW, PRICES} & context.selected_asset_keys)
    if context.has_partition_key_range or context.has_partition_key:
        keys = list(context.partition_keys)
        if not keys and partitioned:
            span = context.partition_key_range
            raise dg.Failure(description=empty_range_message(span.start, span.end))
        return [validate_symbol(key) for key in keys]
    if partitioned:
        raise dg.Failure(description=NO_PARTITION_MESSAGE)
    return []


NO_PARTITION_MESSAGE = (
    "No partition was chosen: alpha_vantage_daily_raw and daily_prices are partitioned by "
    "symbol; pick the symbols in the Materialize dialog (or `fin-assets batch --symbols`)"
)


def empty_range_message(start: str, end: str) -> str:
    return (
        f"The partition range {start}..{end} holds no symbol (reversed, or not in FIN_SYMBOLS' "
        "order): nothing would be fetched. Pick the range again, first symbol first"
    )


def fetch_all(
    context: dg.AssetExecutionContext,
    symbols: list[str],
    alpha_vantage: AlphaVantageResource,
    settings: PipelineSettings,
    files: DataFolder,
    outcome: BatchOutcome,
) -> Iterator:
    client = alpha_vantage.get_client()
    log = ExtractionLog(settings.extraction_log_path, secret=alpha_vantage.api_key, files=files)
    log.check_writable()  # a log that cannot be written stops the run before any request
    raw_store = storage.RawStore(settings.raw_dir, files)
    progress = formatting.BatchedLog(context.log.info)
    synthetic = False
    for symbol in symbols:
        try:
            series = client.fetch_daily(symbol, on_attempt=log.record_attempt)
        except AlphaVantageError as error:
            outcome.fetch_failures[symbol] = error
            outcome.quarantine(symbol, f"fetch failed: {error} (after {error.attempts} attempt(s))")
            context.log.error(f"{error} (after {error.attempts} attempt(s))")
            continue
        path = raw_store.path(symbol, series.fetched_at)
        try:
            raw_store.save(path, series.body)
        except StoredFileError as error:
            outcome.quarantine(symbol, f"raw response not stored: {error}")
            context.log.error(f"{symbol}: raw response not stored: {error}")
            continue
        outcome.fetched[symbol] = Fetched(path, series.payload)
        days = sorted(series.payload[responses.SERIES_KEY])
        first, last = dt.date.fromisoformat(days[0]), dt.date.fromisoformat(days[-1])
        log.record_success(symbol, series.attempts, len(days), first, last)
        provisional = responses.is_provisional(series.payload)
        progress.add(
            f"{symbol}: {len(days)} days {first}..{last}"
            + (" (newest day provisional)" if provisional else "")
            + f" -> {path.name}"
        )
        source_is_synthetic = "SYNTHETIC" in json.dumps(series.payload.get("Meta Data", {}))
        synthetic = synthetic or source_is_synthetic
        yield dg.AssetMaterialization(
            asset_key=RAW,
            partition=symbol,
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "days": len(days),
                "first_day": days[0],
                "last_day": days[-1],
                "provisional": provisional,
                "source": "local stand-in (synthetic)" if source_is_synthetic else "Alpha Vantage",
            },
        )
    progress.flush()
    if synthetic:
        context.log.warning("Prices come from the local Alpha Vantage stand-in: SYNTHETIC data.")
    if context.selected_asset_check_keys & {dg.AssetCheckKey(RAW, EVERY_SYMBOL_FETCHED)}:
        failures = outcome.fetch_failures
        yield dg.AssetCheckResult(
            asset_key=RAW,
            check_name=EVERY_SYMBOL_FETCHED,
            passed=not failures,
            severity=dg.AssetCheckSeverity.ERROR,
            description=None if not failures else f"Failed: {', '.join(failures)}",
            metadata={
                "failed": dg.MetadataValue.md(formatting.failures_markdown(failures) or "none"),
                "failed_count": len(failures),
                **{f"cause/{s}": e.cause.code for s, e in failures.items()},
            },
        )


def load_stored_raw(symbols: list[str], raw_store: storage.RawStore, outcome: BatchOutcome) -> None:
    """`daily_prices` alone: each symbol's newest stored response stands for the fetch."""
    for symbol in symbols:
        try:
            path = raw_store.latest(symbol)
            if path is None:
                outcome.quarantine(
                    symbol, "no stored response: materialise alpha_vantage_daily_raw first"
                )
                continue
            outcome.fetched[symbol] = Fetched(path, raw_store.load(path))
        except StoredFileError as error:
            outcome.quarantine(symbol, f"stored response unreadable: {error}")


def update_histories(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    files: DataFolder,
    outcome: BatchOutcome,
) -> Iterator:
    history = storage.HistoryStore(settings.history_dir, files)
    checked, notes, lines = [], {}, []
    held_back: list[checks.HeldBack] = []
    for symbol, fetched in outcome.fetched.items():
        checked.append(symbol)
        if note := market_calendar.calendar_note(symbol):
            notes[symbol] = note
        try:
            fresh = prices.series_to_frame(symbol, fetched.payload)
        except (KeyError, TypeError, ValueError) as error:
            outcome.quarantine(symbol, f"{fetched.path}: unreadable series ({error})")
            continue
        today = market_calendar.market_today(symbol)
        # Only the rows on non-session days stay out; the symbol's other rows go on.
        fresh, held = checks.hold_back_non_sessions(fresh, symbol, today, str(fetched.path))
        if held is not None:
            held_back.append(held)
            context.log.warning(str(held))
        if fresh.empty:
            outcome.quarantine(symbol, f"{fetched.path}: no row left to store")
            continue
        findings = checks.run_rules(fresh, symbol, today)
        try:
            stored = history.load(symbol)
        except storage.StoredFileError as error:
            findings.append(checks.Finding(symbol, checks.HISTORY_READABLE, str(error), ""))
            stored = None
        if stored is not None and (
            revision := checks.revision_finding(symbol, stored, fresh, history.path(symbol))
        ):
            findings.append(revision)
        if findings:
            outcome.findings.extend(findings)
            outcome.quarantine(symbol, "\n".join(f"  {f}" for f in findings).strip())
            continue
        result = prices.upsert(stored if stored is not None else fresh.iloc[:0], fresh)
        try:
            written = history.save(symbol, result.frame)
        except StoredFileError as error:
            outcome.quarantine(symbol, f"history not written: {error}")
            continue
        outcome.updated[symbol] = result.frame
        lines.append(
            f"{symbol}: {result.added_days} new day(s), {result.changed_days} revised, "
            f"history {len(result.frame)} days" + ("" if written else " (unchanged)")
        )
        yield dg.AssetMaterialization(
            asset_key=PRICES,
            partition=symbol,
            metadata={
                "path": dg.MetadataValue.path(str(history.path(symbol))),
                "dagster/row_count": len(result.frame),
                "added_days": result.added_days,
                "revised_days": result.changed_days,
                "first_day": result.frame["fecha"].iloc[0].date().isoformat(),
                "last_day": result.frame["fecha"].iloc[-1].date().isoformat(),
                "raw_file": str(fetched.path),
            },
        )
    for note in notes.values():
        context.log.warning(note)
    # One log event for every symbol: each event is a row in the instance's event log, which
    # costs more per symbol than the upsert itself (docs/benchmarks.md).
    if lines:
        context.log.info("History upserted:\n" + "\n".join(lines))
    selected = {key.name for key in context.selected_asset_check_keys if key.asset_key == PRICES}
    yield from checks.check_results(checked, outcome.findings, notes, selected, held_back)


def csv_frame(
    symbols: list[str], settings: PipelineSettings, files: DataFolder, outcome: BatchOutcome
) -> tuple[pd.DataFrame, list[str]]:
    """Every configured symbol's rows: its history as just merged or as stored, else (history
    unreadable) its rows in the current CSV, so a quarantined symbol never loses its rows."""
    history = storage.HistoryStore(settings.history_dir, files)
    frames, from_previous_csv, previous = [], [], None
    for symbol in symbols:
        if symbol in outcome.updated:
            frames.append(outcome.updated[symbol])
            continue
        try:
            stored = history.load(symbol)
        except storage.StoredFileError as error:
            if symbol not in outcome.problems:
                outcome.quarantine(symbol, str(error))
            stored = None
        if stored is not None:
            frames.append(stored)
            continue
        if previous is None:
            previous = previous_csv(settings.csv_path, files)
        kept = previous[previous["simbolo"] == symbol]
        if not kept.empty:
            frames.append(kept)
            from_previous_csv.append(symbol)
    return prices.combine(frames), from_previous_csv


def previous_csv(path: Path, files: DataFolder) -> pd.DataFrame:
    """The current CSV's rows; none when it is missing or unreadable (writing it then fails,
    naming the problem, unless it was only damaged content that the new file replaces)."""
    try:
        frame = storage.read_price_file(path, files=files)
    except StoredFileError:
        frame = None
    return prices.empty_frame() if frame is None else frame


def write_csv(
    context: dg.AssetExecutionContext,
    symbols: list[str],
    settings: PipelineSettings,
    files: DataFolder,
    outcome: BatchOutcome,
) -> Iterator:
    frame, kept = csv_frame(symbols, settings, files, outcome)
    path = settings.csv_path
    if frame.empty:
        outcome.quarantine(
            "(all)", f"no symbol has rows yet: {path} not written (it is never written empty)"
        )
        return
    try:
        changed = files.write_atomically(path, prices.to_csv_text(frame))
    except StoredFileError as error:
        outcome.file_problems.append(f"{path.name} not written: {error}")
        context.log.error(f"{path.name} not written: {error}")
        return
    summaries = prices.summarise(frame)
    context.log.info(
        f"{path}: {len(frame)} rows, {len(summaries)} symbol(s)"
        + ("" if changed else " (content unchanged, file left as it was)")
        + (f"; rows of {', '.join(kept)} kept from the previous file" if kept else "")
    )
    preview = frame.groupby("simbolo").tail(5)
    yield dg.MaterializeResult(
        asset_key=CSV,
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": len(frame),
            "dagster/column_lineage": CSV_COLUMN_LINEAGE,
            "rewritten": changed,
            "symbols_quarantined": ", ".join(outcome.problems) or "none",
            "date_ranges": dg.MetadataValue.md(formatting.ranges_markdown(summaries)),
            "preview": formatting.preview_table(preview),
            "price_chart": dg.MetadataValue.md(formatting.charts_markdown(summaries)),
            **{f"last_close/{s.symbol}": s.last_close for s in summaries},
        },
    )
