"""The simulator against a real secured Kafka broker: SASL_SSL with SCRAM-SHA-512, and SSL.

The broker (fixtures/kafka.py's secured_kafka) is a real Apache Kafka 4.4 with a TLS certificate
made by openssl for this session and a SCRAM user added at format time; its random password
only travels through 0600 files and environment variables, and must show up nowhere else.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from fin_assets.defs.resources.kafka import KafkaProducerResource
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.defs.simulator.session import build_simulator
from fin_assets.lib.kafka_security import (
    KafkaAuthenticationError,
    KafkaSecurityConfigError,
    check_security_settings,
)
from fin_assets.lib.simulator.transactions_log import read_event_ids
from fin_assets_tests.fixtures.kafka import (
    SecuredKafka,
    make_test_certificates,
    read_topic,
)
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.helpers.secrets import scan_command_lines, scan_files

pytestmark = pytest.mark.kafka


def settings_in(folder: Path) -> PipelineSettings:
    return PipelineSettings(data_dir=str(folder / "data"), symbols="TSLA,IBM")


def assert_read_back_equals_log(
    secured: SecuredKafka, bootstrap: str, topic: str, log: Path, client: dict
) -> int:
    """A real consumer over the secured listener reads exactly the logged event_ids, once."""
    topic_ids = [event["event_id"] for _, _, event in read_topic(bootstrap, topic, **client)]
    logged = read_event_ids(log)
    assert logged, "the simulator logged nothing"
    assert len(topic_ids) == len(set(topic_ids)), "duplicated event_id in the topic"
    assert sorted(topic_ids) == sorted(logged)
    return len(logged)


def test_simulator_job_over_sasl_ssl_scram_delivers_every_logged_event(
    tmp_path, secured_kafka: SecuredKafka, unique_topic
):
    """The user's path: `fin-assets simulator-job` with the KAFKA_* variables, through
    Dagster's EnvVar resources; the password is in the environment only."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "FIN_DATA_DIR": str(tmp_path / "data"),
        "FIN_SYMBOLS": "TSLA,IBM",
        "KAFKA_BOOTSTRAP_SERVERS": secured_kafka.sasl_ssl_bootstrap,
        "FIN_KAFKA_TOPIC": unique_topic,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": secured_kafka.username,
        "KAFKA_SASL_PASSWORD": secured_kafka.password,
        "KAFKA_SSL_CAFILE": secured_kafka.cafile,
    }
    password = secured_kafka.password
    (tmp_path / "dagster_home").mkdir()
    command = [sys.executable, "-m", "fin_assets.cli", "simulator-job", "--duration", "4"]
    command += ["--rate", "25", "--seed", "5"]
    job = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    # What `ps` shows of every process (the arguments, never the environment), every 0.5 s
    # while the job runs.
    seen_by_ps = []
    while job.poll() is None:
        seen_by_ps.append(scan_command_lines(password))
        time.sleep(0.5)
    output = job.communicate(timeout=120)[0].decode(errors="replace")
    assert job.returncode == 0, output

    delivered = assert_read_back_equals_log(
        secured_kafka,
        secured_kafka.sasl_ssl_bootstrap,
        unique_topic,
        tmp_path / "data" / "logs_transacciones.log",
        secured_kafka.sasl_client_config(),
    )
    assert delivered >= 50
    assert password not in output
    # The job's own process was among those `ps` showed, in at least one snapshot.
    assert seen_by_ps, "the job ended before `ps` was looked at once"
    sum(seen_by_ps[1:], seen_by_ps[0]).assert_clean(expect=[f"pid {job.pid}: "])
    # The Dagster instance, logs, data.
    scan_files(tmp_path, password).assert_clean(
        expect=["dagster_home", "data/logs_transacciones.log"]
    )
    scan_command_lines(password, [secured_kafka.broker_pid]).assert_clean(
        expect=[f"pid {secured_kafka.broker_pid}: "]
    )
    # On the broker's side the password is only in the format step's 0600 argfile, deleted.
    scan_files(secured_kafka.state_dir, password).assert_clean()


def test_simulator_over_ssl_delivers_every_logged_event(
    tmp_path, secured_kafka: SecuredKafka, unique_topic
):
    settings = settings_in(tmp_path)
    kafka = KafkaProducerResource(
        bootstrap_servers=secured_kafka.ssl_bootstrap,
        topic=unique_topic,
        security_protocol="SSL",
        ssl_cafile=secured_kafka.cafile,
    )
    summary = build_simulator(
        settings, kafka, run_id="it-ssl", rate_per_s=200, duration_s=2, seed=3
    ).run()
    assert summary.generated >= 100
    assert summary.acknowledged == summary.generated, summary.describe()
    assert_read_back_equals_log(
        secured_kafka,
        secured_kafka.ssl_bootstrap,
        unique_topic,
        settings.transactions_log_path,
        secured_kafka.ssl_client_config(),
    )


