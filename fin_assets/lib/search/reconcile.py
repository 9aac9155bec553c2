"""Compares Datos_financieros.csv with what Logstash indexed: pure functions, no I/O but the CSV."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from fin_assets.lib import config
from fin_assets.lib.file_store import StoredFileError, folder_of
from fin_assets.lib.search.elasticsearch import SymbolSummary


class CsvContractError(ValueError):
    """The CSV does not follow the contract (header, columns)."""


def summarise_csv(path: Path) -> dict[str, SymbolSummary]:
    """Per symbol: rows (days), last fecha and the cierre of that day."""
    rows: dict[str, list[tuple[str, float]]] = {}
    text = folder_of(path).read_text(path)  # StoredFileError (a ValueError) names a bad file
    if text is None:
        raise StoredFileError(path, None, "does not exist")
    with io.StringIO(text, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if tuple(header or ()) != config.CSV_COLUMNS:
            raise CsvContractError(
                f"{path.name} header is {header!r}, expected {list(config.CSV_COLUMNS)}"
            )
        fecha, simbolo, cierre = (
            config.CSV_COLUMNS.index(c) for c in ("fecha", "simbolo", "cierre")
        )
        for line_no, row in enumerate(reader, start=2):
            if len(row) != len(config.CSV_COLUMNS):
                raise CsvContractError(f"{path.name} line {line_no} has {len(row)} fields")
            rows.setdefault(row[simbolo].upper(), []).append((row[fecha], float(row[cierre])))
    summaries = {}
    for symbol, days in rows.items():
        last_date, last_close = max(days)  # ISO dates sort as text
        summaries[symbol] = SymbolSummary(len(days), last_date, last_close)
    return summaries


@dataclass(frozen=True)
class Difference:
    symbol: str
    problem: str
    csv: SymbolSummary | None
    indexed: SymbolSummary | None


def _same_close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def compare(
    csv_side: dict[str, SymbolSummary], index_side: dict[str, SymbolSummary]
) -> list[Difference]:
    """One Difference per symbol whose day count, last date or last close disagree."""
    differences = []
    for symbol in sorted(set(csv_side) | set(index_side)):
        expected, actual = csv_side.get(symbol), index_side.get(symbol)
        if expected is None:
            problem = "indexed but not in the CSV"
        elif actual is None:
            problem = "in the CSV but not indexed"
        else:
            problems = []
            if expected.days != actual.days:
                problems.append("day count")
            if expected.last_date != actual.last_date:
                problems.append("last date")
            if not _same_close(expected.last_close, actual.last_close):
                problems.append("last close")
            if not problems:
                continue
            problem = "different " + ", ".join(problems)
        differences.append(Difference(symbol, problem, expected, actual))
    return differences


def _cell(summary: SymbolSummary | None, attribute: str) -> str:
    if summary is None:
        return "-"
    value = getattr(summary, attribute)
    return "-" if value is None else str(value)


def differences_markdown(differences: list[Difference]) -> str:
    lines = [
        "| symbol | problem | CSV days | index days | CSV last date | index last date "
        "| CSV last close | index last close |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in differences:
        cells = [d.symbol, d.problem]
        for attribute in ("days", "last_date", "last_close"):
            cells += [_cell(d.csv, attribute), _cell(d.indexed, attribute)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
