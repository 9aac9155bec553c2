"""The observation sensor and the reconciliation check against a real Elasticsearch with security
and TLS on, as the docker stack runs it: the Dagster reader's credentials and the CA come from
the environment (ELASTICSEARCH_URL / _USER / _PASSWORD / _CA), the reader's and the writer's
privileges are the role bodies docker/setup/setup.sh sends (docker/setup/roles/*.json, loaded
into the file realm: the integration-test distribution cannot create the native realm's index).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest
import yaml

from fin_assets.defs.resources.elasticsearch import elasticsearch_from_env
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.defs.search.checks import finanzas_batch_matches_csv
from fin_assets.defs.search.sensors import elasticsearch_observation_sensor
from fin_assets.lib import config
from fin_assets.lib.search.elasticsearch import ElasticsearchAuthError, ElasticsearchClient
from fin_assets_tests.fixtures.elasticsearch import (
    SecuredElasticsearch,
    install_templates,
)
from fin_assets_tests.helpers import search_pipeline_mirror as mirror
from fin_assets_tests.helpers.paths import REPO
from fin_assets_tests.helpers.search_data import (
    SAMPLE_EVENTS,
    index_like_logstash,
    price_frame,
    write_csv,
)

pytestmark = pytest.mark.elasticsearch

WRONG_PASSWORD = "not-the-password-0"
COMPOSE_FILE = REPO / "docker" / "docker-compose.yml"


@pytest.fixture
def writer(secured_elasticsearch: SecuredElasticsearch) -> Iterator[ElasticsearchClient]:
    """Empty indices under the real templates (as elastic, as setup.sh does); then Logstash's
    user writes."""
    admin = secured_elasticsearch.client("elastic")
    install_templates(admin)
    for index in (config.BATCH_INDEX, config.TRANSACTIONS_INDEX):
        admin.delete_index(index)
    admin.close()
    client = secured_elasticsearch.client("logstash_writer")
    yield client
    client.close()


@pytest.fixture
def reader_env(secured_elasticsearch: SecuredElasticsearch, monkeypatch) -> None:
    """The docker stack's Dagster environment, pointing at the secured node."""
    monkeypatch.setenv("ELASTICSEARCH_URL", secured_elasticsearch.url)
    monkeypatch.setenv("ELASTICSEARCH_USER", "dagster_reader")
    monkeypatch.setenv("ELASTICSEARCH_PASSWORD", secured_elasticsearch.passwords["dagster_reader"])
    monkeypatch.setenv("ELASTICSEARCH_CA", str(secured_elasticsearch.ca))


def run_sensor(instance: dg.DagsterInstance):
    context = dg.build_sensor_context(
        instance=instance, resources={"elasticsearch": elasticsearch_from_env()}
    )
    return elasticsearch_observation_sensor(context)


def test_sensor_observes_with_the_reader_credentials_and_the_ca(
    writer: ElasticsearchClient, reader_env, tmp_path: Path
):
    index_like_logstash(writer, write_csv(tmp_path, price_frame()))
    writer.bulk_index(
        config.TRANSACTIONS_INDEX, [mirror.transaction_document(e) for e in SAMPLE_EVENTS]
    )
    with dg.instance_for_test() as instance:
        result = run_sensor(instance)
    assert isinstance(result, dg.SensorResult), getattr(result, "skip_message", result)
    observed = {e.asset_key.to_user_string(): e.metadata for e in result.asset_events}
    assert observed[config.BATCH_INDEX]["doc_count"].value == 6
    assert observed[config.TRANSACTIONS_INDEX]["doc_count"].value == len(SAMPLE_EVENTS)


def test_check_passes_with_the_reader_credentials(
    writer: ElasticsearchClient, reader_env, tmp_path: Path
):
    index_like_logstash(writer, write_csv(tmp_path, price_frame()))
    result = finanzas_batch_matches_csv(
        settings=PipelineSettings(data_dir=str(tmp_path), symbols="TSLA,IBM"),
        elasticsearch=elasticsearch_from_env(),
    )
    assert result.passed, result.description


