"""Kafka for the tests: the session's broker (scripts/test.sh) or one started here, plus
helpers to start private brokers (for tests that stop and restart one) and to read a topic.

Also, each started once per session when a test asks for it: a secured broker (SASL_SSL with
SCRAM-SHA-512 and SSL listeners, certificates made here with openssl), and a 3-node KRaft
cluster run by `scripts/kafka.sh cluster-start` (tests marked `cluster`)."""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.helpers.processes import group_alive
from fin_assets_tests.prerequisites import missing

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
        missing("Kafka needs java and mvn (or run through scripts/test.sh)")


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
    bootstrap_servers: str, topic: str, timeout_s: float = 30.0, **client_config: Any
) -> list[tuple[int, int, dict[str, Any]]]:
    """Every record of the topic now, as (partition, offset, event): reads each partition from
    the beginning up to the end offset it has when called. `client_config`: kafka-python
    settings such as security_protocol, sasl_* and ssl_cafile."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        value_deserializer=lambda raw: json.loads(raw.decode()),
        **client_config,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[tuple[int, int, dict[str, Any]]] = []

        def read_to_end() -> bool:
            if all(consumer.position(tp) >= end[tp] for tp in partitions):
                return True
            for tp, batch in consumer.poll(timeout_ms=1000).items():
                records.extend((tp.partition, r.offset, r.value) for r in batch)
            return False

        wait_until(read_to_end, timeout_s, 0, message="the topic to be read to its end")
        return records
    finally:
        consumer.close()


# -- Kafka nodes started from Python (secured broker, compose settings) ---------------------


def free_port_run(count: int) -> int:
    """A port P such that P .. P+count-1 are all free on 127.0.0.1."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            first = sock.getsockname()[1]
        if first + count > 65535:
            continue
        held = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return first
    raise RuntimeError(f"no run of {count} free ports")


@functools.cache
def kafka_jars_dir(version: str | None = None) -> Path:
    """The cached Kafka runtime (libs/ and log4j2.properties), fetched by scripts/kafka.sh;
    `version`: another Kafka release than the script's default."""
    env = {**os.environ, **({"KAFKA_VERSION": version} if version else {})}
    out = subprocess.run(
        [str(KAFKA_SCRIPT), "fetch"], env=env, capture_output=True, text=True, check=True,
        timeout=600,
    )  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def kafka_java_command(
    *args: str, heap: str = "-Xmx384m -Xms128m", version: str | None = None
) -> list[str]:
    jars = kafka_jars_dir(version)
    return [
        "java",
        *heap.split(),
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={jars / 'log4j2.properties'}",
        "-cp",
        f"{jars / 'libs'}/*",
        *args,
    ]


def random_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: a UUID, base64url without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def write_private(path: Path, text: str) -> Path:
    """A file only its owner can read (0600 from creation: never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def properties_text(properties: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in properties.items())


class KafkaNode:
    """One Kafka process started here (not by kafka.sh): its own process group, stopped by
    that group, SIGTERM then SIGKILL (a lone broker without quorum ignores SIGTERM).

    `prefix`: a command the broker runs under, e.g. `unshare` into private namespaces.
    `version`: the Kafka release (default: scripts/kafka.sh's)."""

    def __init__(
        self,
        state_dir: Path,
        properties: dict[str, str],
        prefix: Sequence[str] = (),
        version: str | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.properties = properties
        self.prefix = list(prefix)
        self.version = version
        self.log_path = state_dir / "kafka.log"
        self.config_path = state_dir / "server.properties"
        self.process: subprocess.Popen | None = None
        state_dir.mkdir(parents=True, exist_ok=True)

    def format(self, cluster_id: str, extra_args: Sequence[str] = ()) -> None:
        """`kafka-storage format`. Its arguments go through a 0600 java @argfile, deleted
        afterwards, so that SCRAM passwords (`--add-scram`) never reach argv (`ps`)."""
        write_private(self.config_path, properties_text(self.properties))
        args = ["kafka.tools.StorageTool", "format", "--config", str(self.config_path)]
        args += ["--cluster-id", cluster_id, *extra_args]
        argfile = write_private(self.state_dir / "format.args", "\n".join(args) + "\n")
        try:
            java = kafka_java_command(f"@{argfile}", heap="-Xmx256m", version=self.version)
            with self.log_path.open("ab") as log:
                subprocess.run(
                    [*self.prefix, *java], stdout=log, stderr=log, check=True, timeout=120
                )
        finally:
            argfile.unlink(missing_ok=True)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.prefix,
                    *kafka_java_command("kafka.Kafka", str(self.config_path), version=self.version),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def wait_serving(self, serves: Callable[[], bool], timeout_s: float = 120.0) -> None:
        def serving() -> bool:
            if serves():
                return True
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"Kafka exited during start-up:\n{self.log_tail()}")
            return False

        wait_until(serving, timeout_s, 0.5, message="Kafka to serve", detail=self.log_tail)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the group, wait up to `timeout_s`, then SIGKILL it."""
        if self.process is None:
            return
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait_s)  # reaps the leader: no zombie left behind
            except subprocess.TimeoutExpired:
                continue
            break
        wait_until(
            lambda: not group_alive(self.process.pid), 10, 0.1, message="the broker's group to exit"
        )
        self.process = None


def admin_serves(**client_config: Any) -> Callable[[], bool]:
    """A readiness probe: an admin client bootstraps and lists topics."""

    def probe() -> bool:
        try:
            admin = KafkaAdminClient(
                request_timeout_ms=3000, bootstrap_timeout_ms=3000, **client_config
            )
        except Exception:
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            admin.close()

    return probe


# -- the secured broker --------------------------------------------------------------------


def make_test_certificates(folder: Path) -> tuple[Path, Path]:
    """A throwaway CA and a broker certificate for 127.0.0.1/localhost, by openssl.
    Returns (CA certificate, broker PEM keystore: unencrypted PKCS#8 key + chain, 0600)."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(args: str) -> None:
        subprocess.run(["openssl", *args.split()], cwd=folder, check=True, capture_output=True)

    openssl("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=fin-assets-test-ca"
            " -keyout ca.key -out ca.crt")  # fmt: skip
    openssl("req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout broker.key -out broker.csr")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2"
            " -extfile san.cnf -out broker.crt")  # fmt: skip
    openssl("pkcs8 -topk8 -nocrypt -in broker.key -out broker.pk8")
    keystore = write_private(
        folder / "broker.pem",
        (folder / "broker.pk8").read_text() + (folder / "broker.crt").read_text(),
    )
    for secret in ("ca.key", "broker.key", "broker.pk8"):
        (folder / secret).unlink()
    return folder / "ca.crt", keystore


@dataclass(frozen=True)
class SecuredKafka:
    """A broker with a SASL_SSL (SCRAM-SHA-512) and an SSL listener, and one SCRAM user."""

    sasl_ssl_bootstrap: str
    ssl_bootstrap: str
    cafile: str
    username: str
    password: str
    broker_pid: int
    state_dir: Path

    def sasl_client_config(self, password: str | None = None) -> dict[str, Any]:
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password if password is None else password,
            "ssl_cafile": self.cafile,
        }

    def ssl_client_config(self) -> dict[str, Any]:
        return {"security_protocol": "SSL", "ssl_cafile": self.cafile}


