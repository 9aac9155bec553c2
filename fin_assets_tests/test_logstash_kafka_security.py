"""The pipeline's kafka input against real brokers: SASL_SSL with SCRAM-SHA-512, SSL, and the
PLAINTEXT default, with the option values the pipeline file gives after Logstash's `${VAR:default}`
substitution.

Logstash cannot run here. What runs is the Kafka Java client (the library the
logstash-integration-kafka plugin wraps) with the consumer properties the plugin builds from those
options: `create_consumer` in lib/logstash/inputs/kafka.rb puts `security.protocol` and then the
ssl_* options only for SSL / SASL_SSL (`set_trustore_keystore_config`) and the sasl_* ones only for
SASL_PLAINTEXT / SASL_SSL (`set_sasl_config`, lib/logstash/plugin_mixins/kafka/common.rb), each
`unless <option>.nil?`. The brokers are fixtures/kafka.py's real ones; the SCRAM password and the
truststore password only travel through environment variables and 0600 files.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from fin_assets_tests.fixtures.kafka import SecuredKafka, kafka_jars_dir, write_private
from fin_assets_tests.helpers.logstash_conf import by_id, pipeline_plugins

pytestmark = pytest.mark.kafka

# logstash-core SubstitutionVariables: `${NAME}` or `${NAME:default}` (the default may be empty).
_PLACEHOLDER = re.compile(r"\$\{(?P<name>[a-zA-Z_.][a-zA-Z0-9_.]*)(:(?P<default>[^}]*))?\}")


def logstash_substitute(value: str, env: dict[str, str]) -> str:
    """Logstash's substitution: the environment's value, else the default, else an error."""

    def replace(match: re.Match) -> str:
        resolved = env.get(match["name"], match["default"])
        if resolved is None:
            raise ValueError(f"Cannot evaluate `{match[0]}`: `{match['name']}` is not defined")
        return resolved

    return _PLACEHOLDER.sub(replace, value)


def kafka_input_options(env: dict[str, str]) -> dict[str, str]:
    """The transactions kafka input's options as Logstash sees them under this environment."""
    attrs = by_id(pipeline_plugins(), "transactions_kafka").attrs
    return {
        name: logstash_substitute(value, env)
        for name, value in attrs.items()
        if isinstance(value, str) and name not in ("codec", "id")
    }


def consumer_properties(options: dict[str, str]) -> dict[str, str]:
    """The Kafka consumer properties inputs/kafka.rb create_consumer builds from these options
    (the connection and security part; the pipeline sets every option used, so no nil)."""
    props = {
        "bootstrap.servers": options["bootstrap_servers"],
        "group.id": options["group_id"],
        "client.id": options["client_id"],
        "auto.offset.reset": options["auto_offset_reset"],
        "security.protocol": options["security_protocol"],
    }
    protocol = options["security_protocol"]
    if protocol in ("SSL", "SASL_SSL"):
        props["ssl.truststore.type"] = options["ssl_truststore_type"]
        props["ssl.truststore.location"] = options["ssl_truststore_location"]
        props["ssl.truststore.password"] = options["ssl_truststore_password"]
        props["ssl.endpoint.identification.algorithm"] = options[
            "ssl_endpoint_identification_algorithm"
        ]
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        props["sasl.mechanism"] = options["sasl_mechanism"]
        props["sasl.jaas.config"] = options["sasl_jaas_config"]
    return props


# A consumer as the plugin runs one: subscribe to the topic in the group, poll, print values.
# Exit 0 with `count` records, 2 on an authentication failure, 3 on timeout.
CONSUMER_JAVA = r"""
import java.io.FileReader;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.errors.AuthenticationException;

public class Consume {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (FileReader reader = new FileReader(args[0])) { props.load(reader); }
        props.put("key.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        props.put("value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        int wanted = Integer.parseInt(args[2]);
        long deadline = System.currentTimeMillis() + 90_000;
        int got = 0;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(args[1]));
            while (got < wanted && System.currentTimeMillis() < deadline) {
                var records = consumer.poll(Duration.ofMillis(500));
                for (ConsumerRecord<String, String> record : records) {
                    System.out.println("RECORD " + record.value());
                    got++;
                }
            }
        } catch (AuthenticationException e) {
            System.out.println("AUTHENTICATION_FAILED " + e.getClass().getName());
            System.exit(2);
        }
        System.exit(got >= wanted ? 0 : 3);
    }
}
"""


