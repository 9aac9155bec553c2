"""Issue 12, Elasticsearch part: a real 3-node cluster on loopback loses its elected master
(SIGKILL of the node's process group); it stays writable, and the observation sensor and the
reconciliation check keep working through a client given all three node URLs, the dead one
first."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from fin_assets.defs.resources.elasticsearch import ElasticsearchResource
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.defs.search.checks import finanzas_batch_matches_csv
from fin_assets.defs.search.sensors import elasticsearch_observation_sensor
from fin_assets.lib import config
from fin_assets.lib.search.elasticsearch import ElasticsearchClient, ElasticsearchError
from fin_assets_tests.fixtures.elasticsearch import ElasticsearchCluster, install_templates
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.helpers.processes import wait_group_gone
from fin_assets_tests.helpers.search_data import index_like_logstash, price_frame, write_csv

pytestmark = [pytest.mark.elasticsearch, pytest.mark.cluster]


def wait_for(what: str, attempt, timeout: float = 180.0, interval: float = 0.5):
    """attempt() until it returns a truthy value without raising ElasticsearchError."""
    return wait_until(attempt, timeout, interval, message=what, ignore=ElasticsearchError)


def elected_master_port(client: ElasticsearchClient) -> int:
    (master,) = client.request("GET", "_cat/master", params={"format": "json"}).json()
    return int(master["node"].removeprefix("node-"))  # scripts/elasticsearch.sh names nodes


def kill_node(cluster: ElasticsearchCluster, port: int) -> None:
    """SIGKILL the node's whole process group (launcher and server JVM), then wait for it."""
    leader = int(cluster.pid_file(port).read_text())
    os.killpg(leader, signal.SIGKILL)
    left = wait_group_gone(leader, 30)
    assert not left, f"process group {leader} still alive after SIGKILL: {left}"


def one_more_day(frame: pd.DataFrame) -> pd.DataFrame:
    day = pd.Timestamp(dt.date(2026, 10, 5))
    row = pd.DataFrame(
        [(day, "TSLA", 224.0, 226.0, 222.0, 225.5, 2000)], columns=list(config.CSV_COLUMNS)
    )
    return pd.concat([frame, row], ignore_index=True)


def test_cluster_survives_losing_its_elected_master(
    elasticsearch_cluster: ElasticsearchCluster, tmp_path: Path
):
    urls = elasticsearch_cluster.urls
    client = ElasticsearchClient(urls, timeout=15)
    install_templates(client)
    for index in (config.BATCH_INDEX, config.TRANSACTIONS_INDEX):
        client.delete_index(index)
    index_like_logstash(client, write_csv(tmp_path, price_frame()))
    # The templates keep one copy (single node); a cluster needs a replica to lose a node.
    client.request("PUT", f"{config.BATCH_INDEX}/_settings", {"index": {"number_of_replicas": 1}})
    client.request("GET", "_cluster/health", params={"wait_for_status": "green", "timeout": "120s"})
    assert client.health() == "green"

    master = elected_master_port(client)
    kill_node(elasticsearch_cluster, master)
    killed_at = time.monotonic()

    # Still writable: a new day is indexed after the kill, through any node that answers.
    frame = one_more_day(price_frame())
    csv_path = write_csv(tmp_path, frame)
    wait_for("a write after the kill", lambda: index_like_logstash(client, csv_path) == 7)
    print(f"first write after the master's SIGKILL: {time.monotonic() - killed_at:.1f} s")
    survivors = wait_for("a new elected master", lambda: elected_master_port(client))
    assert survivors != master
    client.close()

    # The Dagster side, given every node with the dead one first.
    dead_first = [u for u in urls if u.endswith(f":{master}")] + [
        u for u in urls if not u.endswith(f":{master}")
    ]
    resource = ElasticsearchResource(url=",".join(dead_first), timeout_seconds=15)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"elasticsearch": resource})
        result = elasticsearch_observation_sensor(context)
    assert isinstance(result, dg.SensorResult), getattr(result, "skip_message", result)
    observed = {e.asset_key.to_user_string(): e.metadata for e in result.asset_events}
    assert observed[config.BATCH_INDEX]["doc_count"].value == 7
    assert observed[config.BATCH_INDEX]["latest_date"].value == "2026-10-05"

    check = finanzas_batch_matches_csv(
        settings=PipelineSettings(data_dir=str(tmp_path), symbols="TSLA,IBM"),
        elasticsearch=resource,
    )
    assert check.passed, check.description
