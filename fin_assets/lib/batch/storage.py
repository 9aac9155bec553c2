"""Where the batch assets' data lives: the files under `$FIN_DATA_DIR` are the assets' storage.

- `alpha_vantage_daily_raw`, partition SYMBOL: the newest `raw/<SYMBOL>/<SYMBOL>_<stamp>.json`.
- `daily_prices`, partition SYMBOL: `history/<SYMBOL>.csv`.
- `datos_financieros_csv`: `Datos_financieros.csv`.

Nothing passes between the assets through Dagster's pickles, so any of them can be
re-materialised on its own, from the files, even on a freshly created Dagster instance.

A history file is read strictly: a truncated, Excel-saved (`;`) or hand-edited file raises
`StoredFileError` naming the file, the line and what is wrong, instead of a pandas traceback.
Every byte goes through `fin_assets.lib.file_store` (no link out of the folder is followed, a
directory or FIFO where a file belongs is named), so one symbol's damaged file is that
symbol's `StoredFileError`, never the whole step's traceback.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pandas as pd

from fin_assets.lib.batch import prices, validation
from fin_assets.lib.config import CSV_COLUMNS
from fin_assets.lib.file_store import DataFolder, StoredFileError, folder_of
from fin_assets.lib.symbols import validate_symbol

HEADER = ",".join(CSV_COLUMNS)


def symbol_file(folder: Path, symbol: str, suffix: str) -> Path:
    """`folder/<SYMBOL><suffix>`, refusing anything that is not a plain symbol (`../x`, `a/b`).
    Where the name really leads (a link) is the file store's to check when it is opened."""
    return folder / f"{validate_symbol(symbol)}{suffix}"


def parse_price_csv(text: str, path: Path, symbol: str | None = None) -> pd.DataFrame:
    """The rows of a price CSV (`to_csv_text`'s format); raises `StoredFileError` at the first
    problem. A BOM and CRLF line ends are harmless and accepted; `;` separators, other date
    formats, empty or non-numeric cells, extra fields and implausible values are not."""
    text = text.removeprefix("\ufeff")
    header = text.split("\n", 1)[0].rstrip("\r")
    if header != HEADER:
        hint = " (';' separators: saved by a spreadsheet?)" if ";" in header else ""
        raise StoredFileError(path, 1, f"header is {header[:80]!r}, expected {HEADER!r}{hint}")
    # Fast path (every run reads every history): typed parse and whole-column checks; only a
    # file that fails them goes through the slower search for the first bad line.
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=prices.CSV_DTYPES, keep_default_na=False)
        frame["fecha"] = pd.to_datetime(frame["fecha"], format="%Y-%m-%d")
        frame = frame[list(CSV_COLUMNS)]
    except (ValueError, TypeError, KeyError, pd.errors.ParserError):
        frame = None
    if frame is not None and _clean(frame, symbol):
        return frame.sort_values(["simbolo", "fecha"], ignore_index=True)
    return _diagnose(text, path, symbol)


def _clean(frame: pd.DataFrame, symbol: str | None) -> bool:
    return bool(
        not frame.isna().any().any()
        and (symbol is None or (frame["simbolo"] == symbol).all())
        and not (frame["simbolo"].str.strip() == "").any()
        and validation.implausible_values(frame).empty
        and not frame.duplicated(["simbolo", "fecha"]).any()
    )


