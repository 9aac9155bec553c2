"""Elasticsearch for the tests: the session's node (scripts/test.sh) or one started here; a
secured node (TLS, users) and a 3-node cluster, each started once per session when used."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fin_assets.lib import config
from fin_assets.lib.search.elasticsearch import (
    ElasticsearchClient,
    ElasticsearchUnavailable,
)
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.prerequisites import missing

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "elasticsearch.sh"
TEMPLATES_DIR = REPO / "logstash" / "templates"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout: float = 60.0) -> None:
    client = ElasticsearchClient(url, timeout=2.0)
    wait_until(
        lambda: client.health() in ("yellow", "green"),
        timeout,
        0.5,
        message=f"Elasticsearch at {url} to be yellow or green",
        ignore=ElasticsearchUnavailable,
    )


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    """FIN_TEST_SERVICES=1: the node scripts/test.sh started at ELASTICSEARCH_URL. Otherwise a
    throwaway node on a free port, with its state in a temp folder, stopped at session end."""
    if os.environ.get("FIN_TEST_SERVICES") == "1":
        url = os.environ.get("ELASTICSEARCH_URL", config.DEFAULT_ELASTICSEARCH_URL)
        wait_ready(url)
        yield url
        return
    if not shutil.which("java") or not shutil.which("mvn"):
        missing("Elasticsearch needs java and mvn (or run through scripts/test.sh)")
    port = free_port()
    # World-searchable: as root the script runs the node as `nobody`, who must reach this folder.
    run_dir = Path(tempfile.mkdtemp(prefix="fin-es-test-"))
    run_dir.chmod(0o755)
    env = {**os.environ, "ES_PORT": str(port), "FIN_RUN_DIR": str(run_dir)}
    try:
        subprocess.run([str(SCRIPT), "start"], env=env, check=True, timeout=300)
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, check=False, timeout=60)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def es_client(elasticsearch_url: str) -> Iterator[ElasticsearchClient]:
    """A client on empty search indices with the real templates installed."""
    client = ElasticsearchClient(elasticsearch_url, timeout=10.0)
    install_templates(client)
    for index in (config.BATCH_INDEX, config.TRANSACTIONS_INDEX):
        client.delete_index(index)
    yield client
    client.close()


def install_templates(client: ElasticsearchClient) -> None:
    """What the docker setup service does: PUT each logstash/templates/<name>.json."""
    for path in sorted(TEMPLATES_DIR.glob("*.json")):
        client.put_index_template(path.stem, json.loads(path.read_text()))


@pytest.fixture
def closed_port_url() -> str:
    """A URL nothing listens on: the port was free a moment ago."""
    return f"http://127.0.0.1:{free_port()}"


# --- secured node and 3-node cluster (scripts/elasticsearch.sh ES_SECURITY=1 / ES_NODES=3) ---

ROLES_DIR = REPO / "docker" / "setup" / "roles"
# The users docker/setup/setup.sh creates, each with the role of the same name.
FILE_REALM_USERS = ("dagster_reader", "logstash_writer")


def _needs_java_and_mvn() -> None:
    if not shutil.which("java") or not shutil.which("mvn"):
        missing("Elasticsearch needs java and mvn (scripts/apt_deps.sh installs them)")


def _service_run_dir(prefix: str) -> Path:
    # World-searchable: as root the script runs the node as `nobody`, who must reach it.
    run_dir = Path(tempfile.mkdtemp(prefix=prefix))
    run_dir.chmod(0o755)
    return run_dir


@dataclass(frozen=True)
class SecuredElasticsearch:
    """A node with security and TLS on; `elastic` plus the file-realm users setup.sh creates."""

    url: str
    ca: Path
    passwords: dict[str, str]
    # The TLS front that answers `GET /` (scripts/elasticsearch_front.py), for Logstash.
    front_url: str = ""
    # The node's state folder (pid file: its process group).
    state_dir: Path | None = None

    def client(self, user: str, password: str | None = None) -> ElasticsearchClient:
        secret = self.passwords[user] if password is None else password
        return ElasticsearchClient(self.url, auth=(user, secret), verify=str(self.ca), timeout=10)


@pytest.fixture(scope="session")
def secured_elasticsearch() -> Iterator[SecuredElasticsearch]:
    """One secured node for the session, its own throwaway certificates and passwords."""
    _needs_java_and_mvn()
    port, front_port = free_port(), free_port()
    run_dir = _service_run_dir("fin-es-secured-")
    passwords = {name: secrets.token_urlsafe(18) for name in ("elastic", *FILE_REALM_USERS)}
    env = {
        **os.environ,
        "ES_PORT": str(port),
        "FIN_RUN_DIR": str(run_dir),
        "ES_SECURITY": "1",
        "ES_FRONT_PORT": str(front_port),
        "ELASTIC_PASSWORD": passwords["elastic"],  # by environment, never argv
        "ES_START_TIMEOUT": "300",  # 2 shared cores: measured up to 180 s under load
    }
    ca = run_dir / f"elasticsearch-{port}" / "config" / "certs" / "ca" / "ca.crt"
    try:
        subprocess.run([str(SCRIPT), "start"], env=env, check=True, timeout=300)
        for user in FILE_REALM_USERS:
            subprocess.run(
                [str(SCRIPT), "useradd", user, user],
                env=env,
                input=passwords[user] + "\n",
                text=True,
                check=True,
                timeout=120,
            )
        node = SecuredElasticsearch(
            f"https://127.0.0.1:{port}",
            ca,
            passwords,
            front_url=f"https://127.0.0.1:{front_port}",
            state_dir=run_dir / f"elasticsearch-{port}",
        )
        yield node  # useradd returned once the node authenticates each user
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, check=False, timeout=90)
        shutil.rmtree(run_dir, ignore_errors=True)


@dataclass(frozen=True)
class ElasticsearchCluster:
    """Three plain nodes on loopback; each node's process group leader PID is in its pid file."""

    http_ports: tuple[int, ...]
    run_dir: Path
    env: dict[str, str]

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.http_ports]

    def pid_file(self, port: int) -> Path:
        return self.run_dir / f"elasticsearch-{port}" / "pid"


@pytest.fixture(scope="session")
def elasticsearch_cluster() -> Iterator[ElasticsearchCluster]:
    """One 3-node cluster for the session (512m heap each), stopped by process group."""
    _needs_java_and_mvn()
    http_ports = tuple(free_port() for _ in range(3))
    transport_ports = tuple(free_port() for _ in range(3))
    run_dir = _service_run_dir("fin-es-cluster-")
    env = {
        **os.environ,
        "FIN_RUN_DIR": str(run_dir),
        "ES_HTTP_PORTS": ",".join(map(str, http_ports)),
        "ES_TRANSPORT_PORTS": ",".join(map(str, transport_ports)),
        "ES_START_TIMEOUT": "300",
    }
    env.pop("ES_SECURITY", None)
    try:
        subprocess.run([str(SCRIPT), "start"], env=env, check=True, timeout=360)
        yield ElasticsearchCluster(http_ports, run_dir, env)
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, check=False, timeout=120)
        shutil.rmtree(run_dir, ignore_errors=True)
