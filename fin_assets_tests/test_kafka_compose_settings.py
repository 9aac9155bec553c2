"""The compose file's Kafka settings, run for real (issue 9).

No Docker engine here, so the `kafka` service of docker/docker-compose.yml is reproduced the way
the apache/kafka image would run it: its `KAFKA_*` environment becomes server.properties by the
image's rule (core/src/main/scala/kafka/docker/KafkaDockerWrapper.scala: strip `KAFKA_`,
lower-case, `_` -> `.`, `___` -> `-`, `__` -> `_`; a fixed list of JVM/log4j variables is not a
property; with any property given, the image's default server.properties is not used),
storage is formatted with `CLUSTER_ID` (docker/jvm/launch), and the broker of the image's
Kafka version (the compose image tag) starts. It runs inside private mount and network
namespaces (`unshare -m -n`): there the container ports are free, `/etc/hosts` maps the
service name `kafka` to loopback, and `/var/lib` is a temporary folder, so the settings run
unchanged, host names, ports and paths included. Then the simulator (with the Dagster
services' KAFKA_BOOTSTRAP_SERVERS), a consumer group (Logstash's group id and bootstrap) and a
host-side client (the published port) use it.

The compose file is the single source of truth: every value is read from it (and from
docker/.env.example for `${...}` variables), none is restated here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fin_assets_tests.fixtures.kafka import KafkaNode, _needs_java_and_maven, kafka_jars_dir
from fin_assets_tests.helpers.paths import CACHE_DIR, REPO

pytestmark = pytest.mark.kafka

COMPOSE_FILE = REPO / "docker" / "docker-compose.yml"
ENV_EXAMPLE = REPO / "docker" / ".env.example"

# KafkaDockerWrapper.ExcludeServerPropsEnv: KAFKA_* variables that are not broker properties
# (sic "KAFKA_HEAP_OPT": the image's list has that spelling).
IMAGE_NON_PROPERTY_ENV = frozenset(
    {
        "KAFKA_VERSION",
        "KAFKA_HEAP_OPT",
        "KAFKA_LOG4J_OPTS",
        "KAFKA_OPTS",
        "KAFKA_JMX_OPTS",
        "KAFKA_JVM_PERFORMANCE_OPTS",
        "KAFKA_GC_LOG_OPTS",
        "KAFKA_LOG4J_ROOT_LOGLEVEL",
        "KAFKA_LOG4J_LOGGERS",
        "KAFKA_TOOLS_LOG4J_LOGLEVEL",
        "KAFKA_JMX_HOSTNAME",
    }
)
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:-|:\?|-|\?)(?P<arg>[^}]*))?\}")


# -- reading the compose file --------------------------------------------------------------


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def interpolate(value: object, variables: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and `$$`, for one value."""

    def substitute(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if variables.get(name):
            return variables[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise AssertionError(f"{COMPOSE_FILE}: {name} is required ({arg})")
        return ""

    return _VARIABLE.sub(substitute, str(value)).replace("$$", "$")


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def service_environment(service: str) -> dict[str, str]:
    variables = env_example()
    environment = compose_services()[service]["environment"]
    if isinstance(environment, list):  # the `- KEY=value` form
        environment = dict(item.split("=", 1) for item in environment)
    return {key: interpolate(value, variables) for key, value in environment.items()}


def image_version(service: str) -> str:
    image = interpolate(compose_services()[service]["image"], env_example())
    return image.rsplit(":", 1)[1]


def published_addresses(service: str) -> list[str]:
    """`host_ip:port` of `ports:` entries such as "127.0.0.1:29092:29092" (host port =
    container port: the namespace maps them one to one)."""
    addresses = []
    for entry in compose_services()[service].get("ports", []):
        host_ip, host_port, container_port = str(entry).split(":")
        assert host_port == container_port, f"{entry}: the test maps ports one to one"
        addresses.append(f"{host_ip}:{host_port}")
    return addresses


# -- the image's rule ----------------------------------------------------------------------


def property_name(variable: str) -> str:
    """KafkaDockerWrapper.getServerConfigsFromEnv, for one variable."""
    name = variable.replace("KAFKA_", "").lower().replace("_", ".")
    return name.replace("...", "-").replace("..", "_")


def server_properties_from_env(environment: dict[str, str]) -> dict[str, str]:
    return {
        property_name(key): value
        for key, value in environment.items()
        if key.startswith("KAFKA_") and key not in IMAGE_NON_PROPERTY_ENV
    }


def test_property_names_follow_the_image_rule():
    assert property_name("KAFKA_ADVERTISED_LISTENERS") == "advertised.listeners"
    assert property_name("KAFKA_LISTENER_NAME_HOST_SSL__CLIENT__AUTH") == (
        "listener.name.host.ssl_client_auth"
    )
    assert property_name("KAFKA_LISTENER_NAME_SASL___SSL") == "listener.name.sasl-ssl"
    props = server_properties_from_env({"KAFKA_OPTS": "-Dx", "CLUSTER_ID": "c", "KAFKA_A_B": "1"})
    assert props == {"a.b": "1"}


def test_compose_kafka_service_is_a_single_kraft_node_with_its_own_cluster_id():
    environment = service_environment("kafka")
    properties = server_properties_from_env(environment)
    assert environment["CLUSTER_ID"], "the image formats storage with CLUSTER_ID"
    assert properties["process.roles"] == "broker,controller"
    (voter,) = properties["controller.quorum.voters"].split(",")
    assert voter.startswith(f"{properties['node.id']}@")


# -- running it ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ComposeKafka:
    node: KafkaNode
    properties: dict[str, str]

    def run_inside(self, *command: str, env: dict[str, str] | None = None, timeout: float = 180):
        """A command inside the broker's namespaces (where `kafka` resolves and the container
        ports are the broker's)."""
        return subprocess.run(
            ["nsenter", "-t", str(self.node.pid), "-m", "-n", "--", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def namespace_prefix(hosts_file: Path, var_lib: Path, opt: Path) -> list[str]:
    """Run under new mount and network namespaces: loopback up, the container's host names
    in /etc/hosts, /var/lib a temporary folder (for the image's /var/lib/kafka/data), /opt
    one with the image's /opt/kafka/bin scripts the healthcheck calls."""
    setup = (
        "set -e; ip link set lo up;"
        f" mount --bind {shlex.quote(str(hosts_file))} /etc/hosts;"
        f" mount --bind {shlex.quote(str(var_lib))} /var/lib;"
        f" mount --bind {shlex.quote(str(opt))} /opt;"
        ' exec "$@"'
    )
    return ["unshare", "--mount", "--net", "--", "sh", "-c", setup, "sh"]


def host_names_in(properties: dict[str, str]) -> set[str]:
    names = set()
    for key in ("listeners", "advertised.listeners", "controller.quorum.voters"):
        for endpoint in properties.get(key, "").split(","):
            host = endpoint.rsplit(":", 1)[0].split("//")[-1].split("@")[-1]
            if host:
                names.add(host)
    return names


def kafka_tools_jar(version: str) -> Path:
    """org.apache.kafka:kafka-tools (the image's command-line tools live there since 4.0),
    from Maven Central into the same cache as scripts/kafka.sh's jars."""
    cache = CACHE_DIR
    repo = cache / "m2"
    jar = repo / "org/apache/kafka/kafka-tools" / version / f"kafka-tools-{version}.jar"
    if not jar.exists():
        subprocess.run(
            ["mvn", "-q", "-B", f"-Dmaven.repo.local={repo}", "dependency:get",
             f"-Dartifact=org.apache.kafka:kafka-tools:{version}", "-Dtransitive=false"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return jar


def write_image_scripts(opt: Path, version: str) -> None:
    """/opt/kafka/bin/kafka-broker-api-versions.sh as the image has it: kafka-run-class.sh
    running org.apache.kafka.tools.BrokerApiVersionsCommand on the Kafka classpath."""
    bin_dir = opt / "kafka" / "bin"
    bin_dir.mkdir(parents=True)
    classpath = f"{kafka_jars_dir(version) / 'libs'}/*:{kafka_tools_jar(version)}"
    script = bin_dir / "kafka-broker-api-versions.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"exec java -Xmx128m -cp {shlex.quote(classpath)}"
        ' org.apache.kafka.tools.BrokerApiVersionsCommand "$@"\n'
    )
    script.chmod(0o755)


PROBE = """
import sys
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=3000,
                         bootstrap_timeout_ms=3000)
admin.list_topics()
admin.close()
"""


@pytest.fixture(scope="module")
def compose_kafka() -> Iterator[ComposeKafka]:
    _needs_java_and_maven()
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        pytest.fail("the compose settings run in private namespaces: needs root, unshare, nsenter")
    environment = service_environment("kafka")
    properties = server_properties_from_env(environment)
    state = Path(tempfile.mkdtemp(prefix="fin-kafka-compose-"))
    # As Docker writes a container's /etc/hosts: its own host name (listeners with an empty
    # host are resolved through it), plus the service name compose's DNS would resolve.
    names = host_names_in(properties) | {"kafka", socket.gethostname()}
    hosts = state / "hosts"
    hosts.write_text(
        "".join(f"127.0.0.1 {name}\n" for name in sorted(names))
        + "127.0.0.1 localhost\n::1 localhost\n"
    )
    var_lib = state / "var-lib"
    (var_lib / "kafka" / "data").mkdir(parents=True)  # the image's VOLUME, made by its Dockerfile
    write_image_scripts(state / "opt", image_version("kafka"))
    node = KafkaNode(
        state / "broker",
        properties,
        prefix=namespace_prefix(hosts, var_lib, state / "opt"),
        version=image_version("kafka"),
    )
    compose = ComposeKafka(node, properties)
    try:
        node.format(environment["CLUSTER_ID"])
        node.start()
        bootstrap = service_environment("dagster-daemon")["KAFKA_BOOTSTRAP_SERVERS"]

        def serves() -> bool:
            if node.process is None or node.process.poll() is not None:
                return False
            probe = compose.run_inside(sys.executable, "-c", PROBE, bootstrap, timeout=60)
            return probe.returncode == 0

        node.wait_serving(serves, timeout_s=180)
        yield compose
    finally:
        try:
            node.stop()
        finally:
            shutil.rmtree(state, ignore_errors=True)


CONSUMER_GROUP = """
import json, sys, time
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
bootstrap, topic, group, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                         auto_offset_reset="earliest", enable_auto_commit=False)
ids, deadline = [], time.monotonic() + 120
while len(ids) < expected and time.monotonic() < deadline:
    for batch in consumer.poll(timeout_ms=1000).values():
        ids.extend(json.loads(record.value)["event_id"] for record in batch)
consumer.commit()
consumer.close()
admin = KafkaAdminClient(bootstrap_servers=bootstrap)
offsets = admin.list_group_offsets(group)[group]
committed = {tp.partition: meta.offset for tp, meta in offsets.items()}
admin.close()
print(json.dumps({"ids": ids, "committed": sum(committed.values())}))
"""

HOST_CLIENT = """
import json, sys
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
brokers = sorted(f"{b['host']}:{b['port']}" for b in admin.describe_cluster()["brokers"])
admin.close()
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], group_id=None)
partitions = [TopicPartition(sys.argv[2], p) for p in consumer.partitions_for_topic(sys.argv[2])]
ends = consumer.end_offsets(partitions)
consumer.close()
print(json.dumps({"records": sum(ends.values()), "brokers": brokers}))
"""


def test_simulator_and_consumer_group_run_on_the_compose_settings(compose_kafka, tmp_path):
    dagster_env = service_environment("dagster-daemon")
    logstash_env = service_environment("logstash")
    topic = dagster_env["FIN_KAFKA_TOPIC"]
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "FIN_DATA_DIR": str(data_dir),
        "FIN_SYMBOLS": dagster_env["FIN_SYMBOLS"],
        "KAFKA_BOOTSTRAP_SERVERS": dagster_env["KAFKA_BOOTSTRAP_SERVERS"],
        "FIN_KAFKA_TOPIC": topic,
    }
    env.pop("KAFKA_SECURITY_PROTOCOL", None)
    simulate = compose_kafka.run_inside(
        sys.executable, "-m", "fin_assets.cli", "simulate", "--duration", "3", "--rate", "30",
        "--seed", "9", env=env,
    )  # fmt: skip
    assert simulate.returncode == 0, simulate.stdout + simulate.stderr
    logged = [
        line.split("event_id=")[1].split()[0]
        for line in (data_dir / "logs_transacciones.log").read_text().splitlines()
    ]
    assert len(logged) >= 60

    # What Logstash does: its group id and bootstrap, every event once, offsets committed.
    group = compose_kafka.run_inside(
        sys.executable, "-c", CONSUMER_GROUP, logstash_env["KAFKA_BOOTSTRAP_SERVERS"],
        logstash_env["FIN_KAFKA_TOPIC"], logstash_env["LOGSTASH_KAFKA_GROUP_ID"],
        str(len(logged)),
    )  # fmt: skip
    assert group.returncode == 0, group.stderr
    consumed = json.loads(group.stdout)
    assert sorted(consumed["ids"]) == sorted(logged)
    assert consumed["committed"] == len(logged)

    # A client on the host, through the published address: the broker must advertise that
    # same address, since Docker serves nothing else on the host (with "localhost" a client
    # may try [::1]:29092 first, where nothing listens).
    for address in published_addresses("kafka"):
        host = compose_kafka.run_inside(sys.executable, "-c", HOST_CLIENT, address, topic)
        assert host.returncode == 0, host.stderr
        seen = json.loads(host.stdout)
        assert seen["records"] == len(logged)
        assert seen["brokers"] == [address], "advertised HOST listener != published address"


def test_compose_healthcheck_passes_on_the_running_broker(compose_kafka):
    """The service's healthcheck command, verbatim, where the container would run it."""
    check = compose_services()["kafka"]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL", check
    result = compose_kafka.run_inside("sh", "-c", check[1], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
