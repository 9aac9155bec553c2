"""Starting prices for the simulator: each symbol's latest `cierre` in Datos_financieros.csv."""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fin_assets.lib.file_store import StoredFileError, folder_of
from fin_assets.lib.simulator.events import MAX_PRICE

# Used for a symbol that the CSV does not cover, or when the CSV does not exist yet
# (e.g. the simulator started before the first batch run).
DEFAULT_START_PRICE = 100.0
# At most this many bad rows are named one by one; the rest are counted.
MAX_PROBLEMS_NAMED = 10

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BadClose:
    """A row whose `cierre` cannot seed a price."""

    path: Path
    line: int
    symbol: str
    day: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}, line {self.line}: {self.symbol} {self.day}: {self.reason}"


def parse_close(text: str | None) -> float:
    """A usable start price from a `cierre` cell, or ValueError saying why not."""
    try:
        close = float(text or "")
    except ValueError:
        raise ValueError(f"cierre {text!r} is not a number") from None
    if not math.isfinite(close) or close <= 0 or close > MAX_PRICE:
        raise ValueError(f"cierre {text!r} is not a price in (0, {MAX_PRICE:g}]")
    return close


def latest_closes(csv_path: Path, problems: list[BadClose] | None = None) -> dict[str, float]:
    """`{simbolo: cierre}` of each symbol's most recent `fecha` with a usable close; empty when
    the file is missing. A file that cannot be read (a directory, a link out of the data
    folder, a FIFO, not UTF-8) raises `StoredFileError` naming it.

    ISO dates (YYYY-MM-DD) compare correctly as strings, so no date parsing is needed. A row
    whose `cierre` is not a finite positive price (NaN, inf, 1.7e308, text) is skipped and,
    when `problems` is given, described there with the file, line and symbol.
    """
    text = folder_of(csv_path).read_text(csv_path)
    if text is None:
        return {}
    latest: dict[str, tuple[str, float]] = {}
    with io.StringIO(text.removeprefix("\ufeff"), newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            symbol = (row.get("simbolo") or "").strip().upper()
            day = (row.get("fecha") or "").strip()
            if not symbol:
                continue
            try:
                close = parse_close(row.get("cierre"))
            except ValueError as exc:
                if problems is not None:
                    problems.append(BadClose(csv_path, reader.line_num, symbol, day, str(exc)))
                continue
            if symbol not in latest or day >= latest[symbol][0]:
                latest[symbol] = (day, close)
    return {symbol: close for symbol, (_, close) in latest.items()}


def start_prices(
    symbols: list[str],
    csv_path: Path,
    log: Callable[[str, str], None] | None = None,
) -> dict[str, float]:
    """One starting price per symbol: the latest usable close when known, else
    DEFAULT_START_PRICE. Bad closes of these symbols are reported through `log(level,
    message)` (default: this module's logger), naming file and line."""
    problems: list[BadClose] = []
    report = log or (lambda level, message: getattr(_logger, level)(message))
    try:
        closes = latest_closes(csv_path, problems)
    except StoredFileError as error:  # the feed still starts, from the default prices
        report("warning", f"Start prices not read: {error}; starting from {DEFAULT_START_PRICE:g}")
        closes = {}
    wanted = {symbol.upper() for symbol in symbols}
    relevant = [problem for problem in problems if problem.symbol in wanted]
    for problem in relevant[:MAX_PROBLEMS_NAMED]:
        report("warning", f"Start price ignored: {problem}")
    if len(relevant) > MAX_PROBLEMS_NAMED:
        report(
            "warning",
            f"{len(relevant) - MAX_PROBLEMS_NAMED} more unusable cierre values in {csv_path}",
        )
    prices = {}
    for symbol in symbols:
        if symbol in closes:
            prices[symbol] = closes[symbol]
            continue
        prices[symbol] = DEFAULT_START_PRICE
        if any(problem.symbol == symbol.upper() for problem in relevant):
            report(
                "warning",
                f"{symbol}: no usable close in {csv_path}; starting from the default"
                f" {DEFAULT_START_PRICE:g}",
            )
    return prices