def test_wrong_password_is_named_and_nothing_counts_as_sent(
    tmp_path, secured_kafka: SecuredKafka, unique_topic, capfd
):
    wrong = "not-" + secured_kafka.password
    settings = settings_in(tmp_path)
    kafka = KafkaProducerResource(
        bootstrap_servers=secured_kafka.sasl_ssl_bootstrap,
        topic=unique_topic,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=secured_kafka.username,
        sasl_password=wrong,
        ssl_cafile=secured_kafka.cafile,
        # Long enough for TLS + SCRAM on a loaded machine, short enough for a quick verdict.
        bootstrap_timeout_ms=6000,
    )
    lines: list[str] = []
    simulator = build_simulator(
        settings,
        kafka,
        run_id="it-wrong-password",
        rate_per_s=20,
        duration_s=120,
        seed=1,
        log=lambda level, text: lines.append(f"{level} {text}"),
    )
    worker = threading.Thread(target=simulator.run, daemon=True)
    worker.start()
    wait_until(
        lambda: any("refused the SASL" in line for line in lines), 60, 0.1, message="the refusal"
    )
    simulator.stop.set()
    worker.join(timeout=60)
    assert not worker.is_alive()
    summary = simulator.summary
    # Every event is in the transactions log, and counted unsent: none is claimed delivered.
    logged = read_event_ids(settings.transactions_log_path)
    assert summary.generated == len(logged) > 0
    assert summary.acknowledged == 0 and summary.failed == 0
    assert summary.unsent + summary.dropped == summary.generated
    message = summary.last_error or ""
    assert message.startswith(KafkaAuthenticationError.__name__), message
    assert "refused the SASL SCRAM-SHA-512 credentials" in message
    assert secured_kafka.username in message and "KAFKA_SASL_PASSWORD" in message
    assert secured_kafka.sasl_ssl_bootstrap in message
    assert any("refused the SASL" in line for line in lines)

    client = secured_kafka.sasl_client_config()
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=secured_kafka.sasl_ssl_bootstrap, **client)
    try:
        assert unique_topic not in admin.list_topics()  # nothing reached the broker
    finally:
        admin.close()

    captured = capfd.readouterr()
    everything = "\n".join([message, summary.last_error or "", *lines, captured.out, captured.err])
    assert wrong not in everything and secured_kafka.password not in everything
    # The transactions log among the files read.
    scan_files(tmp_path, wrong).assert_clean(expect=[str(settings.transactions_log_path)])


def test_untrusted_broker_certificate_is_named(tmp_path, secured_kafka: SecuredKafka):
    other_ca, _ = make_test_certificates(tmp_path / "other-ca")
    kafka = KafkaProducerResource(
        bootstrap_servers=secured_kafka.ssl_bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(other_ca),
        bootstrap_timeout_ms=6000,
    )
    with pytest.raises(Exception, match="TLS certificate is not trusted.*KAFKA_SSL_CAFILE"):
        kafka.ensure_topic()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (("SASL_SSLX", None, None, None, None), "KAFKA_SECURITY_PROTOCOL='SASL_SSLX'"),
        (("SASL_SSL", "SCRAM-SHA-1", "u", "p", None), "KAFKA_SASL_MECHANISM='SCRAM-SHA-1'"),
        (("SASL_SSL", "SCRAM-SHA-512", "u", None, None), "KAFKA_SASL_PASSWORD must be set"),
        (("SASL_SSL", "PLAIN", None, None, None), "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        (("PLAINTEXT", "SCRAM-SHA-512", "u", "p", None), "KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
        (("SSL", None, None, None, "/nonexistent/ca.crt"), "KAFKA_SSL_CAFILE=/nonexistent"),
        (("PLAINTEXT", None, None, None, "/etc/hostname"), "does not use TLS"),
    ],
)
def test_unusable_security_settings_name_the_variable(settings, named):
    with pytest.raises(KafkaSecurityConfigError, match=named.replace("(", r"\(")) as error:
        check_security_settings(*settings)
    assert "'p'" not in str(error.value)  # a password is never quoted back


def test_password_stays_out_of_describe_and_repr():
    kafka = KafkaProducerResource(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="fin_simulator",
        sasl_password="hunter2-secret",
        ssl_cafile="/etc/hostname",
    )
    assert "hunter2-secret" not in kafka.describe()
    assert "hunter2-secret" not in repr(kafka)
    assert "fin_simulator" in kafka.describe()


def test_password_stays_out_of_kafka_debug_logs():
    """kafka-python's admin client logs its whole configuration at DEBUG; a Dagster instance
    that captures the `kafka` loggers would otherwise store the password."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # nothing listens once the socket is closed
    kafka = KafkaProducerResource(
        bootstrap_servers=f"127.0.0.1:{closed_port}",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="fin_simulator",
        sasl_password="hunter2-secret",
        bootstrap_timeout_ms=300,
    )
    lines: list[str] = []
    capture = logging.Handler(level=logging.DEBUG)
    capture.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    kafka_logger = logging.getLogger("kafka")
    level = kafka_logger.level
    kafka_logger.addHandler(capture)
    kafka_logger.setLevel(logging.DEBUG)
    try:
        with pytest.raises(Exception, match="Unable to bootstrap"):
            kafka.ensure_topic()
    finally:
        kafka_logger.removeHandler(capture)
        kafka_logger.setLevel(level)
    text = "\n".join(lines)
    assert "Starting KafkaAdminClient with configuration" in text
    assert "hunter2-secret" not in text


def test_unusable_security_settings_fail_the_run_at_once(tmp_path):
    """Through Dagster: the kafka resource's setup names the missing variable; the simulator
    never starts (no retry loop against a connection that cannot work)."""
    from fin_assets.defs.simulator.job import run_config, transaction_simulator_job

    result = transaction_simulator_job.execute_in_process(
        run_config=run_config(duration_s=30, rate_per_s=5),
        resources={
            "settings": settings_in(tmp_path),
            "kafka": KafkaProducerResource(
                security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512"
            ),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    errors = [
        e.event_specific_data.error.to_string()
        for e in result.all_events
        if getattr(e.event_specific_data, "error", None) is not None
    ]
    assert any("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD must be set" in e for e in errors)
    assert not (tmp_path / "data" / "logs_transacciones.log").exists()
