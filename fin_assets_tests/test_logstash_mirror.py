"""The Python mirror of the pipeline (used to index test documents) against the pipeline text,
the CSV contract, the event schema and the index templates."""

from __future__ import annotations

import datetime as dt
import json
import re

import jsonschema
import pytest
from lscl.lang import LsclEqualTo, LsclSelector

from fin_assets.lib import config
from fin_assets_tests.helpers import search_pipeline_mirror as mirror
from fin_assets_tests.helpers.logstash_conf import (
    TEMPLATES_DIR,
    by_id,
    find,
    pipeline_plugins,
    sprintf,
)
from fin_assets_tests.helpers.paths import REPO
from fin_assets_tests.helpers.search_data import SAMPLE_EVENTS, simulator_events

SCHEMA = json.loads((REPO / "fin_assets/lib/simulator/event.schema.json").read_text())
# Built once: jsonschema.validate() checks the schema itself again on every call.
EVENT_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


@pytest.fixture(scope="module")
def plugins():
    return pipeline_plugins()


def template_properties(index: str) -> dict:
    template = json.loads((TEMPLATES_DIR / f"{index}.json").read_text())
    return template["template"]["mappings"]["properties"]


def schema_fields() -> set[str]:
    fields = set(SCHEMA["properties"])
    for variant in SCHEMA.get("oneOf", []):
        fields |= set(variant.get("properties", {}))
    return fields


# --- mirror == pipeline ---------------------------------------------------------------------


def ruby_constant(plugin, name: str) -> str:
    """The value of `@name = ...` in a ruby filter's init."""
    (value,) = re.findall(rf"^\s*@{name} = (.+)$", plugin.attrs["init"], re.MULTILINE)
    return value.strip()


def test_batch_mirror_matches_pipeline(plugins):
    (csv_filter,) = find(plugins, "filter", "csv", "batch")
    assert csv_filter.attrs["convert"] == mirror.BATCH_CONVERT
    (date_filter,) = find(plugins, "filter", "date", "batch")
    assert date_filter.attrs["match"][1:] == [mirror.BATCH_DATE_FORMAT]
    assert date_filter.attrs["target"] == "@timestamp"
    cleanup = by_id(plugins, "batch_cleanup")
    assert cleanup.attrs["uppercase"] == mirror.BATCH_UPPERCASE
    assert by_id(plugins, "es_finanzas_batch").attrs["document_id"] == mirror.BATCH_DOCUMENT_ID
    row_check = by_id(plugins, "batch_row_check")
    assert ruby_constant(row_check, "columns") == f"%w[{' '.join(config.CSV_COLUMNS)}].freeze"
    assert ruby_constant(row_check, "decimal") == f"/{mirror.DECIMAL_PATTERN}/"
    assert ruby_constant(row_check, "integer") == f"/{mirror.INTEGER_PATTERN}/"
    numeric = dict(re.findall(r"'(\w+)' => @(\w+)", ruby_constant(row_check, "numeric")))
    assert numeric == {
        "apertura": "decimal", "maximo": "decimal", "minimo": "decimal", "cierre": "decimal",
        "volumen": "integer",
    }  # fmt: skip
    assert {k: {"float": "decimal"}.get(v, v) for k, v in mirror.BATCH_CONVERT.items()} == numeric


def test_transaction_mirror_matches_pipeline(plugins):
    normalise = by_id(plugins, "transactions_normalise")
    assert normalise.attrs["convert"] == mirror.TRANSACTION_CONVERT
    assert normalise.attrs["lowercase"] == mirror.TRANSACTION_LOWERCASE
    assert normalise.attrs["uppercase"] == mirror.TRANSACTION_UPPERCASE
    doc_id = by_id(plugins, "es_transacciones_nrt").attrs["document_id"]
    assert doc_id == mirror.TRANSACTION_DOCUMENT_ID
    number_check = by_id(plugins, "transactions_number_check")
    assert ruby_constant(number_check, "decimal") == f"/{mirror.DECIMAL_PATTERN}/"
    assert ruby_constant(number_check, "integer") == f"/{mirror.INTEGER_PATTERN}/"
    integers = ruby_constant(number_check, "integers")
    floats = ruby_constant(number_check, "floats")
    by_kind = {"integer": integers, "float": floats}
    for field, kind in mirror.TRANSACTION_CONVERT.items():
        assert field in by_kind[kind].split("[")[1].split("]")[0].split(), field
    assert len(integers.split()) + len(floats.split()) == len(mirror.TRANSACTION_CONVERT)

    severities = {}
    tags = {}
    # Each mutate's innermost guard: `[field] == "value"`, or the else branch (None).
    for plugin in find(plugins, "filter", "mutate", "transactions"):
        guard = plugin.guards[-1]
        if guard == "else":
            field, value = "else", None
        elif isinstance(guard, LsclEqualTo) and isinstance(guard.first, LsclSelector):
            field, value = guard.first.names, guard.second
        else:
            continue
        if "severity" in plugin.attrs.get("add_field", {}):
            assert field in ("else", ["level"])
            severities[value] = int(plugin.attrs["add_field"]["severity"])
        if "add_tag" in plugin.attrs:
            assert field in ("else", ["event_type"])
            (tag,) = plugin.attrs["add_tag"]
            tags[value] = tag
    assert severities == {**mirror.SEVERITY, None: mirror.DEFAULT_SEVERITY}
    assert tags == {**mirror.EVENT_TYPE_TAGS, None: mirror.UNKNOWN_EVENT_TYPE_TAG}
    assert "SELL" in by_id(plugins, "trade_notional").attrs["code"]