@functools.cache
def consumer_classes() -> Path:
    """Consume.java compiled once per session (javac), against the cached Kafka client jars."""
    folder = Path(tempfile.mkdtemp(prefix="fin-logstash-consumer-"))
    atexit.register(shutil.rmtree, folder, True)
    source = folder / "Consume.java"
    source.write_text(CONSUMER_JAVA)
    subprocess.run(
        ["javac", "-cp", f"{kafka_jars_dir() / 'libs'}/*", "-d", str(folder), str(source)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    return folder


def run_consumer(folder: Path, props: dict[str, str], topic: str, count: int):
    """The Java consumer with these properties (a 0600 file: it holds the JAAS line)."""
    folder.mkdir(parents=True, exist_ok=True)
    # java.util.Properties format: escape backslashes, nothing else here needs it.
    text = "".join(f"{k}={v.replace(chr(92), chr(92) * 2)}\n" for k, v in props.items())
    props_file = write_private(folder / "consumer.properties", text)
    jars = kafka_jars_dir()
    classpath = f"{consumer_classes()}:{jars / 'libs'}/*"
    try:
        return subprocess.run(
            ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1",
             f"-Dlog4j2.configurationFile={jars / 'log4j2.properties'}",
             "-cp", classpath, "Consume", str(props_file), topic, str(count)],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        props_file.unlink()


def records_of(done: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RECORD ")]


def produce_events(bootstrap: str, topic: str, count: int, **client) -> list[dict]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    events = [{"event_id": str(uuid.uuid4()), "seq": i} for i in range(count)]
    producer = KafkaProducer(bootstrap_servers=bootstrap, **client)
    try:
        for event in events:
            producer.send(topic, json.dumps(event).encode())
        producer.flush(timeout=60)
    finally:
        producer.close()
    return events


@pytest.fixture(scope="module")
def truststore(secured_kafka: SecuredKafka, tmp_path_factory) -> tuple[Path, str]:
    """The broker CA as a PKCS12 truststore, as Strimzi's ca.p12 + ca.password; keytool reads
    the store password from the environment (`-storepass:env`), never from argv."""
    folder = tmp_path_factory.mktemp("logstash-truststore")
    password = secrets.token_urlsafe(12)
    store = folder / "ca.p12"
    subprocess.run(
        ["keytool", "-importcert", "-noprompt", "-alias", "fin-kafka-ca", "-file",
         secured_kafka.cafile, "-keystore", str(store), "-storetype", "PKCS12",
         "-storepass:env", "FIN_TEST_STOREPASS"],
        env={**os.environ, "FIN_TEST_STOREPASS": password}, check=True, capture_output=True,
    )  # fmt: skip
    return store, password


def secured_env(secured: SecuredKafka, store: Path, store_password: str, **overrides) -> dict:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": secured.sasl_ssl_bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": secured.username,
        "KAFKA_SASL_PASSWORD": secured.password,
        "KAFKA_SSL_TRUSTSTORE_LOCATION": str(store),
        "KAFKA_SSL_TRUSTSTORE_PASSWORD": store_password,
        "KAFKA_SSL_TRUSTSTORE_TYPE": "PKCS12",
        "FIN_KAFKA_TOPIC": f"test_logstash_{uuid.uuid4().hex[:10]}",
        "LOGSTASH_KAFKA_GROUP_ID": f"logstash_test_{uuid.uuid4().hex[:8]}",
        **overrides,
    }


def test_plaintext_defaults_set_no_security_property():
    """Nothing set: PLAINTEXT, and none of the ssl/sasl defaults reaches the client."""
    props = consumer_properties(kafka_input_options({}))
    assert props["security.protocol"] == "PLAINTEXT"
    assert props["bootstrap.servers"] == "kafka:9092"
    assert not [key for key in props if key.startswith(("ssl.", "sasl."))]


def test_plaintext_defaults_consume_from_a_plaintext_broker(kafka_bootstrap_servers, tmp_path):
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
           "FIN_KAFKA_TOPIC": f"test_logstash_{uuid.uuid4().hex[:10]}"}  # fmt: skip
    events = produce_events(kafka_bootstrap_servers, env["FIN_KAFKA_TOPIC"], 3)
    done = run_consumer(tmp_path, consumer_properties(kafka_input_options(env)),
                        env["FIN_KAFKA_TOPIC"], len(events))  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert records_of(done) == events


def test_sasl_ssl_scram_consumes_every_event_and_leaks_no_secret(
    secured_kafka, truststore, tmp_path
):
    store, store_password = truststore
    env = secured_env(secured_kafka, store, store_password)
    options = kafka_input_options(env)
    props = consumer_properties(options)
    assert props["sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f"username='{secured_kafka.username}' password='{secured_kafka.password}';"
    )
    events = produce_events(secured_kafka.sasl_ssl_bootstrap, env["FIN_KAFKA_TOPIC"], 5,
                            **secured_kafka.sasl_client_config())  # fmt: skip
    done = run_consumer(tmp_path, props, env["FIN_KAFKA_TOPIC"], len(events))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert records_of(done) == events
    for secret in (secured_kafka.password, store_password):
        assert secret not in done.stdout + done.stderr
    assert not list(tmp_path.glob("*.properties")), "the JAAS line outlived the consumer"


def test_sasl_ssl_with_a_wrong_password_fails_authentication(secured_kafka, truststore, tmp_path):
    store, store_password = truststore
    env = secured_env(secured_kafka, store, store_password, KAFKA_SASL_PASSWORD="not-the-password")
    produce_events(secured_kafka.sasl_ssl_bootstrap, env["FIN_KAFKA_TOPIC"], 1,
                   **secured_kafka.sasl_client_config())  # fmt: skip
    done = run_consumer(tmp_path, consumer_properties(kafka_input_options(env)),
                        env["FIN_KAFKA_TOPIC"], 1)  # fmt: skip
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert "SaslAuthenticationException" in done.stdout
    assert not records_of(done)


def test_ssl_only_consumes_with_the_truststore(secured_kafka, truststore, tmp_path):
    store, store_password = truststore
    env = secured_env(secured_kafka, store, store_password, KAFKA_SECURITY_PROTOCOL="SSL",
                      KAFKA_BOOTSTRAP_SERVERS=secured_kafka.ssl_bootstrap)  # fmt: skip
    props = consumer_properties(kafka_input_options(env))
    assert not [key for key in props if key.startswith("sasl.")]
    events = produce_events(secured_kafka.ssl_bootstrap, env["FIN_KAFKA_TOPIC"], 3,
                            **secured_kafka.ssl_client_config())  # fmt: skip
    done = run_consumer(tmp_path, props, env["FIN_KAFKA_TOPIC"], len(events))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert records_of(done) == events


def test_an_unset_secret_without_default_would_stop_logstash():
    # Why the JAAS line uses ${VAR:} (empty default): without one, Logstash refuses to start
    # in PLAINTEXT too, where the line is never used.
    with pytest.raises(ValueError, match="KAFKA_SASL_PASSWORD"):
        logstash_substitute("password='${KAFKA_SASL_PASSWORD}'", {})
    assert logstash_substitute("password='${KAFKA_SASL_PASSWORD:}'", {}) == "password=''"


def test_a_pem_truststore_is_refused_because_the_password_option_is_always_set(
    secured_kafka, tmp_path
):
    # Why the deploy uses Strimzi's ca.p12 and not ca.crt: the pipeline always sets
    # ssl_truststore_password (empty by default), the plugin passes "" on (it only skips nil),
    # and Kafka's client refuses any password for a PEM truststore.
    env = secured_env(secured_kafka, Path(secured_kafka.cafile), "",
                      KAFKA_SSL_TRUSTSTORE_TYPE="PEM")  # fmt: skip
    props = consumer_properties(kafka_input_options(env))
    assert props["ssl.truststore.password"] == ""
    done = run_consumer(tmp_path, props, env["FIN_KAFKA_TOPIC"], 1)
    assert done.returncode != 0
    assert "SSL trust store password cannot be specified for PEM format" in done.stderr
