"""Kafka producer settings as a Dagster resource.

Nothing connects at import or definition time: `create_producer()` and `ensure_topic()` are
called when a run starts (kafka-python connects inside its constructors and blocks until a
broker answers, raising after `bootstrap_timeout_ms`).

The topic is a stream: every event must stay until the consumers (Logstash) have read it.
`ensure_topic()` creates it with `TOPIC_CONFIG` (delete by age, never compact) and refuses an
existing topic whose configuration would delete the stream (`topic_config_problems`): a
compacted topic keeps only the newest event per key (symbol), a tiny retention drops events
before a consumer that was down for a while could read them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import dagster as dg
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import Field

from fin_assets.defs.resources.settings import env_var_or, secret_env_var, unusable_resource
from fin_assets.lib import config, settings
from fin_assets.lib.kafka_security import (
    check_security_settings,
    named_bootstrap_failures,
)
from fin_assets.lib.simulator.delivery import ConnectRefused

# What the project creates the topic with; an existing topic is checked against the same rules.
TOPIC_CONFIG = {"cleanup.policy": "delete"}
# A day: a consumer down overnight loses nothing (the deployed topic keeps a week).
MIN_RETENTION_MS = 24 * 60 * 60 * 1000
# Per partition: at the default 1 event/s a day of events is about 10 MB per partition.
MIN_RETENTION_BYTES = 16 * 1024 * 1024
CHECKED_CONFIGS = ("cleanup.policy", "retention.ms", "retention.bytes")


class TopicConfigurationError(ConnectRefused):
    """The topic exists with a configuration that would delete the stream; retrying cannot
    help, so the simulator stops instead of producing into it."""


def topic_config_problems(topic: str, configs: dict[str, str | None]) -> list[str]:
    """What in `configs` (the topic's effective settings) would delete events before they are
    read; empty when the topic is fit for the stream."""
    problems = []
    policy = configs.get("cleanup.policy") or "delete"
    if "compact" in {part.strip() for part in policy.split(",")}:
        problems.append(
            f"cleanup.policy={policy}: compaction keeps only the newest event per key (symbol) "
            "and deletes the others"
        )
    for name, floor, unit in (
        ("retention.ms", MIN_RETENTION_MS, "ms (a day)"),
        ("retention.bytes", MIN_RETENTION_BYTES, "bytes per partition (16 MiB)"),
    ):
        value = configs.get(name)
        try:
            number = int(value) if value is not None else -1
        except ValueError:
            problems.append(f"{name}={value!r} is not a number")
            continue
        if number != -1 and number < floor:  # -1: unlimited
            problems.append(f"{name}={number}: events would be deleted below {floor} {unit}")
    return [f"topic {topic}: {problem}" for problem in problems]


class KafkaProducerResource(dg.ConfigurableResource):
    """Where and how the simulator produces: acks=all, idempotent, key = symbol."""

    bootstrap_servers: str = Field(
        default=config.DEFAULT_KAFKA_BOOTSTRAP_SERVERS,
        description="Comma-separated host:port list (KAFKA_BOOTSTRAP_SERVERS).",
    )
    topic: str = Field(
        default=config.DEFAULT_KAFKA_TOPIC, description="Topic to produce to (FIN_KAFKA_TOPIC)."
    )
    partitions: int = Field(default=3, description="Partition count when the topic is created.")
    replication_factor: int = Field(default=1, description="Replication when created.")
    security_protocol: str = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: str | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)."
    )
    sasl_username: str | None = Field(default=None, description="Set it through an EnvVar.")
    sasl_password: str | None = Field(
        default=None, description="Set it only through an EnvVar; never logged.", repr=False
    )
    ssl_cafile: str | None = Field(default=None, description="CA bundle to verify the brokers.")
    linger_ms: int = Field(default=5, description="How long to wait to fill a batch.")
    batch_size: int = Field(default=16384, description="Batch size in bytes per partition.")
    compression_type: str | None = Field(
        default=None, description="None, gzip, snappy, lz4 or zstd (the codec must be installed)."
    )
    bootstrap_timeout_ms: int = Field(
        default=10000, description="How long one connection attempt waits for a broker."
    )
    delivery_timeout_ms: int = Field(
        default=120000,
        description="How long the producer retries an event before counting it as failed.",
    )
    max_block_ms: int = Field(
        default=5000, description="Longest a send may block for metadata or buffer space."
    )

    def _connection_config(self) -> dict[str, Any]:
        check_security_settings(
            self.security_protocol,
            self.sasl_mechanism,
            self.sasl_username,
            self.sasl_password,
            self.ssl_cafile,
        )
        settings: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s],
            "security_protocol": self.security_protocol,
            "bootstrap_timeout_ms": self.bootstrap_timeout_ms,
            "client_id": "fin_assets-simulator",
        }
        if self.sasl_mechanism:
            settings["sasl_mechanism"] = self.sasl_mechanism
            settings["sasl_plain_username"] = self.sasl_username
            settings["sasl_plain_password"] = self.sasl_password
        if self.ssl_cafile:
            settings["ssl_cafile"] = self.ssl_cafile
        return settings

    def producer_config(self) -> dict[str, Any]:
        return {
            **self._connection_config(),
            # Explicit although they are kafka-python 3's defaults: they are the guarantee.
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": self.linger_ms,
            "batch_size": self.batch_size,
            "compression_type": self.compression_type,
            "delivery_timeout_ms": self.delivery_timeout_ms,
            "max_block_ms": self.max_block_ms,
            # The topic is created with the configured partitions, never implicitly.
            "allow_auto_create_topics": False,
        }

    def describe(self) -> str:
        """For logs: where we produce, without credentials."""
        auth = ""
        if self.sasl_mechanism:
            auth = f", SASL {self.sasl_mechanism} as {self.sasl_username}"
        return f"{self.topic} on {self.bootstrap_servers} ({self.security_protocol}{auth})"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Unusable security settings fail the run at once, naming the variable, instead of
        a simulator that retries a connection that can never work."""
        self._connection_config()

    def ensure_topic(self) -> bool:
        """Creates the topic when missing (with `TOPIC_CONFIG`); True when this call created it.
        An existing topic that would delete the stream raises `TopicConfigurationError`."""
        with self._named_bootstrap_failures():
            admin = KafkaAdminClient(**self._connection_config())
        try:
            if self.topic in admin.list_topics():
                self._check_topic_config(admin)
                return False
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            self.topic,
                            self.partitions,
                            self.replication_factor,
                            topic_configs=TOPIC_CONFIG,
                        )
                    ]
                )
            except TopicAlreadyExistsError:  # created concurrently by another run
                self._check_topic_config(admin)
                return False
            return True
        finally:
            admin.close()

    def _check_topic_config(self, admin: KafkaAdminClient) -> None:
        resource = ConfigResource(
            ConfigResourceType.TOPIC, self.topic, configs=dict.fromkeys(CHECKED_CONFIGS)
        )
        try:
            # "all": the effective values, broker defaults included (a tiny broker-wide
            # retention deletes the stream as surely as a topic override).
            answer = admin.describe_configs([resource], config_filter="all")
            entries = next(iter(answer.values()))[self.topic]
        except (KafkaError, StopIteration, KeyError) as error:
            raise TopicConfigurationError(
                f"topic {self.topic}: its configuration cannot be read ({error}); the simulator "
                "does not produce into a topic it cannot check (grant DescribeConfigs on it)"
            ) from None
        configs = {name: (entry or {}).get("value") for name, entry in entries.items()}
        problems = topic_config_problems(self.topic, configs)
        if problems:
            raise TopicConfigurationError(
                "; ".join(problems)
                + ". Refusing to produce: the events would be lost. Use another topic "
                "(FIN_KAFKA_TOPIC) or set cleanup.policy=delete and a retention of at least a "
                "day on this one"
            )

    def create_producer(self) -> KafkaProducer:
        return KafkaProducer(**self.producer_config())

    def connect(self) -> TopicKeepingProducer:
        """Topic ensured, then a producer that can re-create it: what the simulator's
        background connector calls."""
        self.ensure_topic()
        with self._named_bootstrap_failures():
            return TopicKeepingProducer(self.ensure_topic, **self.producer_config())

    def _named_bootstrap_failures(self) -> AbstractContextManager[None]:
        """A refused password or an untrusted certificate named, not a bare timeout."""
        return named_bootstrap_failures(
            self.bootstrap_servers, self.security_protocol, self.sasl_mechanism, self.sasl_username
        )


