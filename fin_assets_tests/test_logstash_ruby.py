"""The pipelines' ruby filters, run for real in JRuby 9.4 (the runtime Logstash 8.19 embeds)
through the ruby filter's contract, against the Python mirror: the same rows and events are
rejected, with the same tag and a reason naming the place. One JRuby process for the module."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil

import pandas as pd
import pytest

from fin_assets.lib import config
from fin_assets.lib.batch import validation
from fin_assets.lib.batch.prices import to_csv_text
from fin_assets_tests.helpers import search_pipeline_mirror as mirror
from fin_assets_tests.helpers.logstash_conf import (
    DEAD_LETTER_PATH,
    by_id,
    pipeline_plugins,
    run_ruby_filters,
)
from fin_assets_tests.helpers.prerequisites import missing
from fin_assets_tests.helpers.search_data import SAMPLE_EVENTS

CSV_PATH = f"/usr/share/logstash/fin_data/{config.CSV_FILE_NAME}"
UNPARSABLE = '2026-10-05,"TSLA,1'  # a stray quote: neither the csv filter nor Ruby's CSV reads it

MALFORMED_LINES = [
    "2026-10-05,TSLA,220.1,225.5",  # 4 of 7 columns (defect 6, run for real)
    "2026-10-05,TSLA,1,2,0.5,1.5,10,99",  # 8 columns: would have been indexed with column8
    "2026-10-05,TSLA,1,2,0.5,1.5,10,",  # a trailing empty 8th column
    "2026-10-05",
    "2026-10-05,TSLA,1,2,,1.5,10",
    "2026-10-05,,1,2,0.5,1.5,10",
    "2026-10-05,TSLA,1,2,0.5,n/a,10",  # convert would leave "n/a" a string: Elasticsearch 400
    "2026-10-05,TSLA,1,2,0.5,1.5,10.5",
    "2026-10-05,TSLA,1,2,0.5,NaN,10",
    "2026-10-05,TSLA,1,2,0.5,Infinity,10",
    "2026-10-05,TSLA,1,2,0.5,1.5,0123",  # Ruby's Integer() reads this as octal 83
    "2026-10-05,TSLA,1_0,2,0.5,1.5,10",  # Ruby's Float() accepts 1_0 as 10.0
    "2026-10-05,TSLA,0x1A,2,0.5,1.5,10",  # ... and hex
]

# Syntactically valid rows on each side of every value rule the batch applies to a row
# (fin_assets/lib/batch/validation.py). Expected verdicts come from the batch's own rules, run
# below.
VALUE_RULE_LINES = [
    "2026-10-05,TSLA,-650.0,225.75,218.0,222.3,81234567",  # negative price
    "2026-10-05,TSLA,0,0,0,0,0",  # zero prices
    "2026-10-05,TSLA,1,2,3,1.5,10",  # maximo < minimo
    "2026-10-05,TSLA,2.5,2,0.5,1.5,10",  # apertura above maximo
    "2026-10-05,TSLA,1,2,0.5,0.4,10",  # cierre below minimo
    "2026-10-05,TSLA,1,2,0.5,1.5,-10",  # negative volume
    "2026-10-05,TSLA,1e400,2,0.5,1.5,10",  # not finite once parsed
    "2026-10-05,TSLA,1,100000001,0.5,1.5,10",  # above the plausible price
    "2026-10-05,TSLA,1,2,0.5,1.5,10000000000001",  # above the plausible volume
    "1969-12-31,TSLA,1,2,0.5,1.5,10",  # before the earliest plausible day
    "2026-10-05,TSLA,-0.0,2,0.5,1.5,10",  # negative zero
    "2026-10-05,TSLA,1.5,1.5,1.5,1.5,0",  # a flat day with no trades: valid
    "2026-10-05,TSLA,1e-05,2,1e-05,2,10",  # on the bounds: valid
    "2026-10-05,TSLA,1,100000000,0.5,1.5,10000000000000",  # at the plausible maxima: valid
    "1970-01-01,TSLA,1,2,0.5,1.5,10",  # the earliest plausible day: valid
]


def batch_writer_lines() -> list[str]:
    """Rows exactly as the batch flow writes them (its own writer), header excluded."""
    frame = pd.DataFrame(
        [
            (dt.date(2026, 10, 2), "TSLA", 219.5, 225.75, 218.0, 222.3, 81234567),
            (dt.date(2026, 10, 5), "IBM", 150.0, 151.5, 1e-05, 150.25, 0),
            (dt.date(2026, 10, 6), "BRK.B", -1.5, 2.0, 0.1, 1234567.125, 10),
        ],
        columns=list(config.CSV_COLUMNS),
    )
    frame["fecha"] = pd.to_datetime(frame["fecha"])
    return to_csv_text(frame).splitlines()[1:]


def batch_event(line: str, tags: list[str] | None = None) -> dict:
    """The event as the file input (ECS v8) and the csv filter leave it."""
    event = {"message": line, "log": {"file": {"path": CSV_PATH}}, "@metadata": {"flow": "batch"}}
    if tags:
        event["tags"] = tags
    return event


def transaction_event(fields: dict, offset: int) -> dict:
    kafka = {"topic": config.DEFAULT_KAFKA_TOPIC, "partition": 1, "offset": offset}
    return {**fields, "@metadata": {"flow": "transactions", "kafka": kafka}}


BAD_TRANSACTIONS = [
    {"quantity": "ten"},
    {"price": "abc", "amount": "1.5"},
    {"price": True},
    {"latency_ms": 1.5},
    {"quantity": "12", "price": "222.3"},  # numeric strings are fine: mutate converts them
]
TRANSACTIONS = SAMPLE_EVENTS + [{**SAMPLE_EVENTS[0], **bad} for bad in BAD_TRANSACTIONS]
GENERIC_TAGS = [
    "_csvparsefailure",
    "_dateparsefailure",
    "_jsonparsefailure",
    "_mutate_error",
    "_rubyexception",
    "_missing_event_id",
]


@pytest.fixture(scope="module")
def outcome():
    """Every case through JRuby once; returns a lookup by case name."""
    if not shutil.which("java") or not shutil.which("mvn"):
        missing("JRuby needs java and mvn (scripts/apt_deps.sh installs them)")
    main = pipeline_plugins()
    row_check, rejection = by_id(main, "batch_row_check"), by_id(main, "rejection_reason")
    transaction_chain = [by_id(main, i) for i in ("transactions_number_check", "trade_notional")]
    rejected_at = by_id(pipeline_plugins(DEAD_LETTER_PATH), "rejected_at")
    cases: dict[str, tuple[list, dict]] = {}
    for line in batch_writer_lines() + MALFORMED_LINES + VALUE_RULE_LINES:
        cases[f"batch {line}"] = ([row_check, rejection], batch_event(line))
    cases["header"] = ([row_check, rejection], batch_event(",".join(config.CSV_COLUMNS)))
    cases["unparsable quotes"] = ([row_check, rejection], batch_event(UNPARSABLE))
    cases["csv filter failed"] = (
        [row_check, rejection],
        batch_event(UNPARSABLE, tags=["_csvparsefailure"]),
    )
    for n, fields in enumerate(TRANSACTIONS):
        cases[f"transaction {n}"] = ([*transaction_chain, rejection], transaction_event(fields, n))
    for tag in GENERIC_TAGS:
        cases[f"tagged {tag}"] = ([rejection], {**transaction_event({}, 0), "tags": [tag]})
    cases["unknown type only"] = ([rejection], {"tags": ["_unknown_event_type"]})
    cases["event type tag only"] = ([rejection], {"tags": ["trade"]})
    cases["dead letter with reason"] = (
        [rejected_at],
        {"rejection": {"source": "dead_letter_queue", "reason": "mapper_parsing_exception"}},
    )
    cases["dead letter without reason"] = ([rejected_at], {"rejection": {"source": "filter"}})
    names = list(cases)
    results = run_ruby_filters([cases[name] for name in names])
    return dict(zip(names, results, strict=True))


@pytest.mark.parametrize("line", MALFORMED_LINES + batch_writer_lines() + VALUE_RULE_LINES)
def test_batch_rows_rejected_exactly_as_the_mirror_rejects_them(outcome, line):
    event = outcome[f"batch {line}"]
    try:
        mirror.batch_document(line + "\n", file=CSV_PATH)
    except mirror.Rejected as rejected:
        assert event["tags"] == [rejected.tag]
        assert event["rejection"] == {
            "reason": rejected.reason,
            "tags": [rejected.tag],
            "flow": "batch",
            "source": "filter",
        }
        assert event["message"] == line, "the raw line is kept with the rejection"
    else:
        assert "tags" not in event and "rejection" not in event, event


def test_malformed_rows_name_file_symbol_and_day(outcome):
    reason = outcome["batch 2026-10-05,TSLA,220.1,225.5"]["rejection"]["reason"]
    assert reason == (
        f"{CSV_PATH}, row simbolo=TSLA fecha=2026-10-05: 4 columns, expected 7 "
        "(fecha,simbolo,apertura,maximo,minimo,cierre,volumen)"
    )


def test_a_header_that_skip_header_missed_is_not_indexed(outcome):
    # The csv filter's skip_header drops a line equal to the columns; its CHANGELOG (3.0.9) warns
    # about skip_header with several workers. Should it pass anyway, it is rejected, not indexed.
    event = outcome["header"]
    assert event["tags"] == ["_csvtypefailure"]
    assert "apertura=apertura is not a number" in event["rejection"]["reason"]


def test_a_check_that_raises_still_rejects(outcome):
    # Ruby's CSV raises on the stray quote: the ruby filter tags _rubyexception and the
    # rejection check (a separate filter) still records why; the output condition has the tag.
    event = outcome["unparsable quotes"]
    assert event["tags"] == ["_rubyexception"]
    # The place comes first: the file and the raw line (no columns could be read).
    assert event["rejection"]["reason"] == (
        f"{CSV_PATH}, line {json.dumps(UNPARSABLE)}: {mirror.REJECTION_REASONS['_rubyexception']}"
    )
    assert "MalformedCSVError" in event["@metadata"]["ruby_exception"]
    # In Logstash the csv filter tags that line first, and the row check leaves it alone.
    event = outcome["csv filter failed"]
    assert event["tags"] == ["_csvparsefailure"]
    assert event["rejection"]["reason"] == (
        f"{CSV_PATH}, line {json.dumps(UNPARSABLE)}: {mirror.REJECTION_REASONS['_csvparsefailure']}"
    )


@pytest.mark.parametrize("n", range(len(TRANSACTIONS)))
def test_transactions_rejected_exactly_as_the_mirror_rejects_them(outcome, n):
    fields = TRANSACTIONS[n]
    event = outcome[f"transaction {n}"]
    problems = mirror.transaction_problems(fields)
    if problems:
        assert event["tags"] == ["_typefailure"]
        reason = event["rejection"]["reason"]
        where = f"topic {config.DEFAULT_KAFKA_TOPIC} partition 1 offset {n}, event_id "
        assert reason.startswith(where + f'"{fields["event_id"]}": ')
        named = re.findall(r"(\w+)=", reason.split(": ", 1)[1])
        assert named == [p.split("=")[0] for p in problems]
    else:
        assert "rejection" not in event and "tags" not in event, event
        _, doc = mirror.transaction_document(fields)
        # The JRuby chain has no mutate: numbers that arrive as strings are converted there.
        if doc["tags"] == ["trade"] and not isinstance(fields["price"], str):
            assert event["notional"] == doc["notional"]


@pytest.mark.parametrize("tag", GENERIC_TAGS)
def test_every_failure_tag_gets_a_reason(outcome, tag):
    event = outcome[f"tagged {tag}"]
    assert event["rejection"] == {
        "tags": [tag],
        "reason": mirror.REJECTION_REASONS[tag],
        "flow": "transactions",
        "source": "filter",
    }


def test_tags_that_are_not_failures_are_not_rejected(outcome):
    assert "rejection" not in outcome["event type tag only"]


def test_an_unknown_event_type_is_rejected(outcome):
    assert (
        outcome["unknown type only"]["rejection"]["reason"]
        == (mirror.REJECTION_REASONS["_unknown_event_type"])
    )


def batch_rules_refuse(line: str) -> list[str]:
    """The batch's own row rules (validation.py) on the one row: the names of those it breaks."""
    values = line.split(",")
    frame = pd.DataFrame([values], columns=list(config.CSV_COLUMNS))
    frame["fecha"] = pd.to_datetime(frame["fecha"])
    for name in ("apertura", "maximo", "minimo", "cierre"):
        frame[name] = frame[name].astype("float64")
    frame["volumen"] = frame["volumen"].astype("int64")
    rules = {
        "inconsistent_prices": validation.inconsistent_prices,
        "negative_volumes": validation.negative_volumes,
        "implausible_values": validation.implausible_values,
    }
    return [name for name, rule in rules.items() if not rule(frame).empty]


