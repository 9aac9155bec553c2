"""What the UI shows for the batch assets: Markdown tables, charts, previews, progress lines."""

from __future__ import annotations

import time
from collections.abc import Callable

import dagster as dg
import pandas as pd

from fin_assets.defs.batch.specs import PRICE_COLUMN_SCHEMA
from fin_assets.lib.alpha_vantage.errors import AlphaVantageError
from fin_assets.lib.batch import prices


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


def failures_markdown(failures: dict[str, AlphaVantageError]) -> str:
    if not failures:
        return ""
    lines = ["| symbol | cause | detail |", "|---|---|---|"]
    for symbol, error in failures.items():
        detail = error.detail.replace("|", "/")
        lines.append(f"| {symbol} | {error.cause.explanation} (`{error.cause.code}`) | {detail} |")
    return "\n".join(lines)


def ranges_markdown(summaries: list[prices.SymbolSummary]) -> str:
    lines = [
        "| symbol | days | first | last | last close |",
        "|---|---:|---|---|---:|",
    ]
    for s in summaries:
        lines.append(f"| {s.symbol} | {s.days} | {s.first_day} | {s.last_day} | {s.last_close:g} |")
    return "\n".join(lines)


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
