"""The batch flow's assets: raw API responses -> price history frame -> Datos_financieros.csv."""

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from fin_assets.alpha_vantage import responses
from fin_assets.alpha_vantage.errors import AlphaVantageError
from fin_assets.batch import prices
from fin_assets.batch.extraction_log import ExtractionLog
from fin_assets.resources.alpha_vantage import AlphaVantageResource
from fin_assets.resources.settings import PipelineSettings

GROUP = "batch"
EVERY_SYMBOL_FETCHED = "every_symbol_fetched"

PRICE_COLUMN_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("fecha", "date", description="Trading day (US/Eastern)"),
        dg.TableColumn("simbolo", "string", description="Ticker symbol"),
        dg.TableColumn("apertura", "float", description="Open"),
        dg.TableColumn("maximo", "float", description="High"),
        dg.TableColumn("minimo", "float", description="Low"),
        dg.TableColumn("cierre", "float", description="Close (as traded, not split-adjusted)"),
        dg.TableColumn("volumen", "int", description="Shares traded"),
    ]
)


alpha_vantage_api = dg.AssetSpec(
    "alpha_vantage_api",
    group_name=GROUP,
    kinds={"api"},
    description="Alpha Vantage's `TIME_SERIES_DAILY` endpoint (`ALPHAVANTAGE_BASE_URL`; the local "
    "stand-in serving synthetic prices when `ALPHAVANTAGE_API_KEY` is unset). External: "
    "nothing here materialises it; `alpha_vantage_daily_raw` reads it.",
)


class FetchConfig(dg.Config):
    symbols: list[str] = Field(
        default_factory=list,
        description="Symbols to fetch in this run, e.g. [TSLA] to re-run one symbol. "
        "Empty: every symbol in FIN_SYMBOLS.",
    )


@dg.asset(
    group_name=GROUP,
    kinds={"json"},
    deps=[alpha_vantage_api],
    pool="alpha_vantage",
    check_specs=[
        dg.AssetCheckSpec(
            EVERY_SYMBOL_FETCHED,
            asset="alpha_vantage_daily_raw",
            description="Every requested symbol came back as data; names each failure's cause.",
        )
    ],
)
def alpha_vantage_daily_raw(
    context: dg.AssetExecutionContext,
    config: FetchConfig,
    alpha_vantage: AlphaVantageResource,
    settings: PipelineSettings,
):
    """TIME_SERIES_DAILY responses from Alpha Vantage, one JSON file per symbol and fetch under
    `$FIN_DATA_DIR/raw/<SYMBOL>/`, stored as received for audit and replay.

    A symbol whose fetch fails (quota, unknown symbol, timeout...) is left out and named in the
    `every_symbol_fetched` check; the other symbols carry on. Calls go out at most one per
    second, and the `alpha_vantage` pool keeps concurrent runs from doubling up.
    """
    symbols = [s.upper() for s in config.symbols] or settings.symbol_list
    client = alpha_vantage.get_client()
    log = ExtractionLog(settings.extraction_log_path, secret=alpha_vantage.api_key)
    stored: dict[str, str] = {}
    failures: dict[str, AlphaVantageError] = {}
    synthetic = False
    progress = BatchedLog(context.log.info)

    for symbol in symbols:
        try:
            series = client.fetch_daily(symbol, on_attempt=log.record_attempt)
        except AlphaVantageError as error:
            failures[symbol] = error
            context.log.error(f"{error} (after {error.attempts} attempt(s))")
            continue
        path = raw_file_path(settings.raw_dir, symbol, series.fetched_at)
        prices.write_atomically(path, series.body)
        stored[symbol] = str(path)
        days = sorted(series.payload[responses.SERIES_KEY])
        log.record_success(
            symbol,
            series.attempts,
            len(days),
            dt.date.fromisoformat(days[0]),
            dt.date.fromisoformat(days[-1]),
        )
        provisional = (
            " (newest day provisional)" if responses.is_provisional(series.payload) else ""
        )
        progress.add(
            f"{symbol}: {len(days)} days {days[0]}..{days[-1]}{provisional} -> {path.name}"
        )
        synthetic = synthetic or "SYNTHETIC" in json.dumps(series.payload.get("Meta Data", {}))

    progress.flush()
    if synthetic:
        context.log.warning("Prices come from the local Alpha Vantage stand-in: SYNTHETIC data.")
    failure_table = failures_markdown(failures)
    if not stored:
        raise dg.Failure(
            description=f"No symbol could be fetched.\n\n{failure_table}",
            metadata={"failed_symbols": ", ".join(failures)},
        )

    yield dg.Output(
        stored,
        metadata={
            "fetched_symbols": ", ".join(stored),
            "failed_symbols": ", ".join(failures) or "none",
            "raw_files": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in stored.values())),
            "source": "local stand-in (synthetic prices)" if synthetic else "Alpha Vantage API",
        },
    )
    yield dg.AssetCheckResult(
        check_name=EVERY_SYMBOL_FETCHED,
        passed=not failures,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if not failures else f"Failed: {', '.join(failures)}",
        metadata={
            "failed": dg.MetadataValue.md(failure_table or "none"),
            "failed_count": len(failures),
            **{f"cause/{s}": e.cause.code for s, e in failures.items()},
        },
    )


