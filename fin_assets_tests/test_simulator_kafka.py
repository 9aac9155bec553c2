"""The simulator against a real Kafka broker, read back with a real consumer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import dagster as dg
import jsonschema
import pytest

from fin_assets.defs.resources.kafka import KafkaProducerResource
from fin_assets.defs.simulator.job import TOPIC_ASSET_KEY
from fin_assets.defs.simulator.session import build_simulator
from fin_assets.lib.simulator.delivery import EventDelivery
from fin_assets.lib.simulator.runner import Simulator
from fin_assets.lib.simulator.transactions_log import read_event_ids
from fin_assets_tests.fixtures.kafka import free_port_pair, read_topic
from fin_assets_tests.helpers.paths import REPO
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.helpers.simulator_cli import make_settings

pytestmark = pytest.mark.kafka

SCHEMA = json.loads((REPO / "fin_assets/lib/simulator/event.schema.json").read_text())


def run_in_thread(simulator: Simulator) -> threading.Thread:
    thread = threading.Thread(target=simulator.run, daemon=True)
    thread.start()
    return thread


def assert_topic_matches_log(bootstrap: str, topic: str, log_path: Path, run_id: str) -> list:
    """Exactly the logged events, once each: the issue's definition of done."""
    records = read_topic(bootstrap, topic)
    topic_ids = [event["event_id"] for _, _, event in records]
    logged_ids = read_event_ids(log_path, run_id)
    assert len(topic_ids) == len(set(topic_ids)), "duplicated event_id in the topic"
    assert sorted(topic_ids) == sorted(logged_ids)
    return records


def test_stream_read_back_equals_the_log(tmp_path, kafka_bootstrap_servers, unique_topic):
    settings = make_settings(tmp_path)
    kafka = KafkaProducerResource(
        bootstrap_servers=kafka_bootstrap_servers, topic=unique_topic, partitions=3
    )
    simulator = build_simulator(
        settings, kafka, run_id="it-stream", rate_per_s=400, duration_s=3, seed=11
    )
    summary = simulator.run()
    # Enough events for every kind to show up; how fast it goes is bench/'s business, not a test's.
    assert summary.generated >= 300
    assert summary.acknowledged == summary.generated
    assert (summary.failed, summary.dropped, summary.unsent) == (0, 0, 0)

    records = assert_topic_matches_log(
        kafka_bootstrap_servers, unique_topic, settings.transactions_log_path, "it-stream"
    )
    assert len(records) == summary.generated
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for _, _, event in records:
        validator.validate(event)
    assert {event["event_type"] for _, _, event in records} == {
        "trade",
        "price_alert",
        "api_error",
    }
    # Key = symbol: one partition per symbol, and within it the run's order (seq) is kept.
    partitions_by_symbol: dict[str, set[int]] = defaultdict(set)
    seqs_by_symbol: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for partition, offset, event in records:
        partitions_by_symbol[event["symbol"]].add(partition)
        seqs_by_symbol[event["symbol"]].append((offset, event["seq"]))
    assert set(partitions_by_symbol) == {"TSLA", "IBM", "AAPL"}
    for symbol, partitions in partitions_by_symbol.items():
        assert len(partitions) == 1, symbol
        seqs = [seq for _, seq in sorted(seqs_by_symbol[symbol])]
        assert seqs == sorted(seqs), f"{symbol} events out of order"
    # Prices start from the CSV's latest cierre (TSLA 260.0, IBM 181.0).
    first_tsla_trade = min(
        (e for _, _, e in records if e["symbol"] == "TSLA" and e["event_type"] == "trade"),
        key=lambda e: e["seq"],
    )
    assert first_tsla_trade["price"] == pytest.approx(260.0, rel=0.05)


def test_backlog_overflow_is_counted_and_reported():
    # A real unreachable broker: nothing listens on this port.
    dead = KafkaProducerResource(
        bootstrap_servers=f"127.0.0.1:{free_port_pair()}", topic="t", bootstrap_timeout_ms=500
    )
    messages: list[tuple[str, str]] = []
    delivery = EventDelivery(
        "t", dead.connect, backlog_limit=10, log=lambda level, msg: messages.append((level, msg))
    )
    delivery.start()
    for number in range(25):
        delivery.submit(b"TSLA", f"event {number}".encode())
    counts = delivery.close(flush_timeout_s=1)
    assert counts.as_dict() == {
        "generated": 25,
        "acknowledged": 0,
        "failed": 0,
        "dropped": 15,
        "unsent": 10,
        "pending": 0,
    }
    warnings = [msg for level, msg in messages if level == "warning"]
    assert any("dropped so far" in msg for msg in warnings)  # reported as it happens
    assert any("15 events dropped in total" in msg for msg in warnings)
    assert any("10 events never reached Kafka" in msg for msg in warnings)


def test_in_flight_limit_slows_sends_to_a_live_broker_instead_of_dropping(
    kafka_bootstrap_servers, unique_topic
):
    """At full speed the simulator can make events faster than kafka-python acknowledges them.
    With a live broker the in-flight limit is back-pressure (the send waits for the oldest
    record), not drops: 2,000 records in batches of 32 through a limit of 8 all arrive, in
    order. Without the wait, every batch beyond the limit overflowed the backlog."""
    kafka = KafkaProducerResource(bootstrap_servers=kafka_bootstrap_servers, topic=unique_topic)
    delivery = EventDelivery(unique_topic, kafka.connect, backlog_limit=8)
    delivery.start()
    assert delivery.wait_connected(60)
    values = [json.dumps({"n": number}).encode() for number in range(2000)]
    for start in range(0, len(values), 32):
        delivery.submit_many([(b"TSLA", value) for value in values[start : start + 32]])
    counts = delivery.close(flush_timeout_s=60)
    assert counts.as_dict() == {
        "generated": 2000,
        "acknowledged": 2000,
        "failed": 0,
        "dropped": 0,
        "unsent": 0,
        "pending": 0,
    }
    read = [event["n"] for _, _, event in read_topic(kafka_bootstrap_servers, unique_topic)]
    assert read == list(range(2000))  # one key, one partition: in order


