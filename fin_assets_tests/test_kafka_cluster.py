"""Broker failover for real: a 3-node KRaft cluster on loopback (scripts/kafka.sh
cluster-start), a topic with replication factor 3 and min.insync.replicas=2, and the
simulator producing while a node is SIGKILLed: first the partition's leader, then the active
controller. No acknowledged event may be lost and none duplicated (read back by event_id).

One cluster for the session (fixtures/kafka.py's kafka_cluster); a killed node is restarted
before the next test by `healthy_cluster`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from fin_assets.defs.resources.kafka import KafkaProducerResource, kafka_from_env
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.defs.simulator.session import build_simulator
from fin_assets.lib.simulator.runner import Simulator
from fin_assets.lib.simulator.transactions_log import read_event_ids
from fin_assets_tests.fixtures.kafka import LocalCluster, read_topic
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.helpers.processes import group_alive

pytestmark = [pytest.mark.kafka, pytest.mark.cluster]

# Fast enough to have batches in flight at the kill: with acks=1 and no idempotence this very
# test lost 22 acknowledged events to the leader's SIGKILL (measured), so it tells the
# simulator's settings (acks=all, idempotent) from unsafe ones.
RATE_PER_S = 200
# Acknowledgements to see before the kill, and after it: the second proves the failover.
ACKS_BEFORE_KILL = 200
ACKS_AFTER_KILL = 400


def admin_of(cluster: LocalCluster) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=5000)


def partition_state(cluster: LocalCluster, topic: str) -> dict | None:
    """The topic's one partition as the node asked sees it; None while that node's metadata
    does not list it yet (just after creation the answer can hold no partitions)."""
    admin = admin_of(cluster)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    partitions = described["partitions"]
    assert len(partitions) <= 1, f"{topic} has {len(partitions)} partitions, expected 1"
    return partitions[0] if partitions else None


def current_leader(cluster: LocalCluster, topic: str) -> int | None:
    partition = partition_state(cluster, topic)
    leader = partition["leader_id"] if partition else -1
    return leader if leader >= 0 else None


def in_sync_replicas(cluster: LocalCluster, topic: str) -> int:
    partition = partition_state(cluster, topic)
    return len(partition["isr_nodes"]) if partition else 0


def active_controller(cluster: LocalCluster) -> int | None:
    """The KRaft quorum's leader: the node whose controller is active (DescribeQuorum)."""
    try:
        admin = admin_of(cluster)
        try:
            quorum = admin.describe_metadata_quorum()
        finally:
            admin.close()
    except Exception:  # no controller elected yet: the request fails or times out
        return None
    leader = quorum["topics"][0]["partitions"][0]["leader_id"]
    return leader if leader >= 0 else None


