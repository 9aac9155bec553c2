"""The simulator's endings under real faults, each against a real broker read back by a real
consumer: broker killed before the end, topic deleted mid-run, SIGTERM / SIGINT to
`fin-assets simulate`, a full disk under logs_transacciones.log.

In every ending each logged event is acknowledged or counted (failed / dropped / unsent), the
topic holds no event that was not logged, none twice, and nothing raises.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest
from kafka import KafkaAdminClient

from fin_assets.defs.resources.kafka import KafkaProducerResource
from fin_assets.lib.simulator.delivery import EventDelivery
from fin_assets.lib.simulator.events import EventGenerator
from fin_assets.lib.simulator.runner import Simulator
from fin_assets.lib.simulator.transactions_log import (
    EVENT_ID_PATTERN,
    TransactionLog,
    read_event_ids,
)
from fin_assets_tests.helpers.paths import REPO
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.helpers.simulator_cli import cli_env, parse_summary, topic_event_ids

pytestmark = pytest.mark.kafka


SYMBOLS = ["TSLA", "IBM"]


class AckRecorder:
    """Connects through the real resource and notes, per event_id, what Kafka answered.

    The producer is the real one; only its `send` is wrapped to attach two more callbacks.
    """

    def __init__(self, kafka: KafkaProducerResource) -> None:
        self.kafka = kafka
        self.acknowledged: set[str] = set()
        self.failed: set[str] = set()
        self._lock = threading.Lock()

    def connect(self):
        producer = self.kafka.connect()
        send = producer.send

        def recording_send(topic, key=None, value=None):
            future = send(topic, key=key, value=value)
            event_id = json.loads(value)["event_id"]
            future.add_callback(lambda _meta: self._note(self.acknowledged, event_id))
            future.add_errback(lambda _exc: self._note(self.failed, event_id))
            return future

        producer.send = recording_send
        return producer

    def _note(self, outcome: set[str], event_id: str) -> None:
        with self._lock:
            outcome.add(event_id)


def start_simulator(log_path, kafka, recorder, run_id, rate, flush_timeout_s):
    """Assembled as build_simulator does, with the delivery connecting through `recorder`."""
    messages: list[tuple[str, str]] = []
    simulator = Simulator(
        generator=EventGenerator(SYMBOLS, dict.fromkeys(SYMBOLS, 100.0), run_id, seed=5),
        delivery=EventDelivery(
            kafka.topic,
            recorder.connect,
            log=lambda level, message: messages.append((level, message)),
        ),
        transactions_log=TransactionLog(log_path),
        rate_per_s=rate,
        flush_timeout_s=flush_timeout_s,
    )
    thread = threading.Thread(target=simulator.run, daemon=True)
    thread.start()
    return simulator, thread, messages


def assert_every_logged_event_accounted(summary, logged: list[str], recorder, topic_ids):
    assert len(logged) == len(set(logged)) == summary.generated
    assert summary.pending == 0
    assert (
        summary.acknowledged + summary.failed + summary.dropped + summary.unsent
        == summary.generated
    )
    assert len(topic_ids) == len(set(topic_ids)), "an event_id twice in the topic"
    assert set(topic_ids) <= set(logged), "the topic holds events that were never logged"
    # Acknowledged means stored: each acknowledged event is read back.
    assert recorder.acknowledged <= set(topic_ids)
    assert len(recorder.acknowledged) == summary.acknowledged


def test_broker_killed_before_the_end_settles_every_count(tmp_path, private_broker_factory):
    broker = private_broker_factory()
    broker.start()
    log_path = tmp_path / "data" / "logs_transacciones.log"
    kafka = KafkaProducerResource(
        bootstrap_servers=broker.bootstrap_servers,
        topic="faults_broker_gone",
        partitions=2,
        bootstrap_timeout_ms=2000,
    )
    recorder = AckRecorder(kafka)
    simulator, thread, messages = start_simulator(
        log_path, kafka, recorder, "it-broker-gone", rate=300, flush_timeout_s=2
    )
    counts = simulator.delivery.counts
    wait_until(lambda: counts.acknowledged >= 200, 60, 0.1, message="200 events acknowledged")
    # SIGKILL: the broker vanishes with records in flight, as a crashed or unplugged one does.
    pid = int((broker.run_dir / f"kafka-{broker.port}" / "kafka.pid").read_text())
    os.killpg(pid, signal.SIGKILL)
    killed_at = counts.generated
    wait_until(
        lambda: counts.generated >= killed_at + 300, 60, 0.1, message="events after the broker died"
    )
    simulator.stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive(), "run() did not return"
    summary = simulator.summary
    assert summary.generated == counts.generated and summary.acknowledged >= 200
    assert summary.failed + summary.unsent > 0  # what the dead broker never confirmed
    assert any("counted failed" in message for _, message in messages), messages

    broker.start()  # the same state folder: the topic as the broker left it
    topic_ids = topic_event_ids(kafka.bootstrap_servers, kafka.topic)
    logged = read_event_ids(log_path, "it-broker-gone")
    assert_every_logged_event_accounted(summary, logged, recorder, topic_ids)


def test_topic_deleted_mid_run_is_recreated_and_the_feed_goes_on(
    tmp_path, kafka_bootstrap_servers, unique_topic
):
    log_path = tmp_path / "data" / "logs_transacciones.log"
    kafka = KafkaProducerResource(
        bootstrap_servers=kafka_bootstrap_servers, topic=unique_topic, partitions=2
    )
    recorder = AckRecorder(kafka)
    simulator, thread, messages = start_simulator(
        log_path, kafka, recorder, "it-topic-deleted", rate=200, flush_timeout_s=20
    )
    counts = simulator.delivery.counts
    try:
        wait_until(lambda: counts.acknowledged >= 100, 60, 0.1, message="100 events acknowledged")
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers)
        try:
            admin.delete_topics([unique_topic])
        finally:
            admin.close()
        deleted_at = counts.acknowledged
        # Without a re-created topic no send would ever be acknowledged again.
        wait_until(
            lambda: counts.acknowledged >= deleted_at + 300,
            90,
            0.1,
            message="delivery after deletion",
        )
    finally:
        simulator.stop.set()
        thread.join(timeout=90)
    summary = simulator.summary
    assert summary.topics_recreated >= 1 and "topic re-created" in summary.describe()
    assert any("re-created it" in message for _, message in messages), messages
    assert summary.dropped == summary.unsent == 0

    topic_ids = topic_event_ids(kafka_bootstrap_servers, unique_topic)
    logged = read_event_ids(log_path, "it-topic-deleted")
    # What the deleted topic held went with it; everything else is in the new one.
    lost_with_the_topic = set(logged) - set(topic_ids)
    assert len(lost_with_the_topic) <= deleted_at + summary.failed
    assert len(topic_ids) == len(set(topic_ids)) and set(topic_ids) <= set(logged)
    assert summary.pending == 0
    assert summary.acknowledged + summary.failed == summary.generated == len(logged)
    assert len(topic_ids) >= summary.acknowledged - deleted_at


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_simulate_stopped_by_a_signal_flushes_and_prints_its_summary(
    tmp_path, kafka_bootstrap_servers, unique_topic, signum
):
    data_dir = tmp_path / "data"
    command = [sys.executable, "-m", "fin_assets.cli", "simulate", "--rate", "1000"]
    process = subprocess.Popen(
        [*command, "--duration", "600"],
        env=cli_env(data_dir, kafka_bootstrap_servers, unique_topic),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    log_path = data_dir / "logs_transacciones.log"
    try:
        wait_until(
            lambda: log_path.exists() and len(read_event_ids(log_path)) >= 500,
            90,
            0.1,
            message="500 events logged",
        )
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, (stdout, stderr[-3000:])
    assert "Traceback" not in stderr, stderr[-3000:]
    summary = parse_summary(stdout)
    assert summary["ended_by"] == signal.Signals(signum).name
    logged = read_event_ids(log_path)
    topic_ids = topic_event_ids(kafka_bootstrap_servers, unique_topic)
    assert summary["generated"] == summary["acknowledged"] == len(logged) >= 500
    assert sorted(topic_ids) == sorted(logged)


def test_full_disk_for_the_log_keeps_the_feed_and_leaves_no_partial_line(
    tmp_path, kafka_bootstrap_servers, unique_topic
):
    """logs_transacciones.log on a real 64 KiB tmpfs (a private mount namespace as root; else
    a file-size limit, which fails writes the same way with EFBIG)."""
    data_dir, saved = tmp_path / "data", tmp_path / "saved"
    data_dir.mkdir()
    saved.mkdir()
    simulate = [sys.executable, "-m", "fin_assets.cli", "simulate", "--rate", "500"]
    simulate += ["--duration", "4"]
    # The log is copied out before the namespace (and its tmpfs) goes away.
    script = 'mount -t tmpfs -o size=64k fin-test "$1" || exit 97; shift; "$@"; rc=$?;'
    script += ' cp "$DATA/logs_transacciones.log" "$SAVED/"; exit $rc'
    env = {**cli_env(data_dir, kafka_bootstrap_servers, unique_topic), "DATA": str(data_dir)}
    env["SAVED"] = str(saved)
    if os.geteuid() == 0 and shutil.which("unshare"):
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
        command += [str(data_dir), *simulate]
    else:
        limit = "import resource,signal,os,sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
        limit += " resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536));"
        limit += " os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
        command = [sys.executable, "-c", limit, *simulate[1:]]
        saved = data_dir
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 97, result.stderr
    # Some events were not logged: the documented non-zero exit, not a crash.
    assert result.returncode == 3, (result.stdout, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.count("Cannot write the transactions log") == 1, result.stderr[-3000:]

    text = (saved / "logs_transacciones.log").read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert all(EVENT_ID_PATTERN.search(line) and " | " in line for line in lines)
    logged = [EVENT_ID_PATTERN.search(line).group(1) for line in lines]
    summary = parse_summary(result.stdout)
    assert 0 < len(logged) < summary["generated"]
    assert f"{summary['generated'] - len(logged)} events not written" in result.stdout
    # The feed went on: Kafka has every event, logged or not.
    topic_ids = topic_event_ids(kafka_bootstrap_servers, unique_topic)
    assert summary["acknowledged"] == summary["generated"] == len(topic_ids)
    assert set(logged) <= set(topic_ids)
