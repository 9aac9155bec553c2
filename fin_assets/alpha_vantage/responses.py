"""Tell a TIME_SERIES_DAILY data body from Alpha Vantage's HTTP-200 failure bodies.

The API has no error codes: failures come as a JSON object with one top-level key
(`Error Message`, `Information`, `Note`) whose wording changes over time, or as `{}`. The same
throttle texts have been sent under both `Information` and `Note`, so the text decides, and
rate limits are recognised before "premium" because quota texts mention premium plans too.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

from fin_assets.alpha_vantage.errors import FailureCause

SERIES_KEY = "Time Series (Daily)"
META_KEY = "Meta Data"
ROW_FIELDS = ("1. open", "2. high", "3. low", "4. close", "5. volume")


@dataclass(frozen=True)
class Classification:
    cause: FailureCause | None  # None: the body is data
    provider_text: str = ""  # the provider's own words, unredacted: redact before showing


def parse_json(body: str) -> Any:
    """The decoded body, or raises ValueError for a body that is not JSON (e.g. an HTML page)."""
    return json.loads(body)


def classify_notice(text: str) -> FailureCause:
    lowered = text.lower()
    if "per second" in lowered or "burst" in lowered or "sparingly" in lowered:
        return FailureCause.BURST_LIMIT
    if "per minute" in lowered:
        return FailureCause.MINUTE_LIMIT
    if "per day" in lowered:
        return FailureCause.DAILY_QUOTA
    if "demo" in lowered:
        return FailureCause.DEMO_KEY
    if "premium" in lowered:
        return FailureCause.PREMIUM_ONLY
    return FailureCause.UNRECOGNISED_NOTICE


def classify_error_message(text: str) -> FailureCause:
    lowered = text.lower()
    if "apikey" in lowered or "api key" in lowered:
        return FailureCause.INVALID_API_KEY
    return FailureCause.UNKNOWN_SYMBOL


def classify(payload: Any) -> Classification:
    if not isinstance(payload, dict):
        return Classification(FailureCause.MALFORMED_DATA, "the body is not a JSON object")
    if not payload:
        return Classification(FailureCause.EMPTY_RESPONSE)
    if SERIES_KEY in payload:
        problem = find_malformed_row(payload[SERIES_KEY])
        if problem:
            return Classification(FailureCause.MALFORMED_DATA, problem)
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
        if not row["5. volume"].strip().isdigit():
            return f"row {day} has volume {row['5. volume']!r}, not a whole number"
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