def test_mirror_field_names_exist_in_the_event_schema():
    fields = schema_fields()
    used = set(mirror.TRANSACTION_CONVERT) | set(mirror.TRANSACTION_UPPERCASE)
    used |= set(mirror.TRANSACTION_LOWERCASE) | {"ts", "level", "quantity", "price", "side"}
    assert used <= fields, used - fields
    assert set(mirror.EVENT_TYPE_TAGS) == set(SCHEMA["properties"]["event_type"]["enum"])
    assert set(mirror.SEVERITY) | {"INFO"} == set(SCHEMA["properties"]["level"]["enum"])


def test_sample_events_follow_the_schema():
    for event in SAMPLE_EVENTS:
        EVENT_VALIDATOR.validate(event)


# --- mirror output ---------------------------------------------------------------------------


def test_batch_document_shape():
    header = ",".join(config.CSV_COLUMNS)
    assert mirror.batch_document(header + "\n") is None
    doc_id, doc = mirror.batch_document("2026-10-05,tsla,220.1,225.5,219.0,222.3,81234567\n")
    assert doc_id == "TSLA-2026-10-05"
    assert doc["cierre"] == 222.3 and doc["volumen"] == 81234567
    # One time: midnight in New York (EDT, UTC-4 in October), for @timestamp and fecha alike.
    assert doc["@timestamp"] == doc["fecha"] == "2026-10-05T04:00:00.000Z"
    _, winter = mirror.batch_document("2026-12-01,IBM,1,2,0.5,1.5,10\n")
    assert winter["fecha"] == "2026-12-01T05:00:00.000Z"  # EST, UTC-5
    with_metadata = {**doc, "@metadata": {"trading_day": "2026-10-05"}}
    assert sprintf(mirror.BATCH_DOCUMENT_ID, with_metadata) == doc_id


@pytest.mark.parametrize(
    ("line", "tag", "reason"),
    [
        # Defect 6: run for real, a 4-column row was indexed without minimo, cierre, volumen ...
        ("2026-10-05,TSLA,220.1,225.5", "_csvcolumncount", "4 columns, expected 7"),
        # ... and an 8-column row with an extra column8.
        ("2026-10-05,TSLA,1,2,0.5,1.5,10,99", "_csvcolumncount", "8 columns, expected 7"),
        ("2026-10-05,TSLA,1,2,,1.5,10", "_csvemptyvalue", "empty minimo"),
        ("2026-10-05,TSLA,1,2,0.5,n/a,10", "_csvtypefailure", "cierre=n/a is not a number"),
        ("2026-10-05,TSLA,1,2,0.5,1.5,10.5", "_csvtypefailure", "volumen=10.5 is not a number"),
        ("2026-10-05,TSLA,1,2,0.5,NaN,10", "_csvtypefailure", "cierre=NaN is not a number"),
        ("2026-10-05,TSLA,1,2,0.5,1.5,0123", "_csvtypefailure", "volumen=0123 is not a number"),
        ("2026-13-05,TSLA,1,2,0.5,1.5,10", "_dateparsefailure", "could not be parsed"),
    ],
)
def test_malformed_rows_are_rejected_with_their_place(line, tag, reason):
    with pytest.raises(mirror.Rejected) as rejected:
        mirror.batch_document(line + "\n")
    assert rejected.value.tag == tag
    assert reason in rejected.value.reason
    if tag != "_dateparsefailure":
        assert rejected.value.reason.startswith(
            f"{config.CSV_FILE_NAME}, row simbolo=TSLA fecha={line[:10]}: "
        )