def _diagnose(text: str, path: Path, symbol: str | None) -> pd.DataFrame:
    """Column by column, so that the first bad cell is named with its line."""
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.ParserError as error:  # e.g. "Expected 7 fields in line 5, saw 8"
        raise StoredFileError(path, None, f"not a {len(CSV_COLUMNS)}-column CSV: {error}") from None
    if raw.empty:
        return prices.empty_frame()

    def fail(mask: pd.Series, what: str) -> None:
        if mask.any():
            index = int(mask.to_numpy().nonzero()[0][0])
            value = raw.iloc[index].to_dict()
            raise StoredFileError(path, index + 2, f"{what}: {value}")

    for column in CSV_COLUMNS:
        fail(raw[column].isna() | (raw[column].str.strip() == ""), f"empty {column}")
    fecha = pd.to_datetime(raw["fecha"], format="%Y-%m-%d", errors="coerce")
    fail(fecha.isna(), "fecha is not a YYYY-MM-DD date")
    numeric = (*prices.PRICE_COLUMNS, "volumen")
    numbers = {c: pd.to_numeric(raw[c], errors="coerce") for c in numeric}
    for column, values in numbers.items():
        fail(values.isna(), f"{column} is not a number")
    volumen = numbers["volumen"]
    fail(volumen != volumen.round(), "volumen is not a whole number")
    if symbol is not None:
        fail(raw["simbolo"] != symbol, f"simbolo is not {symbol}")
    frame = pd.DataFrame(
        {
            "fecha": fecha,
            "simbolo": raw["simbolo"],
            **{c: numbers[c].astype("float64") for c in prices.PRICE_COLUMNS},
            "volumen": volumen.astype("int64"),
        }
    ).astype(prices.CSV_DTYPES)
    implausible = frame.index.isin(validation.implausible_values(frame).index)
    fail(pd.Series(implausible), "implausible value (date before 1970, price above 1e8...)")
    fail(pd.Series(frame.duplicated(["simbolo", "fecha"], keep="first")), "duplicated day")
    return frame.sort_values(["simbolo", "fecha"], ignore_index=True)[list(CSV_COLUMNS)]


def read_price_file(
    path: Path, symbol: str | None = None, files: DataFolder | None = None
) -> pd.DataFrame | None:
    """The rows of the price CSV at `path`, None when there is no such file."""
    text = (files or folder_of(path)).read_text(path)
    return None if text is None else parse_price_csv(text, path, symbol)


class HistoryStore:
    """`history/<SYMBOL>.csv`: the stored partitions of `daily_prices`. `files`: the data
    folder the links are checked against (default: `folder` itself)."""

    def __init__(self, folder: Path, files: DataFolder | None = None) -> None:
        self.folder = folder
        self.files = files or DataFolder(folder)

    def path(self, symbol: str) -> Path:
        return symbol_file(self.folder, symbol, ".csv")

    def load(self, symbol: str) -> pd.DataFrame | None:
        """The stored history, None when there is none yet; `StoredFileError` if unreadable."""
        return read_price_file(self.path(symbol), validate_symbol(symbol), self.files)

    def save(self, symbol: str, frame: pd.DataFrame) -> bool:
        return self.files.write_atomically(self.path(symbol), prices.to_csv_text(frame))


class RawStore:
    """`raw/<SYMBOL>/<SYMBOL>_<UTC stamp>.json`: every fetch of `alpha_vantage_daily_raw`."""

    def __init__(self, folder: Path, files: DataFolder | None = None) -> None:
        self.folder = folder
        self.files = files or DataFolder(folder)

    def path(self, symbol: str, fetched_at: dt.datetime) -> Path:
        stamp = fetched_at.strftime("%Y%m%dT%H%M%S%fZ")
        return symbol_file(self.folder, symbol, "") / f"{symbol}_{stamp}.json"

    def save(self, path: Path, body: bytes | str) -> None:
        self.files.write_atomically(path, body)

    def latest(self, symbol: str) -> Path | None:
        """The newest stored response (the stamp sorts by time)."""
        folder = symbol_file(self.folder, symbol, "")
        files = self.files.list(folder, f"{validate_symbol(symbol)}_*.json")
        return files[-1] if files else None

    def load(self, path: Path) -> dict:
        """A stored response; `StoredFileError` when unreadable, truncated or not an object."""
        payload = self.files.read_json(path)
        if not isinstance(payload, dict):
            kind = type(payload).__name__
            raise StoredFileError(path, None, f"holds a JSON {kind}, not an object")
        return payload
