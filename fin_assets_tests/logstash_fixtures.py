"""A real Logstash (scripts/logstash.sh) running the project's pipelines against the session's
real Kafka broker and the real secured Elasticsearch (TLS, file-realm users and the roles
docker/setup/setup.sh defines). No skip: without a Logstash the fixture fails, naming why."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from fin_assets.lib import config
from fin_assets_tests.elasticsearch_fixtures import TEMPLATES_DIR, SecuredElasticsearch, free_port
from fin_assets_tests.helpers.polling import wait_until

REPO = Path(__file__).resolve().parent.parent
LOGSTASH_SCRIPT = REPO / "scripts" / "logstash.sh"
INDICES = (config.BATCH_INDEX, config.TRANSACTIONS_INDEX)


@dataclass
class Elasticsearch:
    """The secured node as its `elastic` superuser sees it, for the tests' own reads."""

    node: SecuredElasticsearch
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session.auth = ("elastic", self.node.passwords["elastic"])

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        # verify per request: REQUESTS_CA_BUNDLE in the environment beats a session's verify.
        url = f"{self.node.url}/{path}"
        return self.session.request(method, url, timeout=30, verify=str(self.node.ca), **kwargs)

    def refresh(self, index: str) -> None:
        self.call("POST", f"{index}/_refresh")

    def documents(self, index: str) -> dict[str, dict]:
        """Every document of the index, by _id: {"_source", "_version"}."""
        self.refresh(index)
        answer = self.call(
            "GET", f"{index}/_search", json={"size": 10000, "version": True, "sort": ["_doc"]}
        )
        if answer.status_code == 404:
            return {}
        answer.raise_for_status()
        hits = answer.json()["hits"]["hits"]
        return {h["_id"]: {"_source": h["_source"], "_version": h["_version"]} for h in hits}

    def count(self, index: str) -> int:
        self.refresh(index)
        answer = self.call("GET", f"{index}/_count")
        return answer.json()["count"] if answer.status_code == 200 else 0

    def index_operations(self, index: str) -> int:
        """Documents written to the index so far (an upsert that changed nothing is not one)."""
        answer = self.call("GET", f"{index}/_stats/indexing")
        if answer.status_code == 404:
            return 0
        return answer.json()["_all"]["primaries"]["indexing"]["index_total"]

    def write_counters(self, index: str) -> tuple[int, int, int]:
        """(index operations, no-op updates, documents) so far."""
        answer = self.call("GET", f"{index}/_stats/indexing,docs")
        if answer.status_code == 404:
            return (0, 0, 0)
        primaries = answer.json()["_all"]["primaries"]
        indexing = primaries["indexing"]
        return indexing["index_total"], indexing["noop_update_total"], primaries["docs"]["count"]

    def reset_indices(self) -> None:
        """What docker/setup/setup.sh does: the project's templates, then empty indices."""
        for path in sorted(TEMPLATES_DIR.glob("*.json")):
            answer = self.call(
                "PUT", f"_index_template/{path.stem}", json=json.loads(path.read_text())
            )
            answer.raise_for_status()
        for index in INDICES:
            self.call("DELETE", index)

    def node_group(self) -> int:
        assert self.node.state_dir is not None
        return int((self.node.state_dir / "pid").read_text())


@dataclass
class LocalLogstash:
    """scripts/logstash.sh with its own API port, state folder, data folder, topic and group."""

    env: dict[str, str]
    state_dir: Path
    data_dir: Path
    topic: str
    api_port: int

    def _script(self, action: str, timeout: float = 300) -> None:
        subprocess.run([str(LOGSTASH_SCRIPT), action], env=self.env, check=True, timeout=timeout)

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def api(self, path: str) -> dict:
        answer = requests.get(f"http://127.0.0.1:{self.api_port}{path}", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def wait_idle(self, es: Elasticsearch, settle_s: float = 5.0, timeout_s: float = 120.0):
        """Until nothing changes for settle_s: both indices' write counters (index, no-op update)
        and document counts, and the rejected file. Seen from the outside, not through the
        monitoring API, which Logstash 8.15.0 sometimes leaves broken (docs/search-stack.md)."""
        seen: dict[str, Any] = {"last": None, "since": time.monotonic()}

        def settled() -> bool:
            now = (*(es.write_counters(index) for index in INDICES), len(self.rejected()))
            if now != seen["last"]:
                seen.update(last=now, since=time.monotonic())
                return False
            return time.monotonic() - seen["since"] >= settle_s

        wait_until(
            settled,
            timeout_s,
            0.5,
            message="Logstash to become idle",
            detail=lambda: f"last counters: {seen['last']}",
        )

    def rejected(self) -> list[dict]:
        """Every record of rejected/rejected-<day>.jsonl, in file order."""
        folder = self.state_dir / "data" / "rejected"
        records = []
        for path in sorted(folder.glob("rejected-*.jsonl")) if folder.exists() else []:
            records += [json.loads(line) for line in path.read_text().splitlines() if line]
        return records


def logstash_env(
    node: SecuredElasticsearch, bootstrap: str, run_dir: Path, data_dir: Path, topic: str, port: int
) -> dict[str, str]:
    """The variables docker/docker-compose.yml gives the logstash service, with local values."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KAFKA_", "ELASTICSEARCH_", "LOGSTASH_", "FIN_"))
    }
    env.update(
        {
            "FIN_RUN_DIR": str(run_dir),
            "FIN_CACHE_DIR": os.environ.get(
                "FIN_CACHE_DIR", str(Path.home() / ".cache" / "fin_assets")
            ),
            "LOGSTASH_API_PORT": str(port),
            "ELASTICSEARCH_HOSTS": node.front_url,
            "ELASTICSEARCH_USER": "logstash_writer",
            "ELASTICSEARCH_PASSWORD": node.passwords["logstash_writer"],
            "ELASTICSEARCH_CA": str(node.ca),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            "FIN_KAFKA_TOPIC": topic,
            "LOGSTASH_KAFKA_GROUP_ID": f"logstash_test_{uuid.uuid4().hex[:8]}",
            "FIN_DATA_DIR": str(data_dir),
        }
    )
    for name in ("LOGSTASH_HOME", "LOGSTASH_START_TIMEOUT"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


@pytest.fixture(scope="module")
def logstash_stack(
    secured_elasticsearch: SecuredElasticsearch, kafka_bootstrap_servers: str
) -> Iterator[tuple[LocalLogstash, Elasticsearch]]:
    """One Logstash for the module, on empty indices and a topic of its own; stopped after."""
    es = Elasticsearch(secured_elasticsearch)
    es.reset_indices()
    run_dir = Path(tempfile.mkdtemp(prefix="fin-logstash-"))
    data_dir = run_dir / "fin_data"
    data_dir.mkdir()
    topic = f"test_transacciones_{secrets.token_hex(6)}"
    create_topic(kafka_bootstrap_servers, topic)
    port = free_port()
    env = logstash_env(
        secured_elasticsearch, kafka_bootstrap_servers, run_dir, data_dir, topic, port
    )
    logstash = LocalLogstash(env, run_dir / f"logstash-{port}", data_dir, topic, port)
    try:
        logstash.start()
        yield logstash, es
    finally:
        # Whatever a test did to the node, it runs again for the next module.
        os.killpg(es.node_group(), signal.SIGCONT)
        logstash.stop()
        if os.environ.get("KEEP_LS") != "1":
            shutil.rmtree(run_dir, ignore_errors=True)