def test_roles_grant_what_each_user_needs_and_no_more(
    writer: ElasticsearchClient, secured_elasticsearch: SecuredElasticsearch, tmp_path: Path
):
    index_like_logstash(writer, write_csv(tmp_path, price_frame()))
    reader = secured_elasticsearch.client("dagster_reader")
    try:
        assert reader.count(config.BATCH_INDEX) == 6
        with pytest.raises(ElasticsearchAuthError) as cannot_write:
            reader.bulk_index(config.BATCH_INDEX, [("x", {"simbolo": "X"})])
        assert cannot_write.value.status == 403 and "dagster_reader" in str(cannot_write.value)
        with pytest.raises(ElasticsearchAuthError) as other_index:
            reader.count("some_other_index")
        assert other_index.value.status == 403
    finally:
        reader.close()
    # Logstash writes but does not read.
    with pytest.raises(ElasticsearchAuthError) as cannot_read:
        writer.count(config.BATCH_INDEX)
    assert cannot_read.value.status == 403


def test_sensor_skips_naming_rejected_credentials(reader_env, monkeypatch):
    """Issue 11: a 401 (wrong password) made the sensor raise; now a skip that names it."""
    monkeypatch.setenv("ELASTICSEARCH_PASSWORD", WRONG_PASSWORD)
    with dg.instance_for_test() as instance:
        result = run_sensor(instance)
    assert isinstance(result, dg.SkipReason)
    message = result.skip_message
    assert "credentials rejected (HTTP 401)" in message and "dagster_reader" in message
    assert WRONG_PASSWORD not in message


def test_check_fails_naming_rejected_credentials(reader_env, monkeypatch, tmp_path: Path):
    write_csv(tmp_path, price_frame())
    monkeypatch.setenv("ELASTICSEARCH_PASSWORD", WRONG_PASSWORD)
    result = finanzas_batch_matches_csv(
        settings=PipelineSettings(data_dir=str(tmp_path), symbols="TSLA,IBM"),
        elasticsearch=elasticsearch_from_env(),
    )
    assert not result.passed and "401" in result.description
    assert WRONG_PASSWORD not in result.description


def test_sensor_skips_naming_tls_failure_without_the_ca(reader_env, monkeypatch):
    monkeypatch.delenv("ELASTICSEARCH_CA")
    with dg.instance_for_test() as instance:
        result = run_sensor(instance)
    assert isinstance(result, dg.SkipReason) and "SSLError" in result.skip_message


def test_the_ca_wins_over_a_ca_bundle_in_the_environment(
    secured_elasticsearch: SecuredElasticsearch, monkeypatch, tmp_path: Path
):
    """requests lets REQUESTS_CA_BUNDLE override a session's `verify`: with a bundle in the
    environment (as on this machine) the configured CA must still be the one used."""
    unrelated_ca = tmp_path / "unrelated-ca.pem"
    unrelated_ca.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(unrelated_ca))
    reader = secured_elasticsearch.client("dagster_reader")
    try:
        assert reader.health() in ("green", "yellow")
    finally:
        reader.close()


def test_compose_healthcheck_passes_on_the_secured_node(
    secured_elasticsearch: SecuredElasticsearch,
):
    """docker-compose.yml's elasticsearch healthcheck, run by sh in a folder laid out like the
    image's (config/certs/ca/ca.crt), against the secured node's port; the password travels
    in the environment and curl's config on stdin, not on curl's command line."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    kind, command = compose["services"]["elasticsearch"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL" and "-u " not in command
    port = urlsplit(secured_elasticsearch.url).port
    command = command.replace("$$", "$").replace("localhost:9200", f"localhost:{port}")
    home = secured_elasticsearch.ca.parents[3]  # <state>/config/certs/ca/ca.crt

    def healthcheck(password: str) -> int:
        env = {"PATH": os.environ["PATH"], "ELASTIC_PASSWORD": password}
        return subprocess.run(["sh", "-c", command], cwd=home, env=env, timeout=60).returncode

    assert healthcheck(secured_elasticsearch.passwords["elastic"]) == 0
    assert healthcheck(WRONG_PASSWORD) != 0