@pytest.mark.parametrize("line", VALUE_RULE_LINES)
def test_logstash_refuses_exactly_what_the_batch_refuses(outcome, line):
    """One set of row rules: the pipeline's ruby (run in JRuby) and the batch's checks agree."""
    event = outcome[f"batch {line}"]
    refused_by_batch = batch_rules_refuse(line)
    if refused_by_batch:
        assert event["tags"] == ["_csvvaluefailure"], (line, refused_by_batch)
        assert f"row simbolo=TSLA fecha={line.split(',')[0]}: " in event["rejection"]["reason"]
    else:
        assert "rejection" not in event and "tags" not in event, (line, event)


def test_the_value_rules_bounds_are_the_batch_bounds():
    code = by_id(pipeline_plugins(), "batch_row_check").attrs["init"]
    assert "@max_price = 1e8" in code and validation.MAX_PLAUSIBLE_PRICE == 1e8
    assert "@max_volume = 10**13" in code and validation.MAX_PLAUSIBLE_VOLUME == 10**13
    earliest = validation.EARLIEST_PLAUSIBLE_DAY.isoformat()
    assert f"@earliest_day = '{earliest}'" in code


def test_dead_letter_records_get_a_time_and_keep_their_reason(outcome):
    today = dt.datetime.now(dt.UTC).date().isoformat()
    for name in ("dead letter with reason", "dead letter without reason"):
        event = outcome[name]
        stamp = dt.datetime.strptime(event["rejection"]["rejected_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert abs(stamp - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(hours=1)
        assert event["@metadata"]["rejected_day"] in (today, stamp.date().isoformat())
    assert outcome["dead letter with reason"]["rejection"]["reason"] == "mapper_parsing_exception"
    assert outcome["dead letter without reason"]["rejection"]["reason"] == "no reason recorded"