@pytest.mark.parametrize(
    ("change", "tag", "reason"),
    [
        ({"quantity": "ten"}, "_typefailure", "quantity='ten' is not an integer"),
        ({"price": "abc"}, "_typefailure", "price='abc' is not a number"),
        ({"price": True}, "_typefailure", "price=True is not a number"),
        ({"event_id": None}, "_missing_event_id", "no event_id"),
        ({"ts": "yesterday"}, "_dateparsefailure", "could not be parsed"),
    ],
)
def test_malformed_transactions_are_rejected(change, tag, reason):
    with pytest.raises(mirror.Rejected) as rejected:
        mirror.transaction_document({**SAMPLE_EVENTS[0], **change})
    assert (rejected.value.tag, reason in rejected.value.reason) == (tag, True)


def test_transaction_document_shape():
    docs = [mirror.transaction_document(event) for event in SAMPLE_EVENTS]
    (trade_id, trade), (_, alert), (_, error) = docs
    assert trade_id == SAMPLE_EVENTS[0]["event_id"]
    assert trade["@timestamp"] == "2026-10-05T14:30:01.123Z"
    assert trade["notional"] == -2223.0  # a sell
    assert (trade["severity"], alert["severity"], error["severity"]) == (20, 30, 40)
    assert [d["tags"] for _, d in docs] == [["trade"], ["price_alert"], ["api_error"]]


# --- templates cover the documents -----------------------------------------------------------


def test_templates_are_named_after_their_index():
    for index in (config.BATCH_INDEX, config.TRANSACTIONS_INDEX):
        template = json.loads((TEMPLATES_DIR / f"{index}.json").read_text())
        assert template["index_patterns"] == [index]
        assert template["template"]["mappings"]["dynamic"] is False
    assert {p.stem for p in TEMPLATES_DIR.glob("*.json")} == {
        config.BATCH_INDEX,
        config.TRANSACTIONS_INDEX,
    }


def test_batch_template_covers_documents_with_explicit_types():
    properties = template_properties(config.BATCH_INDEX)
    _, doc = mirror.batch_document("2026-10-05,TSLA,1.5,2,1,1.75,10\n")
    assert set(doc) <= set(properties)
    assert set(config.CSV_COLUMNS) <= set(properties)
    assert properties["simbolo"]["type"] == "keyword"
    # Written as an instant, read back (aggregations, sorting) as the trading day.
    assert properties["fecha"] == {
        "type": "date",
        "format": "strict_date||strict_date_optional_time",
    }
    assert {properties[c]["type"] for c in ("apertura", "maximo", "minimo", "cierre")} == {"double"}
    assert properties["volumen"]["type"] == "long"


def test_transaction_template_covers_schema_and_derived_fields():
    properties = template_properties(config.TRANSACTIONS_INDEX)
    assert schema_fields() <= set(properties), schema_fields() - set(properties)
    for _, doc in map(mirror.transaction_document, SAMPLE_EVENTS):
        assert set(doc) <= set(properties), set(doc) - set(properties)
    for keyword in ("event_id", "event_type", "symbol", "level", "run_id", "side", "account"):
        assert properties[keyword]["type"] == "keyword", keyword
    assert properties["ts"]["type"] == "date" and properties["ts"]["format"]
    assert properties["price"]["type"] == "double"


def test_simulator_events_fit_the_pipeline_and_template():
    properties = template_properties(config.TRANSACTIONS_INDEX)
    seen_types = set()
    for event in simulator_events(300):
        EVENT_VALIDATOR.validate(event)
        doc_id, doc = mirror.transaction_document(event)
        assert doc_id == event["event_id"]
        assert set(doc) <= set(properties), set(doc) - set(properties)
        seen_types.add(doc["event_type"])
    assert seen_types == set(mirror.EVENT_TYPE_TAGS)


def test_dashboard_charts_batch_rows_at_their_one_time():
    """The Kibana data view and every chart of finanzas_batch use the time the pipeline gives a
    row: fecha, the same instant as @timestamp (the trading day's market midnight)."""
    path = REPO / "docker" / "kibana" / "dashboard.ndjson"
    objects = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    (data_view,) = [
        o for o in objects
        if o["type"] == "index-pattern" and o["attributes"]["title"] == config.BATCH_INDEX
    ]  # fmt: skip
    time_field = data_view["attributes"]["timeFieldName"]
    _, doc = mirror.batch_document("2026-10-05,TSLA,1,2,0.5,1.5,10\n")
    assert doc[time_field] == doc["@timestamp"] == mirror.market_midnight(dt.date(2026, 10, 5))
    charts = [
        json.loads(o["attributes"]["visState"])["params"]
        for o in objects
        if o["type"] == "visualization"
    ]
    batch_charts = [c for c in charts if c.get("index_pattern") == config.BATCH_INDEX]
    assert batch_charts, "the dashboard charts the batch index"
    assert {c["time_field"] for c in batch_charts} == {time_field}
    properties = template_properties(config.BATCH_INDEX)
    assert properties[time_field]["type"] == "date"
