"""Against a real Elasticsearch: the real templates, documents shaped like Logstash's, then the
observation sensor and the reconciliation check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from fin_assets.defs.resources.elasticsearch import ElasticsearchResource
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.defs.search.assets import SEARCH_ASSETS
from fin_assets.defs.search.checks import finanzas_batch_matches_csv
from fin_assets.defs.search.sensors import elasticsearch_observation_sensor
from fin_assets.lib import config
from fin_assets.lib.search.elasticsearch import ElasticsearchClient
from fin_assets_tests.helpers import search_pipeline_mirror as mirror
from fin_assets_tests.helpers.search_data import (
    SAMPLE_EVENTS,
    index_like_logstash,
    price_frame,
    simulator_events,
    write_csv,
)

pytestmark = pytest.mark.elasticsearch

DAYS = [dt.date(2026, 9, 30), dt.date(2026, 10, 1), dt.date(2026, 10, 2)]


def resources(url: str, data_dir: Path) -> dict:
    return {
        "elasticsearch": ElasticsearchResource(url=url),
        "settings": PipelineSettings(data_dir=str(data_dir), symbols="TSLA,IBM"),
    }


def run_sensor(instance: dg.DagsterInstance, url: str, cursor: str | None = None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"elasticsearch": ElasticsearchResource(url=url)},
    )
    return elasticsearch_observation_sensor(context), context


def test_templates_apply_explicit_mappings(es_client: ElasticsearchClient, tmp_path: Path):
    index_like_logstash(es_client, write_csv(tmp_path, price_frame()))
    mapping = es_client.request("GET", f"{config.BATCH_INDEX}/_mapping").json()
    properties = mapping[config.BATCH_INDEX]["mappings"]["properties"]
    assert properties["simbolo"]["type"] == "keyword"
    assert properties["cierre"]["type"] == "double"
    assert properties["volumen"]["type"] == "long"
    # Re-reading the rewritten CSV overwrites (same ids), it does not duplicate.
    index_like_logstash(es_client, write_csv(tmp_path, price_frame()))
    assert es_client.count(config.BATCH_INDEX) == 6


def test_sensor_observes_both_indices(es_client: ElasticsearchClient, tmp_path: Path):
    index_like_logstash(es_client, write_csv(tmp_path, price_frame()))
    es_client.bulk_index(
        config.TRANSACTIONS_INDEX, [mirror.transaction_document(e) for e in SAMPLE_EVENTS]
    )
    with dg.instance_for_test() as instance:
        result, _ = run_sensor(instance, es_client.url)
        assert isinstance(result, dg.SensorResult)
        observed = {e.asset_key.to_user_string(): e.metadata for e in result.asset_events}
        batch = observed[config.BATCH_INDEX]
        assert batch["doc_count"].value == 6
        assert batch["latest_date"].value == "2026-10-02"
        transactions = observed[config.TRANSACTIONS_INDEX]
        assert transactions["doc_count"].value == len(SAMPLE_EVENTS)
        assert transactions["latest_date"].value.startswith("2026-10-05T14:30:03.500")

        # Nothing changed: no new observation, a skip that says so.
        again, _ = run_sensor(instance, es_client.url, cursor=result.cursor)
        assert isinstance(again, dg.SkipReason) and "No change" in again.skip_message


def test_sensor_skips_while_indices_are_missing(es_client: ElasticsearchClient):
    with dg.instance_for_test() as instance:
        result, _ = run_sensor(instance, es_client.url)
    assert isinstance(result, dg.SkipReason)
    assert config.BATCH_INDEX in result.skip_message
    assert "does not exist" in result.skip_message


def test_sensor_skips_when_elasticsearch_is_unreachable(closed_port_url: str):
    with dg.instance_for_test() as instance:
        result, _ = run_sensor(instance, closed_port_url)
    assert isinstance(result, dg.SkipReason)
    assert "unreachable" in result.skip_message and closed_port_url in result.skip_message


def test_check_passes_when_index_matches_csv(es_client: ElasticsearchClient, tmp_path: Path):
    index_like_logstash(es_client, write_csv(tmp_path, price_frame()))
    result = finanzas_batch_matches_csv(**resources(es_client.url, tmp_path))
    assert result.passed, result.description
    assert result.metadata["indexed_documents"].value == 6


def test_check_fails_naming_the_symbol(es_client: ElasticsearchClient, tmp_path: Path):
    frame = price_frame()
    index_like_logstash(es_client, write_csv(tmp_path, frame))
    # The CSV moves on (new last close for TSLA) but the index has not caught up.
    frame.loc[(frame["simbolo"] == "TSLA") & (frame["fecha"] == "2026-10-02"), "cierre"] = 999.9
    write_csv(tmp_path, frame)
    result = finanzas_batch_matches_csv(**resources(es_client.url, tmp_path))
    assert not result.passed
    assert "TSLA (different last close)" in result.description and "IBM" not in result.description
    assert "999.9" in result.metadata["differences"].value


def test_check_fails_clearly_without_csv(es_client: ElasticsearchClient, tmp_path: Path):
    result = finanzas_batch_matches_csv(**resources(es_client.url, tmp_path))
    assert not result.passed and "not found" in result.description


def test_check_runs_in_a_dagster_job(es_client: ElasticsearchClient, tmp_path: Path):
    """Through Definitions, as the UI would run it: check on the external finanzas_batch."""
    index_like_logstash(es_client, write_csv(tmp_path, price_frame()))
    job = dg.define_asset_job(
        "reconcile", selection=dg.AssetSelection.checks_for_assets(config.BATCH_INDEX)
    )
    defs = dg.Definitions(
        assets=SEARCH_ASSETS,
        asset_checks=[finanzas_batch_matches_csv],
        jobs=[job],
        resources=resources(es_client.url, tmp_path),
    )
    result = defs.resolve_job_def("reconcile").execute_in_process()
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.check_name == "finanzas_batch_matches_csv"


def test_simulator_events_index_under_the_template(es_client: ElasticsearchClient):
    docs = [mirror.transaction_document(e) for e in simulator_events(200)]
    assert es_client.bulk_index(config.TRANSACTIONS_INDEX, docs) == 200
    mapping = es_client.request("GET", f"{config.TRANSACTIONS_INDEX}/_mapping").json()
    properties = mapping[config.TRANSACTIONS_INDEX]["mappings"]["properties"]
    assert properties["event_type"]["type"] == "keyword"
    assert properties["notional"]["type"] == "double"
    body = {"size": 0, "aggs": {"types": {"terms": {"field": "tags"}}}}
    result = es_client.request("POST", f"{config.TRANSACTIONS_INDEX}/_search", body).json()
    tags = {b["key"] for b in result["aggregations"]["types"]["buckets"]}
    assert tags == set(mirror.EVENT_TYPE_TAGS.values())
