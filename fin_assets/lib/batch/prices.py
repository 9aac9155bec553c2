"""Pure functions of the batch flow: Alpha Vantage payload -> price frame -> history -> CSV."""

from __future__ import annotations

import base64
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fin_assets.lib.alpha_vantage.responses import SERIES_KEY
from fin_assets.lib.config import CSV_COLUMNS
from fin_assets.lib.file_store import StoredFileError, folder_of

PRICE_COLUMNS = ("apertura", "maximo", "minimo", "cierre")
FIELD_TO_COLUMN = {
    "1. open": "apertura",
    "2. high": "maximo",
    "3. low": "minimo",
    "4. close": "cierre",
    "5. volume": "volumen",
}
CSV_DTYPES = {"simbolo": "str", **dict.fromkeys(PRICE_COLUMNS, "float64"), "volumen": "int64"}


def empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({column: [] for column in CSV_COLUMNS})
    frame["fecha"] = pd.to_datetime(frame["fecha"])
    return frame.astype(CSV_DTYPES)


def series_to_frame(symbol: str, payload: dict) -> pd.DataFrame:
    """One row per trading day, oldest first. Alpha Vantage's row order has flipped in the
    past, so the frame is sorted here rather than trusted."""
    series = payload[SERIES_KEY]
    frame = pd.DataFrame.from_dict(series, orient="index").rename(columns=FIELD_TO_COLUMN)
    frame.insert(0, "fecha", pd.to_datetime(frame.index, format="%Y-%m-%d"))
    frame.insert(1, "simbolo", symbol)
    frame = frame.astype(CSV_DTYPES)[list(CSV_COLUMNS)]
    return frame.sort_values("fecha", ignore_index=True)


@dataclass(frozen=True)
class UpsertResult:
    frame: pd.DataFrame
    added_days: int
    changed_days: int


def upsert(history: pd.DataFrame, fresh: pd.DataFrame) -> UpsertResult:
    """Fresh rows win over stored ones for the same day (a provisional day fetched while the
    market was open gets its final values); days only in the history are kept."""
    merged = (
        pd.concat([history, fresh], ignore_index=True)
        .drop_duplicates(subset=["simbolo", "fecha"], keep="last")
        .sort_values(["simbolo", "fecha"], ignore_index=True)
    )
    known = history.set_index("fecha")
    overlap = fresh[fresh["fecha"].isin(known.index)].set_index("fecha")
    columns = [*PRICE_COLUMNS, "volumen"]
    changed = (overlap[columns] != known.loc[overlap.index, columns]).any(axis=1)
    return UpsertResult(
        frame=merged,
        added_days=int(len(fresh) - len(overlap)),
        changed_days=int(changed.sum()),
    )


def to_csv_text(frame: pd.DataFrame) -> str:
    """The CSV contract: exact header, ISO dates, sorted by simbolo then fecha, LF line ends,
    floats in shortest round-trip form (222.3, not 222.3000), so nothing is lost."""
    ordered = frame.sort_values(["simbolo", "fecha"], ignore_index=True)[list(CSV_COLUMNS)]
    return ordered.to_csv(index=False, lineterminator="\n", date_format="%Y-%m-%d")


def read_price_csv(path: Path) -> pd.DataFrame:
    """Read a file written by `to_csv_text` back into a frame of the same dtypes (through
    the file store; the strict, line-naming reader is `storage.read_price_file`)."""
    text = folder_of(path).read_text(path)
    if text is None:
        raise StoredFileError(path, None, "does not exist")
    frame = pd.read_csv(io.StringIO(text), dtype=CSV_DTYPES, keep_default_na=False)
    frame["fecha"] = pd.to_datetime(frame["fecha"], format="%Y-%m-%d")
    return frame[list(CSV_COLUMNS)]


def write_atomically(path: Path, text: str) -> bool:
    """Replace `path` with `text` atomically (temp file + rename) through the file store
    (`fin_assets.lib.file_store.DataFolder.write_atomically`), the folder holding it as the
    boundary. Returns False and leaves the file untouched when it already holds `text`."""
    return folder_of(path).write_atomically(path, text)


def combine(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return empty_frame()
    return pd.concat(frames, ignore_index=True).sort_values(["simbolo", "fecha"], ignore_index=True)


@dataclass(frozen=True)
class SymbolSummary:
    symbol: str
    days: int
    first_day: dt.date
    last_day: dt.date
    last_close: float
    closes: list[float]


def summarise(frame: pd.DataFrame) -> list[SymbolSummary]:
    summaries = []
    for symbol, rows in frame.groupby("simbolo", sort=True):
        summaries.append(
            SymbolSummary(
                symbol=str(symbol),
                days=int(len(rows)),
                first_day=rows["fecha"].min().date(),
                last_day=rows["fecha"].max().date(),
                last_close=float(rows["cierre"].iloc[-1]),
                closes=[float(v) for v in rows["cierre"]],
            )
        )
    return summaries


def price_chart_svg(values: list[float], width: int = 320, height: int = 56) -> str:
    """A small line chart of `values` (oldest first) as SVG: the UI shows it inline in Markdown
    without any plotting library. Annotated with the low and high of the window."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    pad, label_width = 4, 56  # the low/high labels sit right of the line, never on it
    step = (width - label_width - 2 * pad) / (len(values) - 1)
    points = " ".join(
        f"{pad + i * step:.1f},{pad + (high - v) / span * (height - 2 * pad):.1f}"
        for i, v in enumerate(values)
    )
    rising = values[-1] >= values[0]
    colour = "#16a34a" if rising else "#dc2626"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
        f'<text x="{width - pad}" y="11" font-size="10" text-anchor="end" fill="#6b7280">'
        f"{high:g}</text>"
        f'<text x="{width - pad}" y="{height - pad}" font-size="10" text-anchor="end" '
        f'fill="#6b7280">{low:g}</text></svg>'
    )


def chart_markdown(label: str, values: list[float]) -> str:
    """`![label](data:image/svg+xml;base64,...)`: an image Markdown renders from the metadata."""
    svg = price_chart_svg(values)
    if not svg:
        return ""
    encoded = base64.b64encode(svg.encode()).decode()
    return f"![{label}](data:image/svg+xml;base64,{encoded})"
