"""A topic that would delete the stream is refused (issue 16, defect 5), on a real broker.

A compacted topic keeps only the newest event per key (the symbol): on main, 497 of 499
acknowledged events were deleted and the simulator exited 0. A tiny retention loses events the
same way before a consumer that was down could read them. The project creates its topic with
`cleanup.policy=delete` and checks an existing topic's effective configuration before it
produces; a topic that fails is refused naming the setting, and nothing is produced into it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from fin_assets.defs.resources.kafka import (
    KafkaProducerResource,
    TopicConfigurationError,
    topic_config_problems,
)
from fin_assets.defs.simulator.session import build_simulator
from fin_assets_tests.fixtures.kafka import read_topic
from fin_assets_tests.helpers.paths import REPO
from fin_assets_tests.helpers.simulator_cli import make_settings

pytestmark = pytest.mark.kafka


# (topic configuration, what the refusal must name)
STREAM_DELETING = [
    pytest.param({"cleanup.policy": "compact"}, "cleanup.policy=compact", id="compact"),
    pytest.param(
        {"cleanup.policy": "compact,delete"}, "cleanup.policy=compact,delete", id="compact,delete"
    ),
    pytest.param({"retention.ms": "1000"}, "retention.ms=1000", id="retention.ms-1s"),
    pytest.param({"retention.bytes": "1024"}, "retention.bytes=1024", id="retention.bytes-1KiB"),
]


@pytest.fixture
def admin(kafka_bootstrap_servers):
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers)
    yield client
    client.close()


def create_topic(admin: KafkaAdminClient, topic: str, configs: dict[str, str]) -> None:
    """The topic as an operator (or another tool) made it before the simulator ran."""
    admin.create_topics([NewTopic(topic, 3, 1, topic_configs=configs)])


def effective_config(admin: KafkaAdminClient, topic: str, name: str) -> dict:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={name: None})
    answer = admin.describe_configs([resource], config_filter="all")
    return next(iter(answer.values()))[topic][name]


@pytest.mark.parametrize(
    ("configs", "named"),
    [
        ({"cleanup.policy": "compact"}, ["cleanup.policy=compact"]),
        ({"cleanup.policy": "delete, compact"}, ["cleanup.policy=delete, compact"]),
        ({"retention.ms": "60000"}, ["retention.ms=60000"]),
        ({"retention.bytes": "1"}, ["retention.bytes=1"]),
        ({"retention.ms": "soon"}, ["retention.ms='soon' is not a number"]),
        (
            {"cleanup.policy": "compact", "retention.ms": "0"},
            ["cleanup.policy=compact", "retention.ms=0"],
        ),
        ({"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1"}, []),
        ({"cleanup.policy": "delete", "retention.ms": "-1"}, []),  # kept for ever
        ({}, []),
    ],
)
def test_topic_config_problems_name_each_setting(configs, named):
    problems = topic_config_problems("t", configs)
    assert len(problems) == len(named)
    for problem, setting in zip(problems, named, strict=True):
        assert problem.startswith(f"topic t: {setting}"), problem


@pytest.mark.parametrize(("configs", "named"), STREAM_DELETING)
def test_ensure_topic_refuses_a_topic_that_would_delete_the_stream(
    admin, kafka_bootstrap_servers, unique_topic, configs, named
):
    create_topic(admin, unique_topic, configs)
    kafka = KafkaProducerResource(bootstrap_servers=kafka_bootstrap_servers, topic=unique_topic)
    with pytest.raises(TopicConfigurationError) as refused:
        kafka.ensure_topic()
    assert f"topic {unique_topic}: {named}" in str(refused.value)


@pytest.mark.parametrize(("configs", "named"), STREAM_DELETING)
def test_the_simulator_stops_and_produces_nothing_into_such_a_topic(
    admin, tmp_path, kafka_bootstrap_servers, unique_topic, configs, named
):
    create_topic(admin, unique_topic, configs)
    kafka = KafkaProducerResource(bootstrap_servers=kafka_bootstrap_servers, topic=unique_topic)
    lines: list[tuple[str, str]] = []
    simulator = build_simulator(
        make_settings(tmp_path),
        kafka,
        run_id="it-refused",
        rate_per_s=200,
        duration_s=20,
        seed=3,
        log=lambda level, message: lines.append((level, message)),
    )
    summary = simulator.run()
    assert summary.refused and named in summary.refused
    assert summary.elapsed_s < 15  # stopped at the refusal, not at the end of the duration
    assert summary.acknowledged == 0
    assert read_topic(kafka_bootstrap_servers, unique_topic) == []
    errors = [message for level, message in lines if level == "error"]
    assert len(errors) == 1 and named in errors[0] and unique_topic in errors[0]
    assert "STOPPED, Kafka refused" in summary.describe()


@pytest.mark.parametrize(("configs", "named"), STREAM_DELETING)
def test_fin_assets_simulate_exits_2_naming_the_setting(
    admin, tmp_path, kafka_bootstrap_servers, unique_topic, configs, named
):
    create_topic(admin, unique_topic, configs)
    settings = make_settings(tmp_path)
    env = {
        **os.environ,
        "FIN_DATA_DIR": settings.data_dir,
        "FIN_SYMBOLS": settings.symbols,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "FIN_KAFKA_TOPIC": unique_topic,
    }
    done = subprocess.run(
        [sys.executable, "-m", "fin_assets.cli", "simulate", "--rate", "50", "--duration", "20"]
        + ["--bootstrap-servers", kafka_bootstrap_servers, "--topic", unique_topic],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"Not producing to Kafka: topic {unique_topic}: {named}" in done.stderr
    assert read_topic(kafka_bootstrap_servers, unique_topic) == []


def test_the_simulator_job_fails_naming_the_setting(
    admin, tmp_path, kafka_bootstrap_servers, unique_topic
):
    from fin_assets.defs.simulator.job import OP_NAME, transaction_simulator_job

    create_topic(admin, unique_topic, {"cleanup.policy": "compact"})
    defs = dg.Definitions(
        jobs=[transaction_simulator_job],
        resources={
            "settings": make_settings(tmp_path),
            "kafka": KafkaProducerResource(
                bootstrap_servers=kafka_bootstrap_servers, topic=unique_topic
            ),
        },
    )
    run_config = {"ops": {OP_NAME: {"config": {"rate_per_s": 20, "max_duration_s": 30}}}}
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("transaction_simulator_job").execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("Stopped producing, Kafka refused: ")
    assert f"topic {unique_topic}: cleanup.policy=compact" in description
    assert read_topic(kafka_bootstrap_servers, unique_topic) == []


def test_the_topic_the_project_creates_states_its_cleanup_policy(
    admin, kafka_bootstrap_servers, unique_topic
):
    kafka = KafkaProducerResource(bootstrap_servers=kafka_bootstrap_servers, topic=unique_topic)
    assert kafka.ensure_topic() is True
    policy = effective_config(admin, unique_topic, "cleanup.policy")
    assert policy["value"] == "delete"
    assert policy["config_source"] == "DYNAMIC_TOPIC_CONFIG"  # stated, not a broker default
    assert kafka.ensure_topic() is False  # and it passes its own check


def test_a_fit_existing_topic_is_used(admin, tmp_path, kafka_bootstrap_servers, unique_topic):
    create_topic(admin, unique_topic, {"cleanup.policy": "delete", "retention.ms": "604800000"})
    kafka = KafkaProducerResource(bootstrap_servers=kafka_bootstrap_servers, topic=unique_topic)
    simulator = build_simulator(
        make_settings(tmp_path), kafka, run_id="it-fit", rate_per_s=100, duration_s=2, seed=5
    )
    summary = simulator.run()
    assert summary.refused is None
    assert summary.generated > 0 and summary.acknowledged == summary.generated
    assert len(read_topic(kafka_bootstrap_servers, unique_topic)) == summary.generated