def secured_broker_properties(first_port: int, state_dir: Path, ca: Path, keystore: Path):
    sasl_port, ssl_port, controller_port = first_port, first_port + 1, first_port + 2
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"SASL_SSL://127.0.0.1:{sasl_port},SSL://127.0.0.1:{ssl_port},"
        f"CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{sasl_port},SSL://127.0.0.1:{ssl_port}",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        # PEM stores: no keystore password to keep anywhere; the key file itself is 0600.
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca),
        "log.dirs": str(state_dir / "data"),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }


@pytest.fixture(scope="session")
def secured_kafka() -> Iterator[SecuredKafka]:
    """A throwaway secured broker for the session; its SCRAM user's password is random and
    only ever passed through files (0600) and environment variables."""
    _needs_java_and_maven()
    state_dir = Path(tempfile.mkdtemp(prefix="fin-kafka-secured-"))
    ca, keystore = make_test_certificates(state_dir / "tls")
    first_port = free_port_run(3)
    node = KafkaNode(
        state_dir / "broker", secured_broker_properties(first_port, state_dir, ca, keystore)
    )
    username, password = "fin_simulator", secrets.token_urlsafe(18)
    scram = f"SCRAM-SHA-512=[name={username},password={password}]"
    try:
        node.format(random_cluster_id(), ["--add-scram", scram])
        node.start()
        secured = SecuredKafka(
            sasl_ssl_bootstrap=f"127.0.0.1:{first_port}",
            ssl_bootstrap=f"127.0.0.1:{first_port + 1}",
            cafile=str(ca),
            username=username,
            password=password,
            broker_pid=node.pid,
            state_dir=state_dir,
        )
        node.wait_serving(
            admin_serves(bootstrap_servers=secured.ssl_bootstrap, **secured.ssl_client_config())
        )
        yield secured
    finally:
        try:
            node.stop()
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)


# -- the 3-node cluster (scripts/kafka.sh cluster-start) -----------------------------------


class LocalCluster:
    """KAFKA_NODES combined broker+controller nodes run by scripts/kafka.sh on loopback."""

    def __init__(self, run_dir: Path, nodes: int = 3) -> None:
        self.run_dir = run_dir
        self.nodes = nodes
        self.port = free_port_run(2 * nodes)
        self.ports = {n: self.port + 2 * (n - 1) for n in range(1, nodes + 1)}
        self.bootstrap_servers = ",".join(f"127.0.0.1:{p}" for p in self.ports.values())

    def _script(self, *args: str) -> None:
        env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_NODES": str(self.nodes),
            "FIN_RUN_DIR": str(self.run_dir),
            # Measured: ~30 s on an idle machine, ~80 s at load 20 on 2 cores.
            "KAFKA_START_TIMEOUT": os.environ.get("KAFKA_START_TIMEOUT", "240"),
        }
        subprocess.run([str(KAFKA_SCRIPT), *args], env=env, check=True, timeout=400)

    def start(self) -> None:
        self._script("cluster-start")

    def stop(self) -> None:
        self._script("cluster-stop")

    def start_node(self, node: int) -> None:
        self._script("node-start", str(node))

    def node_pid(self, node: int) -> int:
        pid_file = self.run_dir / f"kafka-cluster-{self.port}" / f"node-{node}" / "kafka.pid"
        return int(pid_file.read_text())

    def kill_node(self, node: int) -> None:
        """SIGKILL the node's process group (no shutdown at all) and wait until it is gone."""
        pgid = self.node_pid(node)
        os.killpg(pgid, signal.SIGKILL)
        wait_until(lambda: not group_alive(pgid), 30, 0.1, message=f"node {node} to die")

    def node_of_port(self, port: int) -> int:
        return next(n for n, p in self.ports.items() if p == port)


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[LocalCluster]:
    """One 3-node cluster for the session (about 30 s to start, about 400 MB per node)."""
    _needs_java_and_maven()
    run_dir = Path(tempfile.mkdtemp(prefix="fin-kafka-cluster-"))
    cluster = LocalCluster(run_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