class TopicKeepingProducer(KafkaProducer):
    """A KafkaProducer with `ensure_topic()`: the simulator's delivery calls it when sends block
    for lack of metadata, so a topic deleted while the run produces is re-created (with the
    configured partitions) instead of blocking every send until the run ends."""

    def __init__(self, ensure_topic: Callable[[], bool], **configs: Any) -> None:
        super().__init__(**configs)
        self.ensure_topic = ensure_topic


def kafka_from_env() -> KafkaProducerResource | dg.ResourceDefinition:
    """The resource from fin_assets/lib/settings.py (credentials as EnvVars); with a bad Kafka
    setting, a stand-in that fails the simulator's runs naming the variable."""
    try:
        values = settings.kafka()
    except settings.SettingsError as error:
        return unusable_resource("kafka", error)
    return KafkaProducerResource(
        bootstrap_servers=values.bootstrap_servers,
        topic=values.topic,
        partitions=values.partitions,
        # On a cluster the topic the simulator creates needs replicas (3 for failover).
        replication_factor=values.replication_factor,
        security_protocol=values.security_protocol,
        sasl_mechanism=values.sasl_mechanism,
        sasl_username=env_var_or("KAFKA_SASL_USERNAME", None),
        sasl_password=secret_env_var("KAFKA_SASL_PASSWORD", values.sasl_password),
        ssl_cafile=values.ssl_cafile,
    )
