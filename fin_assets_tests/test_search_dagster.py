"""Dagster side of the search flow without Elasticsearch: lineage, resource, reconciliation."""

from __future__ import annotations

import dagster as dg
import pytest

from fin_assets.definitions import build_definitions
from fin_assets.defs.resources.elasticsearch import ElasticsearchResource, elasticsearch_from_env
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.defs.search.assets import SEARCH_ASSETS
from fin_assets.defs.search.checks import finanzas_batch_matches_csv
from fin_assets.defs.search.sensors import elasticsearch_observation_sensor
from fin_assets.lib import config
from fin_assets.lib.search.elasticsearch import (
    ElasticsearchClient,
    ElasticsearchUnavailable,
    SymbolSummary,
    split_credentials,
)
from fin_assets.lib.search.observation import IndexState, parse_cursor
from fin_assets.lib.search.reconcile import compare, differences_markdown
from fin_assets_tests.helpers.elastic_recording_server import (
    elasticsearch_answer,
    not_elasticsearch_answer,
    serve_in_thread,
)

SECRET = "s3cr3t-Pa55"


@pytest.fixture(scope="module")
def merged() -> dg.Definitions:
    """The code location's Definitions, which merge the search flow's in."""
    top_defs = build_definitions()
    keys = set(top_defs.resolve_asset_graph().get_all_asset_keys())
    assert {spec.key for spec in SEARCH_ASSETS} <= keys
    return top_defs


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


def test_sensor_skips_naming_a_json_answer_that_is_not_elasticsearch():
    """Issue 11: another JSON service on the URL made the sensor raise a KeyError."""
    with (
        serve_in_thread(not_elasticsearch_answer) as url,
        dg.DagsterInstance.ephemeral() as instance,
    ):
        context = dg.build_sensor_context(
            instance=instance, resources={"elasticsearch": ElasticsearchResource(url=url)}
        )
        result = elasticsearch_observation_sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert "Not an Elasticsearch answer" in result.skip_message
    assert f"{url}/{config.BATCH_INDEX}/_count" in result.skip_message


def test_check_fails_naming_a_json_answer_that_is_not_elasticsearch(tmp_path):
    from fin_assets_tests.helpers.search_data import price_frame, write_csv

    write_csv(tmp_path, price_frame())
    with serve_in_thread(not_elasticsearch_answer) as url:
        result = finanzas_batch_matches_csv(
            settings=PipelineSettings(data_dir=str(tmp_path), symbols="TSLA,IBM"),
            elasticsearch=ElasticsearchResource(url=url),
        )
    assert not result.passed and "did not answer like Elasticsearch" in result.description


def test_client_fails_over_to_the_next_node(closed_port_url):
    """The first node refuses connections; the second (a real local server) answers and is
    kept for the next request."""
    with serve_in_thread(elasticsearch_answer) as url:
        client = ElasticsearchClient(f"{closed_port_url}, {url}", timeout=2)
        assert client.health() == "green"
        client.close()
    # Kept: a first node that answers 503 (no elected master) is asked once, not per request.
    asked: list[str] = []

    def no_master(method: str, path: str, body: bytes):
        asked.append(path)
        return 503, {"Content-Type": "application/json"}, {"error": "no master", "status": 503}

    with serve_in_thread(no_master) as cut_off, serve_in_thread(elasticsearch_answer) as url:
        client = ElasticsearchClient(f"{cut_off}, {url}", timeout=2)
        assert [client.health(), client.health(), client.health()] == ["green"] * 3
        client.close()
    assert len(asked) == 1, asked
    dead = ElasticsearchClient([closed_port_url, closed_port_url.replace("127.0.0.1", "127.0.0.2")])
    with pytest.raises(ElasticsearchUnavailable) as caught:
        dead.health()
    assert "every node" in str(caught.value) and closed_port_url in str(caught.value)
