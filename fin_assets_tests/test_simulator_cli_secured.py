"""`fin-assets simulate` takes the Kafka security settings from the environment, as
`fin-assets simulator-job` does: against the real SASL_SSL (SCRAM-SHA-512) broker of
fixtures/kafka.py's secured_kafka it delivers, and a consumer reads back every logged event.
Before the fix the command built its producer from its flags only, so it spoke PLAINTEXT to
the TLS listener and delivered nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fin_assets.lib.simulator.transactions_log import read_event_ids
from fin_assets_tests.fixtures.kafka import SecuredKafka, read_topic

pytestmark = pytest.mark.kafka


def secured_env(tmp_path: Path, secured: SecuredKafka, topic: str, **extra: str) -> dict:
    return {
        **os.environ,
        "FIN_DATA_DIR": str(tmp_path / "data"),
        "FIN_SYMBOLS": "TSLA,IBM",
        "KAFKA_BOOTSTRAP_SERVERS": secured.sasl_ssl_bootstrap,
        "FIN_KAFKA_TOPIC": topic,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": secured.username,
        "KAFKA_SASL_PASSWORD": secured.password,
        "KAFKA_SSL_CAFILE": secured.cafile,
        **extra,
    }


def run_simulate(env: dict, cwd: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "fin_assets.cli", "simulate", *arguments]
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )


def test_simulate_over_sasl_ssl_delivers_every_logged_event(
    tmp_path, secured_kafka: SecuredKafka, unique_topic
):
    env = secured_env(tmp_path, secured_kafka, unique_topic)
    done = run_simulate(env, tmp_path, "--rate", "50", "--duration", "3", "--seed", "7")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "SASL_SSL, SASL SCRAM-SHA-512 as fin_simulator" in output, output

    logged = read_event_ids(tmp_path / "data" / "logs_transacciones.log")
    assert len(logged) >= 50, output
    client = secured_kafka.sasl_client_config()
    topic_ids = [
        event["event_id"]
        for _, _, event in read_topic(secured_kafka.sasl_ssl_bootstrap, unique_topic, **client)
    ]
    assert len(topic_ids) == len(set(topic_ids)), "duplicated event_id in the topic"
    assert sorted(topic_ids) == sorted(logged)
    assert secured_kafka.password not in output


def test_simulate_refuses_unusable_security_settings_naming_the_variable(
    tmp_path, secured_kafka: SecuredKafka, unique_topic
):
    """A SASL protocol without a mechanism cannot work: exit 2 at once, naming the variable,
    instead of retrying a connection for the whole duration; the password is not printed."""
    env = secured_env(tmp_path, secured_kafka, unique_topic)
    del env["KAFKA_SASL_MECHANISM"]
    done = run_simulate(env, tmp_path, "--duration", "60")
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "KAFKA_SASL_MECHANISM=None is not one of" in output, output
    assert secured_kafka.password not in output
    assert not (tmp_path / "data" / "logs_transacciones.log").exists()