class BatchedLog:
    """One line per fetch, sent as one log event per `interval_s`.

    Every log call is a stored event in the instance's event log, which costs more than a
    fetch without pacing (docs/benchmarks.md); with the API's pacing (1.1 s per call) a person
    still sees progress every few symbols."""

    def __init__(self, emit: Callable[[str], None], interval_s: float = 5.0) -> None:
        self._emit = emit
        self._interval_s = interval_s
        self._lines: list[str] = []
        self._last = float("-inf")  # the first line goes out at once

    def add(self, line: str) -> None:
        self._lines.append(line)
        if time.monotonic() - self._last >= self._interval_s:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            self._emit("\n".join(self._lines))
            self._lines.clear()
        self._last = time.monotonic()


def raw_file_path(raw_dir: Path, symbol: str, fetched_at: dt.datetime) -> Path:
    stamp = fetched_at.strftime("%Y%m%dT%H%M%S%fZ")
    return raw_dir / symbol / f"{symbol}_{stamp}.json"


def failures_markdown(failures: dict[str, AlphaVantageError]) -> str:
    if not failures:
        return ""
    lines = ["| symbol | cause | detail |", "|---|---|---|"]
    for symbol, error in failures.items():
        detail = error.detail.replace("|", "/")
        lines.append(f"| {symbol} | {error.cause.explanation} (`{error.cause.code}`) | {detail} |")
    return "\n".join(lines)


@dg.asset(group_name=GROUP, kinds={"pandas"})
def daily_prices(
    context: dg.AssetExecutionContext,
    alpha_vantage_daily_raw: dict[str, str],
    settings: PipelineSettings,
) -> dg.Output[pd.DataFrame]:
    """Daily prices, one row per (simbolo, fecha), cleaned and typed.

    The free API returns only the latest 100 trading days, so every fetch is upserted into a
    per-symbol history under `$FIN_DATA_DIR/history/`: history longer than 100 days exists
    because this asset keeps it. Fresh values replace stored ones for the same day, so a day
    fetched while the market was open is overwritten by its final values.
    """
    upserted: dict[str, pd.DataFrame] = {}
    lines = []
    for symbol, raw_path in alpha_vantage_daily_raw.items():
        payload = json.loads(Path(raw_path).read_text())
        fresh = prices.series_to_frame(symbol, payload)
        history_path = settings.history_dir / f"{symbol}.csv"
        history = prices.read_price_csv(history_path) if history_path.exists() else fresh.iloc[:0]
        result = prices.upsert(history, fresh)
        written = prices.write_atomically(history_path, prices.to_csv_text(result.frame))
        upserted[symbol] = result.frame
        lines.append(
            f"{symbol}: {result.added_days} new day(s), {result.changed_days} revised, "
            f"history {len(result.frame)} days" + ("" if written else " (unchanged)")
        )
    # One log event for every symbol: each event is a row in the instance's event log, which
    # costs more per symbol than the upsert itself (docs/benchmarks.md).
    context.log.info("History upserted:\n" + "\n".join(lines))

    frame = load_history(settings, upserted)
    summaries = prices.summarise(frame)
    return dg.Output(
        frame,
        metadata={
            "dagster/row_count": len(frame),
            "dagster/column_schema": PRICE_COLUMN_SCHEMA,
            "symbols": len(summaries),
            "date_ranges": dg.MetadataValue.md(ranges_markdown(summaries)),
        },
    )


