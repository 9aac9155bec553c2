"""The search leg executed: a real Logstash runs the project's logstash.yml, pipelines.yml and
pipeline files unchanged, against the real Kafka broker and the real secured Elasticsearch.

The tests run in file order on one Logstash, as a day would: the first CSV, the next day's CSV
renamed over it, a restart, the simulator's stream across a restart and a 30 s Elasticsearch
outage, a restart later than the file input's sincedb_clean_after, then every kind of bad row and
message, which must reach the rejected file and never an index."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kafka import KafkaProducer

from fin_assets.lib import config
from fin_assets.lib.batch.prices import to_csv_text
from fin_assets.lib.search.elasticsearch import ElasticsearchError
from fin_assets_tests.fixtures.kafka import read_topic
from fin_assets_tests.helpers import search_pipeline_mirror as mirror
from fin_assets_tests.helpers.logstash_conf import (
    PIPELINE_PATH,
    by_id,
    friendly_duration_seconds,
    pipeline_plugins,
)
from fin_assets_tests.helpers.paths import REPO
from fin_assets_tests.helpers.polling import wait_until

pytestmark = [pytest.mark.logstash, pytest.mark.kafka, pytest.mark.elasticsearch]

BATCH, NRT = config.BATCH_INDEX, config.TRANSACTIONS_INDEX
SYMBOLS = ("TSLA", "IBM", "BRK.B")
DAY_ONE = [dt.date(2026, 11, 23) + dt.timedelta(days=i) for i in (0, 1, 2, 3)]
NEXT_DAY = dt.date(2026, 11, 27)
# When the CSV last changed: the late restart must come after sincedb_clean_after from here.
LAST_CSV_CHANGE: dict[str, float] = {}


def price_rows(days: list[dt.date]) -> pd.DataFrame:
    rows = []
    for s, symbol in enumerate(SYMBOLS):
        for d, day in enumerate(days):
            low = 100.0 + 10 * s + d
            rows.append((day, symbol, low + 0.5, low + 2.25, low, low + 1.125, 1_000_000 + d))
    frame = pd.DataFrame(rows, columns=list(config.CSV_COLUMNS))
    frame["fecha"] = pd.to_datetime(frame["fecha"])
    return frame


def publish_csv(folder: Path, text: str) -> None:
    """As the batch flow publishes it: a temp file beside it, renamed over the old one."""
    temp = folder / f".{config.CSV_FILE_NAME}.test.tmp"
    temp.write_text(text)
    os.replace(temp, folder / config.CSV_FILE_NAME)
    LAST_CSV_CHANGE["at"] = time.monotonic()


def expected_batch_documents(text: str) -> dict[str, dict]:
    out = {}
    for line in text.splitlines():
        parsed = mirror.batch_document(line)
        if parsed:
            out[parsed[0]] = parsed[1]
    return out


@pytest.fixture(scope="module")
def stack(logstash_stack):
    return logstash_stack


def test_monitoring_api_answers_the_compose_healthcheck(stack):
    logstash, _ = stack
    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    command = compose["services"]["logstash"]["healthcheck"]["test"][1]
    assert "localhost:9600" in command
    local = command.replace("localhost:9600", f"127.0.0.1:{logstash.api_port}")
    assert subprocess.run(["sh", "-c", local], timeout=30).returncode == 0
    for pipeline in ("fin_unificado", "fin_rejected"):
        assert pipeline in logstash.api(f"/_node/pipelines/{pipeline}")["pipelines"]


def test_day_one_csv_is_indexed_with_exact_values_and_types(stack):
    logstash, es = stack
    text = to_csv_text(price_rows(DAY_ONE))
    publish_csv(logstash.data_dir, text)
    expected = expected_batch_documents(text)
    assert len(expected) == len(SYMBOLS) * len(DAY_ONE)
    wait_until(
        lambda: es.count(BATCH) >= len(expected),
        90,
        message="the day-one CSV in finanzas_batch",
        ignore=ElasticsearchError,
    )
    documents = es.documents(BATCH)
    assert set(documents) == set(expected)
    for doc_id, doc in documents.items():
        # Exact: same keys, same values, same JSON types (float prices, integer volume).
        assert doc["_source"] == expected[doc_id], doc_id
        assert {k: type(v) for k, v in doc["_source"].items()} == {
            k: type(v) for k, v in expected[doc_id].items()
        }
        assert doc["_version"] == 1


def test_next_day_csv_renamed_over_while_running_is_read_within_60_s(stack):
    logstash, es = stack
    text = to_csv_text(price_rows([*DAY_ONE, NEXT_DAY]))
    started = time.monotonic()
    publish_csv(logstash.data_dir, text)
    new_ids = {f"{symbol}-{NEXT_DAY.isoformat()}" for symbol in SYMBOLS}

    def new_rows_searchable() -> bool:
        es.refresh(BATCH)
        return all(es.call("GET", f"{BATCH}/_doc/{i}").status_code == 200 for i in new_ids)

    wait_until(new_rows_searchable, 60, message="the next day's rows", ignore=ElasticsearchError)
    elapsed = time.monotonic() - started
    print(f"next-day CSV searchable {elapsed:.1f} s after the rename")
    documents = es.documents(BATCH)
    assert set(documents) == set(expected_batch_documents(text))
    # The day-one rows were read again from the new file, and left alone: unchanged rows are
    # no-op upserts.
    logstash.wait_idle(es)
    assert all(documents[i]["_version"] == 1 for i in expected_batch_documents(text))


def test_a_restart_indexes_nothing_twice(stack):
    logstash, es = stack
    logstash.wait_idle(es)
    before = es.documents(BATCH), es.index_operations(BATCH)
    logstash.restart()
    logstash.wait_idle(es)
    assert (es.documents(BATCH), es.index_operations(BATCH)) == before


def produce_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for value in values:
            producer.send(topic, value)
        producer.flush(30)
    finally:
        producer.close()


def test_every_simulator_event_indexed_once_across_a_restart_and_an_outage(
    stack, kafka_bootstrap_servers
):
    logstash, es = stack
    rate, duration = 20, 55
    simulator = subprocess.Popen(
        [
            sys.executable, "-m", "fin_assets.cli", "simulate",
            "--rate", str(rate), "--duration", str(duration), "--seed", "15",
            "--topic", logstash.topic, "--bootstrap-servers", kafka_bootstrap_servers,
        ],
        env={**os.environ, "FIN_DATA_DIR": str(logstash.data_dir / "simulator")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: es.count(NRT) > 0,
            60,
            message="the first simulator events in transacciones_nrt",
            ignore=ElasticsearchError,
        )
        logstash.restart()
        # An outage: the node stops answering (SIGSTOP of its process group) for 30 s.
        group = es.node_group()
        os.killpg(group, signal.SIGSTOP)
        try:
            time.sleep(30)
        finally:
            os.killpg(group, signal.SIGCONT)
        output, _ = simulator.communicate(timeout=duration + 60)
    finally:
        if simulator.poll() is None:
            simulator.kill()
            simulator.wait()
    assert simulator.returncode == 0, output
    produced = read_topic(kafka_bootstrap_servers, logstash.topic)
    ids = {event["event_id"] for _, _, event in produced}
    assert len(ids) == len(produced) >= rate * duration * 0.9, output
    wait_until(
        lambda: es.count(NRT) >= len(ids),
        180,
        message=f"{len(ids)} events in transacciones_nrt",
        ignore=ElasticsearchError,
    )
    logstash.wait_idle(es)
    documents = es.documents(NRT)
    # Exactly once: one document per event_id, none missing, none extra.
    assert set(documents) == ids
    redelivered = sum(doc["_version"] > 1 for doc in documents.values())
    print(f"{len(ids)} events, {redelivered} redelivered and overwritten")
    assert not logstash.rejected(), logstash.rejected()[:3]
    for _, _, event in produced[:50]:
        doc_id, expected = mirror.transaction_document(event)
        source = documents[doc_id]["_source"]
        assert {k: source[k] for k in expected} == expected


def test_a_restart_later_than_sincedb_clean_after_indexes_nothing_twice(stack):
    logstash, es = stack
    file_input = by_id(pipeline_plugins(PIPELINE_PATH), "batch_csv")
    clean_after = friendly_duration_seconds(file_input.attrs["sincedb_clean_after"])
    wait_s = LAST_CSV_CHANGE["at"] + clean_after + 20 - time.monotonic()  # + one sincedb write
    if wait_s > 0:
        time.sleep(wait_s)
    logstash.wait_idle(es)
    before = es.documents(BATCH), es.index_operations(BATCH)
    noops_before = es.write_counters(BATCH)[1]
    logstash.restart()
    # The record of the CSV has expired, so Logstash reads the whole file again ...
    wait_until(
        lambda: es.write_counters(BATCH)[1] >= noops_before + len(before[0]),
        90,
        message="the re-read of the CSV (a no-op update per row)",
        ignore=ElasticsearchError,
    )
    logstash.wait_idle(es)
    # ... and every row is a no-op upsert: nothing indexed twice, not even as a new version.
    assert (es.documents(BATCH), es.index_operations(BATCH)) == before


MALFORMED_ROWS = {
    "too few columns": "2026-11-30,TSLA,220.1,225.5",
    "too many columns": "2026-11-30,IBM,1,2,0.5,1.5,10,99",
    "empty value": "2026-11-30,BRK.B,1,2,,1.5,10",
    "non-numeric": "2026-12-01,TSLA,1,2,0.5,n/a,10",
    "negative price": "2026-12-01,IBM,-650.0,225.75,218.0,222.3,81234567",
    "zero prices": "2026-12-01,BRK.B,0,0,0,0,0",
    "maximo below minimo": "2026-12-02,TSLA,1,2,3,1.5,10",
    "apertura above maximo": "2026-12-02,IBM,2.5,2,0.5,1.5,10",
    "cierre below minimo": "2026-12-02,BRK.B,1,2,0.5,0.4,10",
    "negative volume": "2026-12-03,TSLA,1,2,0.5,1.5,-10",
    "bad date": "2026-13-45,IBM,1,2,0.5,1.5,10",
}
REASONS = {
    "too few columns": "4 columns, expected 7",
    "too many columns": "8 columns, expected 7",
    "empty value": "empty minimo",
    "non-numeric": "cierre=n/a is not a number",
    "negative price": "apertura=-650.0 is not positive",
    "zero prices": "apertura=0 is not positive",
    "maximo below minimo": "maximo=2 is below minimo=3",
    "apertura above maximo": "apertura=2.5 is outside [minimo, maximo] = [0.5, 2]",
    "cierre below minimo": "cierre=0.4 is outside [minimo, maximo] = [0.5, 2]",
    "negative volume": "volumen=-10 is negative",
    "bad date": "the date (fecha / ts) could not be parsed",
}


def test_each_malformed_row_is_rejected_once_with_its_reason_and_never_indexed(stack):
    logstash, es = stack
    good = to_csv_text(price_rows([*DAY_ONE, NEXT_DAY]))
    before = es.documents(BATCH)
    rejected_before = len(logstash.rejected())
    publish_csv(logstash.data_dir, good + "\n".join(MALFORMED_ROWS.values()) + "\n")

    def rejected_rows() -> list[dict]:
        return [
            r for r in logstash.rejected()[rejected_before:] if r["rejection"]["flow"] == "batch"
        ]

    wait_until(
        lambda: len(rejected_rows()) >= len(MALFORMED_ROWS),
        90,
        message="every malformed row",
        ignore=ElasticsearchError,
    )
    logstash.wait_idle(es)
    records = rejected_rows()
    csv_path = str(logstash.data_dir / config.CSV_FILE_NAME)
    for case, line in MALFORMED_ROWS.items():
        mine = [r for r in records if r["message"] == line]
        assert len(mine) == 1, (case, mine)
        reason = mine[0]["rejection"]["reason"]
        assert reason.startswith(csv_path + ", "), (case, reason)
        fecha, simbolo = line.split(",")[:2]
        assert f"row simbolo={simbolo} fecha={fecha}" in reason, (case, reason)
        assert REASONS[case] in reason, (case, reason)
    assert len(records) == len(MALFORMED_ROWS)
    # None of them reached the index; the good rows are as they were.
    assert es.documents(BATCH) == before


BAD_MESSAGES = {
    "not JSON": (b"this is not json {", "the Kafka message is not JSON"),
    "no event_id": (
        json.dumps({"event_type": "trade", "ts": "2026-12-06T10:00:00.000Z", "symbol": "TSLA",
                    "level": "INFO", "message": "no id"}).encode(),
        "the event has no event_id",
    ),
    "wrong types": (
        json.dumps({"event_id": "bad-types-1", "event_type": "trade", "symbol": "TSLA",
                    "ts": "2026-12-06T10:00:00.000Z", "level": "INFO", "quantity": "ten",
                    "price": "abc"}).encode(),
        "quantity=\"ten\" is not an integer, price=\"abc\" is not a number",
    ),
    "unknown event type": (
        json.dumps({"event_id": "unknown-type-1", "event_type": "margin_call", "symbol": "TSLA",
                    "ts": "2026-12-06T10:00:00.000Z", "level": "INFO"}).encode(),
        "the event_type is not trade, price_alert or api_error",
    ),
}  # fmt: skip


def test_each_bad_message_is_rejected_once_with_its_place_and_never_indexed(
    stack, kafka_bootstrap_servers
):
    logstash, es = stack
    before = es.documents(NRT)
    rejected_before = len(logstash.rejected())
    produce_raw(kafka_bootstrap_servers, logstash.topic, [v for v, _ in BAD_MESSAGES.values()])

    def rejected_events() -> list[dict]:
        return [
            r for r in logstash.rejected()[rejected_before:]
            if r["rejection"]["flow"] == "transactions"
        ]  # fmt: skip

    wait_until(
        lambda: len(rejected_events()) >= len(BAD_MESSAGES),
        60,
        message="every bad message",
        ignore=ElasticsearchError,
    )
    logstash.wait_idle(es)
    records = rejected_events()
    assert len(records) == len(BAD_MESSAGES)
    place = re.compile(rf"^topic {logstash.topic} partition \d offset \d+, event_id ")
    for case, (raw, reason) in BAD_MESSAGES.items():
        if case == "not JSON":
            mine = [r for r in records if r.get("message") == raw.decode()]
        else:
            body = json.loads(raw)
            mine = [r for r in records if r.get("message") == body.get("message")
                    and r.get("event_id") == body.get("event_id")]  # fmt: skip
        assert len(mine) == 1, (case, records)
        assert place.match(mine[0]["rejection"]["reason"]), (case, mine[0]["rejection"])
        assert reason in mine[0]["rejection"]["reason"], (case, mine[0]["rejection"])
    assert es.documents(NRT) == before


def test_a_document_elasticsearch_refuses_reaches_the_rejected_file_through_the_dlq(
    stack, kafka_bootstrap_servers
):
    logstash, es = stack
    before = es.documents(NRT)
    rejected_before = len(logstash.rejected())
    # A valid event but for `account`, an object where the template maps a keyword: Elasticsearch
    # answers 400 and the output puts the event in the dead letter queue.
    event = {
        "event_id": "mapping-conflict-1", "event_type": "trade", "symbol": "TSLA",
        "ts": "2026-12-06T10:00:00.000Z", "level": "INFO", "message": "mapping conflict",
        "side": "BUY", "quantity": 3, "price": 10.5, "account": {"nested": "object"},
    }  # fmt: skip
    produce_raw(kafka_bootstrap_servers, logstash.topic, [json.dumps(event).encode()])

    def from_dlq() -> list[dict]:
        return [
            r for r in logstash.rejected()[rejected_before:]
            if r["rejection"]["source"] == "dead_letter_queue"
        ]  # fmt: skip

    (record,) = wait_until(
        from_dlq,
        90,
        message="the refused document in the rejected file",
        ignore=ElasticsearchError,
    )
    assert record["event_id"] == "mapping-conflict-1"
    assert "account" in record["rejection"]["reason"], record["rejection"]
    assert record["rejection"]["plugin_id"] == "es_transacciones_nrt"
    assert es.documents(NRT) == before
