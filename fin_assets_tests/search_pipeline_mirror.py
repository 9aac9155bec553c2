"""The Logstash pipeline's transformations, in Python, to index documents shaped exactly like
the ones Logstash writes. test_logstash_mirror.py compares every constant below with the
parsed pipeline, so a change on one side fails the tests until the other follows."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from fin_assets import config

# --- batch flow: csv + date + mutate ---------------------------------------------------------
BATCH_CONVERT = {
    "apertura": "float",
    "maximo": "float",
    "minimo": "float",
    "cierre": "float",
    "volumen": "integer",
}
BATCH_DATE_FORMAT = "yyyy-MM-dd"
BATCH_UPPERCASE = ["simbolo"]
BATCH_DOCUMENT_ID = "%{simbolo}-%{fecha}"

# --- transactions flow: date + mutate + severity + tags + notional ---------------------------
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
    """Logstash serialises @timestamp as UTC with milliseconds and a Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def batch_document(line: str) -> tuple[str, dict] | None:
    """One CSV line -> (document id, document); None for the header that skip_header drops."""
    values = line.rstrip("\n").split(",")
    if tuple(values) == config.CSV_COLUMNS:
        return None
    doc: dict = dict(zip(config.CSV_COLUMNS, values, strict=True))
    for field, kind in BATCH_CONVERT.items():
        doc[field] = _CASTS[kind](doc[field])
    for field in BATCH_UPPERCASE:
        doc[field] = doc[field].upper()
    day = dt.date.fromisoformat(doc["fecha"])
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(config.MARKET_TIMEZONE))
    doc["@timestamp"] = _logstash_timestamp(midnight)
    return f"{doc['simbolo']}-{doc['fecha']}", doc


def transaction_document(event: dict) -> tuple[str, dict]:
    """One Kafka JSON message -> (document id, document)."""
    doc = dict(event)
    doc["@timestamp"] = _logstash_timestamp(
        dt.datetime.fromisoformat(doc["ts"].replace("Z", "+00:00"))
    )
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