def load_history(
    settings: PipelineSettings, in_memory: dict[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """The stored history of every configured symbol that has one (those in `in_memory` were
    just written: no need to read them back)."""
    in_memory = in_memory or {}
    frames = []
    for symbol in settings.symbol_list:
        path = settings.history_dir / f"{symbol}.csv"
        if symbol in in_memory:
            frames.append(in_memory[symbol])
        elif path.exists():
            frames.append(prices.read_price_csv(path))
    return prices.combine(frames)


def ranges_markdown(summaries: list[prices.SymbolSummary]) -> str:
    lines = [
        "| symbol | days | first | last | last close |",
        "|---|---:|---|---|---:|",
    ]
    for s in summaries:
        lines.append(f"| {s.symbol} | {s.days} | {s.first_day} | {s.last_day} | {s.last_close:g} |")
    return "\n".join(lines)


@dg.asset(group_name=GROUP, kinds={"csv"})
def datos_financieros_csv(
    context: dg.AssetExecutionContext, daily_prices: pd.DataFrame, settings: PipelineSettings
) -> dg.MaterializeResult:
    """`$FIN_DATA_DIR/Datos_financieros.csv`, the file Logstash ships to `finanzas_batch`.

    Header `fecha,simbolo,apertura,maximo,minimo,cierre,volumen`, sorted by simbolo then fecha,
    numbers written without loss. Replaced atomically (temp file + rename), and only after the
    blocking checks on `daily_prices` pass.
    """
    path = settings.csv_path
    changed = prices.write_atomically(path, prices.to_csv_text(daily_prices))
    summaries = prices.summarise(daily_prices)
    context.log.info(
        f"{path}: {len(daily_prices)} rows, {len(summaries)} symbol(s)"
        + ("" if changed else " (content unchanged, file left as it was)")
    )
    preview = daily_prices.sort_values(["simbolo", "fecha"]).groupby("simbolo").tail(5)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": len(daily_prices),
            "rewritten": changed,
            "date_ranges": dg.MetadataValue.md(ranges_markdown(summaries)),
            "preview": preview_table(preview),
            "price_chart": dg.MetadataValue.md(charts_markdown(summaries)),
            **{f"last_close/{s.symbol}": s.last_close for s in summaries},
        }
    )


def charts_markdown(summaries: list[prices.SymbolSummary], days: int = 100) -> str:
    """Closing prices of the last `days` trading days, one small line chart per symbol."""
    return "\n\n".join(
        f"**{s.symbol}** close {s.closes[-days:][0]:g} → {s.last_close:g}, "
        f"last {min(days, s.days)} trading days to {s.last_day}\n\n"
        + prices.chart_markdown(f"{s.symbol} closes", s.closes[-days:])
        for s in summaries
    )


def preview_table(frame: pd.DataFrame) -> dg.MetadataValue:
    records = [
        dg.TableRecord(
            {
                "fecha": row.fecha.date().isoformat(),
                "simbolo": str(row.simbolo),
                "apertura": float(row.apertura),
                "maximo": float(row.maximo),
                "minimo": float(row.minimo),
                "cierre": float(row.cierre),
                "volumen": int(row.volumen),
            }
        )
        for row in frame.itertuples(index=False)
    ]
    return dg.MetadataValue.table(records, schema=PRICE_COLUMN_SCHEMA)
