"""The Logstash pipeline's transformations, in Python, to index documents shaped exactly like
the ones Logstash writes and to reject exactly the events it rejects. test_logstash_mirror.py
compares every constant below with the parsed pipeline, and test_logstash_ruby.py runs the
pipeline's own ruby code in JRuby against these functions, so a change on one side fails the
tests until the other follows."""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from zoneinfo import ZoneInfo

from fin_assets.lib import config
from fin_assets.lib.batch import validation

# --- shared by both flows --------------------------------------------------------------------
# The patterns of the ruby checks (`@decimal`, `@integer`), ASCII digits like Ruby's \d. No
# leading zeros for integers: Ruby's Integer("0123") is octal 83, the csv filter would store it.
DECIMAL_PATTERN = r"\A[+-]?\d+(\.\d+)?([eE][+-]?\d+)?\z"
INTEGER_PATTERN = r"\A[+-]?(0|[1-9]\d*)\z"

# Every tag that sends an event to fin_rejected instead of an index, with its meaning (the
# pipeline's `rejection_reason` ruby filter and its output condition list the same tags).
REJECTION_REASONS = {
    "_csvparsefailure": "the csv filter could not parse the line",
    "_csvcolumncount": "wrong number of columns",
    "_csvemptyvalue": "a column is empty",
    "_csvtypefailure": "a numeric column is not a number",
    "_csvvaluefailure": "a value breaks the batch row rules (price, range, volume, date)",
    "_dateparsefailure": "the date (fecha / ts) could not be parsed",
    "_jsonparsefailure": "the Kafka message is not JSON",
    "_typefailure": "a numeric field is not a number",
    "_mutate_error": "the mutate filter failed (type conversion)",
    "_rubyexception": "a ruby filter raised an exception",
    "_missing_event_id": "the event has no event_id",
    "_unknown_event_type": "the event_type is not trade, price_alert or api_error",
}
REJECTED_PIPELINE = "fin_rejected"


def _ruby_regex(pattern: str) -> re.Pattern:
    """Ruby's \\A ... \\z anchors as Python's fullmatch; \\d limited to ASCII as in Ruby."""
    return re.compile(pattern.removeprefix(r"\A").removesuffix(r"\z"), re.ASCII)


_DECIMAL = _ruby_regex(DECIMAL_PATTERN)
_INTEGER = _ruby_regex(INTEGER_PATTERN)


class Rejected(Exception):  # noqa: N818 - the pipeline's word for it
    """The pipeline would send this event to fin_rejected, tagged, with this reason."""

    def __init__(self, tag: str, reason: str):
        super().__init__(f"{tag}: {reason}")
        self.tag = tag
        self.reason = reason


# --- batch flow: csv + row check + date + mutate ---------------------------------------------
BATCH_CONVERT = {
    "apertura": "float",
    "maximo": "float",
    "minimo": "float",
    "cierre": "float",
    "volumen": "integer",
}
BATCH_DATE_FORMAT = "yyyy-MM-dd"
BATCH_UPPERCASE = ["simbolo"]
TRADING_DAY_FIELD = "[@metadata][trading_day]"
BATCH_DOCUMENT_ID = "%{simbolo}-%{[@metadata][trading_day]}"

# --- transactions flow: number check + date + mutate + severity + tags + notional ------------
TRANSACTION_CONVERT = {
    "seq": "integer",
    "quantity": "integer",
    "price": "float",
    "amount": "float",
    "previous_price": "float",
    "new_price": "float",
    "change_pct": "float",
    "threshold_pct": "float",
    "latency_ms": "integer",
    "retry_after_s": "float",
}
TRANSACTION_LOWERCASE = ["event_type"]
TRANSACTION_UPPERCASE = ["symbol", "level", "side", "direction"]
SEVERITY = {"ERROR": 40, "WARNING": 30}
DEFAULT_SEVERITY = 20
EVENT_TYPE_TAGS = {"trade": "trade", "price_alert": "price_alert", "api_error": "api_error"}
UNKNOWN_EVENT_TYPE_TAG = "_unknown_event_type"
TRANSACTION_DOCUMENT_ID = "%{event_id}"

_CASTS = {"float": float, "integer": int}


