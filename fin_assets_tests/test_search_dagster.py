"""Dagster side of the search flow without Elasticsearch: lineage, resource, reconciliation."""

from __future__ import annotations

import dagster as dg
import pytest

from fin_assets import config
from fin_assets.definitions import defs as top_defs
from fin_assets.resources.elasticsearch import (
    ElasticsearchClient,
    ElasticsearchResource,
    ElasticsearchUnavailable,
    SymbolSummary,
    elasticsearch_from_env,
    split_credentials,
)
from fin_assets.search.definitions import defs as search_defs
from fin_assets.search.observation import IndexState, parse_cursor
from fin_assets.search.reconcile import compare, differences_markdown

SECRET = "s3cr3t-Pa55"


@pytest.fixture(scope="module")
def merged() -> dg.Definitions:
    return dg.Definitions.merge(top_defs, search_defs)


def test_definitions_load_and_lineage(merged):
    dg.Definitions.validate_loadable(merged)
    graph = merged.resolve_asset_graph()

    def parents(key: str) -> set[str]:
        return {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys}

    assert parents(config.BATCH_INDEX) == {"datos_financieros_csv"}
    assert parents(config.TRANSACTIONS_INDEX) == {config.DEFAULT_KAFKA_TOPIC}
    assert parents("datos_financieros_csv") == {"daily_prices"}
    assert parents("daily_prices") == {"alpha_vantage_daily_raw"}
    assert parents("alpha_vantage_daily_raw") == {"alpha_vantage_api"}
    for index in (config.BATCH_INDEX, config.TRANSACTIONS_INDEX):
        node = graph.get(dg.AssetKey(index))
        assert node.group_name == "search"
        assert "elasticsearch" in node.kinds
        assert "materialised by Logstash" in node.description
        assert not node.is_materializable
    check_keys = {k.name for k in graph.asset_check_keys}
    assert "finanzas_batch_matches_csv" in check_keys
    sensors = {sensor.name: sensor for sensor in merged.sensors}
    assert sensors["elasticsearch_observation_sensor"].minimum_interval_seconds == 60


def test_split_credentials_strips_user_info():
    assert split_credentials("https://u:p@es.local:9200/") == ("https://es.local:9200", ("u", "p"))
    assert split_credentials("http://127.0.0.1:9200") == ("http://127.0.0.1:9200", None)


def test_credentials_never_in_errors_or_repr(closed_port_url):
    url = closed_port_url.replace("http://", f"http://elastic:{SECRET}@")
    client = ElasticsearchClient(url, timeout=1)
    assert SECRET not in repr(client)
    with pytest.raises(ElasticsearchUnavailable) as caught:
        client.count(config.BATCH_INDEX)
    assert SECRET not in str(caught.value) and "unreachable" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_resource_from_env_uses_env_vars(monkeypatch):
    monkeypatch.setenv("ELASTICSEARCH_URL", "https://es:9200")
    monkeypatch.setenv("ELASTICSEARCH_USER", "dagster_reader")
    monkeypatch.setenv("ELASTICSEARCH_PASSWORD", SECRET)
    monkeypatch.delenv("ELASTICSEARCH_CA", raising=False)
    resource = elasticsearch_from_env()
    # EnvVar, not the value: the UI shows the variable name.
    assert (
        isinstance(resource.password, dg.EnvVar) and resource.password == "ELASTICSEARCH_PASSWORD"
    )
    monkeypatch.delenv("ELASTICSEARCH_URL")
    monkeypatch.delenv("ELASTICSEARCH_USER")
    monkeypatch.delenv("ELASTICSEARCH_PASSWORD")
    default = elasticsearch_from_env()
    assert default.url == config.DEFAULT_ELASTICSEARCH_URL and default.username is None


def test_index_state_metadata_is_plain():
    state = IndexState(config.BATCH_INDEX, 3, "2026-10-05")
    assert state.metadata() == {
        "index": "finanzas_batch",
        "doc_count": 3,
        "latest_date": "2026-10-05",
    }
    assert all(type(v) in (int, str) for v in state.metadata().values())
    assert parse_cursor("not json") == {} and parse_cursor(None) == {}


def test_compare_names_each_kind_of_difference():
    csv_side = {
        "TSLA": SymbolSummary(3, "2026-10-05", 222.3),
        "IBM": SymbolSummary(3, "2026-10-05", 150.0),
        "AAPL": SymbolSummary(1, "2026-10-05", 1.0),
    }
    index_side = {
        "TSLA": SymbolSummary(3, "2026-10-05", 222.3),
        "IBM": SymbolSummary(2, "2026-10-02", 149.5),
        "MSFT": SymbolSummary(1, "2026-10-05", 1.0),
    }
    differences = {d.symbol: d.problem for d in compare(csv_side, index_side)}
    assert differences == {
        "AAPL": "in the CSV but not indexed",
        "IBM": "different day count, last date, last close",
        "MSFT": "indexed but not in the CSV",
    }
    table = differences_markdown(compare(csv_side, index_side))
    assert "| IBM | different day count" in table and "149.5" in table


def test_resource_is_configurable_with_env_var_password():
    resource = ElasticsearchResource(url="http://x:9200", username="u", password=SECRET)
    assert resource.display_url == "http://x:9200"
