"""Starting prices for the simulator: each symbol's latest `cierre` in Datos_financieros.csv."""

from __future__ import annotations

import csv
from pathlib import Path

# Used for a symbol that the CSV does not cover, or when the CSV does not exist yet
# (e.g. the simulator started before the first batch run).
DEFAULT_START_PRICE = 100.0


def latest_closes(csv_path: Path) -> dict[str, float]:
    """`{simbolo: cierre}` of each symbol's most recent `fecha`; empty when the file is missing.

    ISO dates (YYYY-MM-DD) compare correctly as strings, so no date parsing is needed.
    Rows with an unreadable or non-positive `cierre` are skipped.
    """
    if not csv_path.is_file():
        return {}
    latest: dict[str, tuple[str, float]] = {}
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            symbol = (row.get("simbolo") or "").strip().upper()
            day = (row.get("fecha") or "").strip()
            try:
                close = float(row.get("cierre") or "")
            except ValueError:
                continue
            if not symbol or close <= 0:
                continue
            if symbol not in latest or day >= latest[symbol][0]:
                latest[symbol] = (day, close)
    return {symbol: close for symbol, (_, close) in latest.items()}


def start_prices(symbols: list[str], csv_path: Path) -> dict[str, float]:
    """One starting price per symbol: the latest close when known, else DEFAULT_START_PRICE."""
    closes = latest_closes(csv_path)
    return {symbol: closes.get(symbol, DEFAULT_START_PRICE) for symbol in symbols}