@pytest.fixture
def healthy_cluster(kafka_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """Every node running before the test (a previous test may have killed one)."""
    for node in range(1, kafka_cluster.nodes + 1):
        if not group_alive(kafka_cluster.node_pid(node)):
            kafka_cluster.start_node(node)
    yield kafka_cluster


def create_replicated_topic(cluster: LocalCluster, topic: str) -> None:
    """One partition (so "the leader" is one node), on all three nodes, two in sync needed."""
    admin = admin_of(cluster)
    try:
        admin.create_topics([NewTopic(topic, 1, 3, topic_configs={"min.insync.replicas": "2"})])
    finally:
        admin.close()
    wait_until(
        lambda: in_sync_replicas(cluster, topic) == 3,
        60,
        0.1,
        message="all three replicas in sync",
    )


@contextmanager
def running_simulator(cluster: LocalCluster, tmp_path: Path, topic: str, run_id: str):
    """The simulator producing in a thread; stopped on the way out, whatever happened."""
    settings = PipelineSettings(data_dir=str(tmp_path / "data"), symbols="TSLA")
    kafka = KafkaProducerResource(
        bootstrap_servers=cluster.bootstrap_servers,
        topic=topic,
        partitions=1,
        replication_factor=3,
    )
    simulator = build_simulator(
        settings, kafka, run_id=run_id, rate_per_s=RATE_PER_S, duration_s=300, seed=8
    )
    thread = threading.Thread(target=simulator.run, daemon=True)
    thread.start()
    try:
        yield simulator, thread, settings
    finally:
        simulator.stop.set()
        thread.join(timeout=120)


def acknowledged(simulator: Simulator) -> int:
    return simulator.delivery.counts.acknowledged


def report_recovery(simulator: Simulator, acked_at_kill: int, killed_at: float, what: str) -> None:
    """Prints how long acknowledgements stopped (for docs/scaling.md; not asserted: timing
    targets belong to bench/)."""
    wait_until(
        lambda: acknowledged(simulator) > acked_at_kill + 1, 120, 0.1, message=f"acks after {what}"
    )
    print(f"\n{what}: acknowledgements resumed {time.monotonic() - killed_at:.1f} s after it")


def finish_and_check(
    cluster: LocalCluster, simulator: Simulator, thread: threading.Thread, settings, topic: str
) -> None:
    simulator.stop.set()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the simulator did not finish"
    summary = simulator.summary
    assert summary.generated > ACKS_BEFORE_KILL + ACKS_AFTER_KILL
    # Every event acknowledged: the kill cost retries, not events.
    assert summary.acknowledged == summary.generated, summary.describe()
    topic_ids = [e["event_id"] for _, _, e in read_topic(cluster.bootstrap_servers, topic, 60)]
    logged = read_event_ids(settings.transactions_log_path)
    assert len(topic_ids) == len(set(topic_ids)), "an event_id is duplicated in the topic"
    assert sorted(topic_ids) == sorted(logged), "the topic and the transactions log differ"


def test_topic_created_from_the_environment_is_replicated(
    healthy_cluster: LocalCluster, unique_topic, monkeypatch
):
    """FIN_KAFKA_REPLICATION_FACTOR reaches the topic the simulator creates (before, the
    resource from the environment always created it with a single replica)."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", healthy_cluster.bootstrap_servers)
    monkeypatch.setenv("FIN_KAFKA_TOPIC", unique_topic)
    monkeypatch.setenv("FIN_KAFKA_REPLICATION_FACTOR", "3")
    kafka = kafka_from_env().process_config_and_initialize()
    assert kafka.ensure_topic()
    admin = admin_of(healthy_cluster)
    try:
        (described,) = admin.describe_topics([unique_topic])
    finally:
        admin.close()
    assert {len(p["replica_nodes"]) for p in described["partitions"]} == {3}


def test_partition_leader_sigkill_loses_and_duplicates_nothing(
    tmp_path, healthy_cluster: LocalCluster, unique_topic
):
    cluster = healthy_cluster
    create_replicated_topic(cluster, unique_topic)
    with running_simulator(cluster, tmp_path, unique_topic, "it-leader") as running:
        simulator, thread, settings = running
        wait_until(
            lambda: acknowledged(simulator) >= ACKS_BEFORE_KILL, 90, 0.1, message="acknowledgements"
        )

        leader = current_leader(cluster, unique_topic)
        assert leader is not None, f"{unique_topic} has no leader while acknowledgements flow"
        killed_at = time.monotonic()
        cluster.kill_node(leader)
        acked_at_kill = acknowledged(simulator)
        report_recovery(simulator, acked_at_kill, killed_at, f"SIGKILL of leader node {leader}")
        wait_until(
            lambda: acknowledged(simulator) >= acked_at_kill + ACKS_AFTER_KILL,
            120,
            0.1,
            message=f"acknowledgements after SIGKILL of leader node {leader}",
        )
        wait_until(
            lambda: current_leader(cluster, unique_topic) not in (None, leader),
            30,
            0.1,
            message=f"a leader other than the killed node {leader}",
        )
        finish_and_check(cluster, simulator, thread, settings, unique_topic)


def test_active_controller_sigkill_loses_and_duplicates_nothing(
    tmp_path, healthy_cluster: LocalCluster, unique_topic
):
    cluster = healthy_cluster
    create_replicated_topic(cluster, unique_topic)
    with running_simulator(cluster, tmp_path, unique_topic, "it-controller") as running:
        simulator, thread, settings = running
        wait_until(
            lambda: acknowledged(simulator) >= ACKS_BEFORE_KILL, 90, 0.1, message="acknowledgements"
        )

        controller = active_controller(cluster)
        assert controller is not None
        killed_at = time.monotonic()
        cluster.kill_node(controller)
        acked_at_kill = acknowledged(simulator)
        report_recovery(
            simulator, acked_at_kill, killed_at, f"SIGKILL of controller node {controller}"
        )
        wait_until(
            lambda: active_controller(cluster) not in (None, controller),
            60,
            0.1,
            message=f"a new active controller after SIGKILL of node {controller}",
        )
        wait_until(
            lambda: acknowledged(simulator) >= acked_at_kill + ACKS_AFTER_KILL,
            120,
            0.1,
            message=f"acknowledgements after SIGKILL of controller node {controller}",
        )
        finish_and_check(cluster, simulator, thread, settings, unique_topic)