def _logstash_timestamp(moment: dt.datetime) -> str:
    """Logstash serialises a timestamp as UTC with milliseconds and a Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def market_midnight(day: dt.date) -> str:
    """The one time of a batch row: its trading day's midnight in the market's zone."""
    return _logstash_timestamp(
        dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(config.MARKET_TIMEZONE))
    )


def batch_row_problem(values: list[str]) -> tuple[str, str] | None:
    """The `batch_row_check` ruby filter: (tag, what is wrong) for a bad row, else None."""
    columns = config.CSV_COLUMNS
    if len(values) != len(columns):
        return (
            "_csvcolumncount",
            f"{len(values)} columns, expected {len(columns)} ({','.join(columns)})",
        )
    empty = [name for name, value in zip(columns, values, strict=True) if not value.strip()]
    if empty:
        return "_csvemptyvalue", f"empty {', '.join(empty)}"
    bad = []
    for name, kind in BATCH_CONVERT.items():
        value = values[columns.index(name)]
        if not (_INTEGER if kind == "integer" else _DECIMAL).fullmatch(value):
            bad.append(f"{name}={value} is not a number")
    if bad:
        return "_csvtypefailure", ", ".join(bad)
    problems = batch_value_problems(dict(zip(columns, values, strict=True)))
    if problems:
        return "_csvvaluefailure", ", ".join(problems)
    return None


BATCH_PRICE_COLUMNS = ("apertura", "maximo", "minimo", "cierre")


def batch_value_problems(raw: dict[str, str]) -> list[str]:
    """The value part of `batch_row_check`: the batch's row rules (validation.py's
    inconsistent_prices, negative_volumes, implausible_values) on one syntactically valid row."""
    price = {name: float(raw[name]) for name in BATCH_PRICE_COLUMNS}
    volume = int(raw["volumen"])
    problems = []
    for name in BATCH_PRICE_COLUMNS:
        if not math.isfinite(price[name]) or price[name] > validation.MAX_PLAUSIBLE_PRICE:
            problems.append(f"{name}={raw[name]} is not a plausible price (finite, at most 1e8)")
        elif price[name] <= 0:
            problems.append(f"{name}={raw[name]} is not positive")
    if not problems:
        if price["maximo"] < price["minimo"]:
            problems.append(f"maximo={raw['maximo']} is below minimo={raw['minimo']}")
        for name in ("apertura", "cierre"):
            if not price["minimo"] <= price[name] <= price["maximo"]:
                problems.append(
                    f"{name}={raw[name]} is outside [minimo, maximo] = "
                    f"[{raw['minimo']}, {raw['maximo']}]"
                )
    if volume < 0:
        problems.append(f"volumen={raw['volumen']} is negative")
    if volume > validation.MAX_PLAUSIBLE_VOLUME:
        problems.append(f"volumen={raw['volumen']} is above {validation.MAX_PLAUSIBLE_VOLUME}")
    earliest = validation.EARLIEST_PLAUSIBLE_DAY.isoformat()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw["fecha"], re.ASCII) and raw["fecha"] < earliest:
        problems.append(f"fecha={raw['fecha']} is before {earliest}")
    return problems


def batch_document(line: str, file: str = config.CSV_FILE_NAME) -> tuple[str, dict] | None:
    """One CSV line -> (document id, document); None for the header that skip_header drops.
    Raises Rejected for a line the pipeline sends to fin_rejected."""
    (values,) = list(csv.reader([line.rstrip("\n")])) or [[]]
    if tuple(values) == config.CSV_COLUMNS:
        return None
    where = f"{file}, row simbolo={values[1] if len(values) > 1 else ''} fecha={values[0]}"
    problem = batch_row_problem(values)
    if problem:
        tag, what = problem
        raise Rejected(tag, f"{where}: {what}")
    doc: dict = dict(zip(config.CSV_COLUMNS, values, strict=True))
    trading_day = doc["fecha"]
    try:
        day = dt.date.fromisoformat(trading_day)
    except ValueError:
        reason = f"{where}: {REJECTION_REASONS['_dateparsefailure']}"
        raise Rejected("_dateparsefailure", reason) from None
    for field, kind in BATCH_CONVERT.items():
        doc[field] = _CASTS[kind](doc[field])
    for field in BATCH_UPPERCASE:
        doc[field] = doc[field].upper()
    doc["@timestamp"] = doc["fecha"] = market_midnight(day)
    return f"{doc['simbolo']}-{trading_day}", doc


def _is_integer(value) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and bool(_INTEGER.fullmatch(value)))


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return math.isfinite(value)
    return isinstance(value, str) and bool(_DECIMAL.fullmatch(value))


def transaction_problems(event: dict) -> list[str]:
    """The `transactions_number_check` ruby filter: one line per field that is not a number."""
    bad = []
    for field, kind in TRANSACTION_CONVERT.items():
        value = event.get(field)
        if value is None:
            continue
        if kind == "integer" and not _is_integer(value):
            bad.append(f"{field}={value!r} is not an integer")
        elif kind == "float" and not _is_number(value):
            bad.append(f"{field}={value!r} is not a number")
    return bad


def transaction_document(event: dict) -> tuple[str, dict]:
    """One Kafka JSON message -> (document id, document). Raises Rejected for an event the
    pipeline sends to fin_rejected."""
    bad = transaction_problems(event)
    if bad:
        raise Rejected("_typefailure", ", ".join(bad))
    if not event.get("event_id"):
        raise Rejected("_missing_event_id", REJECTION_REASONS["_missing_event_id"])
    event_type = event.get("event_type")
    if (event_type.lower() if isinstance(event_type, str) else event_type) not in EVENT_TYPE_TAGS:
        raise Rejected("_unknown_event_type", REJECTION_REASONS["_unknown_event_type"])
    doc = dict(event)
    try:
        moment = dt.datetime.fromisoformat(str(doc["ts"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise Rejected("_dateparsefailure", REJECTION_REASONS["_dateparsefailure"]) from None
    doc["@timestamp"] = _logstash_timestamp(moment)
    for field in TRANSACTION_LOWERCASE:
        if isinstance(doc.get(field), str):
            doc[field] = doc[field].lower()
    for field in TRANSACTION_UPPERCASE:
        if isinstance(doc.get(field), str):
            doc[field] = doc[field].upper()
    for field, kind in TRANSACTION_CONVERT.items():
        if doc.get(field) is not None:
            doc[field] = _CASTS[kind](doc[field])
    doc["severity"] = SEVERITY.get(doc.get("level"), DEFAULT_SEVERITY)
    tag = EVENT_TYPE_TAGS.get(doc.get("event_type"), UNKNOWN_EVENT_TYPE_TAG)
    doc["tags"] = [tag]
    if tag == "trade" and doc.get("quantity") is not None and doc.get("price") is not None:
        notional = round(doc["quantity"] * doc["price"], 2)
        doc["notional"] = -notional if doc.get("side") == "SELL" else notional
    return str(doc["event_id"]), doc
