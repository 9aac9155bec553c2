"""Elasticsearch for the tests: the session's node (scripts/test.sh) or one started here."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fin_assets import config
from fin_assets.resources.elasticsearch import ElasticsearchClient, ElasticsearchUnavailable

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "elasticsearch.sh"
TEMPLATES_DIR = REPO / "logstash" / "templates"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout: float = 60.0) -> None:
    client = ElasticsearchClient(url, timeout=2.0)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.health() in ("yellow", "green"):
                return
        except ElasticsearchUnavailable:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


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
        pytest.skip("Elasticsearch needs java and mvn (or run through scripts/test.sh)")
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
