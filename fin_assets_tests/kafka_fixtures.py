"""Kafka for the tests: the session's broker (scripts/test.sh) or one started here, plus
helpers to start private brokers (for tests that stop and restart one) and to read a topic."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = REPO / "scripts" / "kafka.sh"


def free_port_pair() -> int:
    """A port P such that P (broker) and P+1 (KRaft controller) are both free."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no pair of free ports")


class LocalBroker:
    """A broker run by scripts/kafka.sh on its own port and state folder."""

    def __init__(self, run_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port_pair()
        self.run_dir = run_dir
        self.bootstrap_servers = f"127.0.0.1:{self.port}"

    def _script(self, action: str) -> None:
        env = {**os.environ, "KAFKA_PORT": str(self.port), "FIN_RUN_DIR": str(self.run_dir)}
        subprocess.run([str(KAFKA_SCRIPT), action], env=env, check=True, timeout=180)

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")


def _needs_java_and_maven() -> None:
    if not shutil.which("java") or not shutil.which("mvn"):
        pytest.skip("Kafka needs java and mvn (or run through scripts/test.sh)")


@pytest.fixture(scope="session")
def kafka_bootstrap_servers() -> Iterator[str]:
    """FIN_TEST_SERVICES=1: the broker scripts/test.sh started at KAFKA_BOOTSTRAP_SERVERS.
    Otherwise a throwaway broker on a free port, state in a temp folder, stopped at the end."""
    if os.environ.get("FIN_TEST_SERVICES") == "1":
        yield os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
        return
    _needs_java_and_maven()
    run_dir = Path(tempfile.mkdtemp(prefix="fin-kafka-test-"))
    broker = LocalBroker(run_dir)
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def private_broker_factory(tmp_path: Path) -> Iterator[Callable[[], LocalBroker]]:
    """Brokers of the test's own (not started yet), so that stopping one disturbs nobody."""
    _needs_java_and_maven()
    brokers: list[LocalBroker] = []

    def make() -> LocalBroker:
        broker = LocalBroker(tmp_path / f"broker-{len(brokers)}")
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def unique_topic() -> str:
    return f"test_transacciones_{uuid.uuid4().hex[:12]}"


def read_topic(
    bootstrap_servers: str, topic: str, timeout_s: float = 30.0
) -> list[tuple[int, int, dict[str, Any]]]:
    """Every record of the topic now, as (partition, offset, event): reads each partition from
    the beginning up to the end offset it has when called."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        value_deserializer=lambda raw: json.loads(raw.decode()),
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[tuple[int, int, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline, "timed out reading the topic"
            for tp, batch in consumer.poll(timeout_ms=1000).items():
                records.extend((tp.partition, r.offset, r.value) for r in batch)
        return records
    finally:
        consumer.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Polls `condition` until true; fails the test with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)
