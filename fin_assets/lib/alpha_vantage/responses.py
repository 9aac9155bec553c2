"""Tell a TIME_SERIES_DAILY data body from Alpha Vantage's HTTP-200 failure bodies.

The API has no error codes: failures come as a JSON object with one top-level key
(`Error Message`, `Information`, `Note`) whose wording changes over time, or as `{}`. The same
throttle texts have been sent under both `Information` and `Note`, so the text decides, and
rate limits are recognised before "premium" because quota texts mention premium plans too.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass
from typing import Any

import orjson

from fin_assets.lib.alpha_vantage.errors import FailureCause

SERIES_KEY = "Time Series (Daily)"
META_KEY = "Meta Data"
SYMBOL_FIELD = "2. Symbol"
ROW_FIELDS = ("1. open", "2. high", "3. low", "4. close", "5. volume")
CSV_HEADER = ("timestamp", "open", "high", "low", "close", "volume")
INT64_MAX = 2**63 - 1  # the history's volume column is int64
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Classification:
    cause: FailureCause | None  # None: the body is data
    provider_text: str = ""  # the provider's own words, unredacted: redact before showing


def parse_json(body: bytes | str) -> Any:
    """The decoded body, or raises ValueError (with line and column) for a body that is not
    JSON, not UTF-8, or nested deeper than 1024 levels (orjson's limit: no RecursionError)."""
    data = body.encode() if isinstance(body, str) else body
    return orjson.loads(data.removeprefix(_BOM))


def classify_notice(text: str) -> FailureCause:
    """An `Information`/`Note` text. Throttles first: their texts mention premium plans too."""
    lowered = text.lower()
    if "per second" in lowered or "burst" in lowered or "sparingly" in lowered:
        return FailureCause.BURST_LIMIT
    if "per minute" in lowered:
        return FailureCause.MINUTE_LIMIT
    if "per day" in lowered:
        return FailureCause.DAILY_QUOTA
    # 2018-era throttles: "...if you would like to have a higher API call volume" (sent after
    # a few calls a minute, with premium@ or support@ addresses in some wordings).
    if "call volume" in lowered or "call frequency" in lowered or "rate limit" in lowered:
        return FailureCause.CALL_VOLUME_LIMIT
    if "demo" in lowered:
        return FailureCause.DEMO_KEY
    if "premium" in lowered:
        return FailureCause.PREMIUM_ONLY
    return FailureCause.UNRECOGNISED_NOTICE


def classify_error_message(text: str) -> FailureCause:
    lowered = text.lower()
    if "apikey" in lowered or "api key" in lowered:
        return FailureCause.INVALID_API_KEY
    # Sent for an unknown symbol, but also for a known one whose history failed the
    # provider's QA and for other bad parameters: the text cannot tell which.
    if "invalid api call" in lowered:
        return FailureCause.INVALID_CALL
    return FailureCause.PROVIDER_ERROR


def classify(payload: Any, symbol: str | None = None) -> Classification:
    """Data (cause None) or the named failure; `symbol`, when given, must match the body's."""
    if not isinstance(payload, dict):
        return Classification(FailureCause.MALFORMED_DATA, "the body is not a JSON object")
    if not payload:
        return Classification(FailureCause.EMPTY_RESPONSE)
    if SERIES_KEY in payload:
        problem = find_malformed_row(payload[SERIES_KEY])
        if problem:
            return Classification(FailureCause.MALFORMED_DATA, problem)
        answered = body_symbol(payload)
        if symbol is not None and answered is not None and answered != symbol.upper():
            return Classification(
                FailureCause.SYMBOL_MISMATCH, f"asked for {symbol!r}, got {answered!r}"
            )
        return Classification(None)
    if "Error Message" in payload:
        text = str(payload["Error Message"])
        return Classification(classify_error_message(text), text)
    for key in ("Information", "Note"):
        if key in payload:
            text = str(payload[key])
            return Classification(classify_notice(text), text)
    keys = ", ".join(sorted(map(str, payload))[:5])
    return Classification(FailureCause.MALFORMED_DATA, f"no '{SERIES_KEY}' (keys: {keys})")


def body_symbol(payload: dict) -> str | None:
    """`Meta Data` -> `2. Symbol`, upper-cased, or None when the body does not say."""
    meta = payload.get(META_KEY)
    if not isinstance(meta, dict) or not isinstance(meta.get(SYMBOL_FIELD), str):
        return None
    return meta[SYMBOL_FIELD].strip().upper()


def csv_to_payload(text: str, symbol: str) -> dict:
    """A `datatype=csv` body as the JSON shape (`Time Series (Daily)`, newest first), so the
    rest of the pipeline reads one shape. Raises ValueError naming the line for a bad CSV.

    The CSV has no `Meta Data`; the one built here names the symbol asked for.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != CSV_HEADER:
        raise ValueError(f"line 1: header {header!r} is not {','.join(CSV_HEADER)}")
    series: dict[str, dict[str, str]] = {}
    for number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(CSV_HEADER):
            raise ValueError(f"line {number}: {len(row)} fields, expected {len(CSV_HEADER)}")
        day, *values = (field.strip() for field in row)
        if day in series:
            raise ValueError(f"line {number}: date {day} appears twice")
        series[day] = dict(zip(ROW_FIELDS, values, strict=True))
    return {
        META_KEY: {
            "1. Information": "Daily Prices (open, high, low, close) and Volumes (from CSV)",
            SYMBOL_FIELD: symbol.upper(),
        },
        SERIES_KEY: series,
    }


def find_malformed_row(series: Any) -> str | None:
    """Why the series cannot be taken as data, or None when every row is well formed."""
    if not isinstance(series, dict) or not series:
        return f"'{SERIES_KEY}' is empty or not an object"
    for day, row in series.items():
        if not _is_iso_date(day):
            return f"row key {day!r} is not a YYYY-MM-DD date"
        if not isinstance(row, dict):
            return f"row {day} is not an object"
        for field in ROW_FIELDS:
            value = row.get(field)
            if not isinstance(value, str):
                return f"row {day} has no '{field}'"
            try:
                number = float(value)
            except ValueError:
                return f"row {day} has '{field}' = {value!r}, not a number"
            if not math.isfinite(number):
                return f"row {day} has '{field}' = {value!r}, not a finite number"
        volume = row["5. volume"].strip()
        if not (volume.isascii() and volume.isdigit()):
            return f"row {day} has volume {row['5. volume']!r}, not a whole number"
        # Length first: int() refuses strings over 4300 digits (ValueError, not our message).
        if len(volume.lstrip("0")) > 19 or int(volume) > INT64_MAX:
            return f"row {day} has volume {volume[:30]!r}, beyond a 64-bit integer"
    return None


def _is_iso_date(text: Any) -> bool:
    if not isinstance(text, str) or len(text) != 10:
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def last_refreshed(payload: dict) -> str:
    """`3. Last Refreshed`: a date, or a date and time while the market session is running."""
    meta = payload.get(META_KEY) or {}
    return str(meta.get("3. Last Refreshed", "")).strip()


def is_provisional(payload: dict) -> bool:
    """A time in `Last Refreshed` means the newest row is the running session, not final."""
    return " " in last_refreshed(payload)