def test_broker_down_at_start_and_restarted_mid_run_loses_and_duplicates_nothing(
    tmp_path, private_broker_factory, unique_topic
):
    broker = private_broker_factory()  # not started yet: the producer starts first
    settings = make_settings(tmp_path)
    kafka = KafkaProducerResource(
        bootstrap_servers=broker.bootstrap_servers,
        topic=unique_topic,
        partitions=2,
        bootstrap_timeout_ms=1500,
    )
    simulator = build_simulator(settings, kafka, run_id="it-restart", rate_per_s=100, seed=3)
    thread = run_in_thread(simulator)
    counts = simulator.delivery.counts
    try:
        # Phase 1: no broker. Events are generated and logged, none acknowledged.
        wait_until(
            lambda: counts.generated >= 100, 30, 0.1, message="events generated without a broker"
        )
        assert counts.acknowledged == 0
        assert len(read_event_ids(settings.transactions_log_path)) >= 100

        # Phase 2: the broker comes up; the backlog is delivered.
        broker.start()
        backlog_at_start = counts.generated
        wait_until(
            lambda: counts.acknowledged >= backlog_at_start + 50,
            60,
            0.1,
            message="backlog delivered",
        )

        # Phase 3: the broker stops mid-run and comes back.
        broker.stop()
        stopped_at = counts.generated
        wait_until(
            lambda: counts.generated >= stopped_at + 100,
            30,
            0.1,
            message="events while broker down",
        )
        broker.start()
        restarted_at = counts.generated
        wait_until(
            lambda: counts.acknowledged >= restarted_at + 50,
            90,
            0.1,
            message="delivery after restart",
        )
    finally:
        simulator.stop.set()
        thread.join(timeout=60)
    summary = simulator.summary
    assert summary.acknowledged == summary.generated
    assert (summary.failed, summary.dropped, summary.unsent) == (0, 0, 0)
    records = assert_topic_matches_log(
        broker.bootstrap_servers, unique_topic, settings.transactions_log_path, "it-restart"
    )
    assert len(records) == summary.generated


def test_job_terminated_by_sigterm_flushes_and_records_counts(
    tmp_path, kafka_bootstrap_servers, unique_topic
):
    settings = make_settings(tmp_path)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "FIN_DATA_DIR": settings.data_dir,
        "FIN_SYMBOLS": settings.symbols,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "FIN_KAFKA_TOPIC": unique_topic,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "fin_assets.cli", "simulator-job", "--duration", "600"]
        + ["--rate", "50"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        log_path = settings.transactions_log_path
        wait_until(
            lambda: log_path.exists() and len(read_event_ids(log_path)) >= 100,
            60,
            0.1,
            message="the job to produce 100 events",
        )
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    text = output.decode(errors="replace")
    assert "Termination requested" in text, text[-3000:]

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        [run] = instance.get_runs()
        # execute_in_process records an interrupted run as FAILURE; a termination from the UI
        # (which marks the run CANCELING first) ends CANCELED. Either way: not a success.
        assert run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
        event = instance.get_latest_materialization_event(TOPIC_ASSET_KEY)
        assert event is not None and event.run_id == run.run_id
        metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    records = assert_topic_matches_log(kafka_bootstrap_servers, unique_topic, log_path, run.run_id)
    assert metadata["ended_by"] == "terminated", (metadata, text[-4000:])
    assert metadata["generated"] == metadata["acknowledged"] == len(records) >= 100, metadata
    assert metadata["failed"] == metadata["dropped"] == metadata["unsent"] == 0
    assert metadata["acknowledged_per_s"] > 0


def test_job_reports_progress_while_it_runs(tmp_path, kafka_bootstrap_servers, unique_topic):
    """Periodic progress lines and topic observations during the run; the final counts as a
    materialization of the topic asset, equal to what a consumer reads."""
    from fin_assets.defs.simulator.job import OP_NAME, transaction_simulator_job

    defs = dg.Definitions(
        jobs=[transaction_simulator_job],
        resources={
            "settings": make_settings(tmp_path),
            "kafka": KafkaProducerResource(
                bootstrap_servers=kafka_bootstrap_servers, topic=unique_topic
            ),
        },
    )
    run_config = {
        "ops": {
            OP_NAME: {"config": {"rate_per_s": 20, "max_duration_s": 3.5, "progress_interval_s": 1}}
        }
    }
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("transaction_simulator_job").execute_in_process(
            run_config=run_config, instance=instance
        )
        messages = [r.user_message for r in instance.all_logs(result.run_id)]
    assert result.success
    assert sum(m.startswith("Progress: ") for m in messages) >= 2
    observations = [
        e.asset_observation_data.asset_observation
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    ]
    assert len(observations) >= 2
    assert all(o.asset_key == TOPIC_ASSET_KEY for o in observations)
    generated = [o.metadata["generated"].value for o in observations]
    assert generated == sorted(generated) and generated[0] > 0
    final = result.get_asset_materialization_events()[-1].materialization.metadata
    assert final["acknowledged"].value == final["generated"].value
    assert final["generated"].value >= generated[-1]
    records = read_topic(kafka_bootstrap_servers, unique_topic)
    assert len(records) == final["generated"].value
