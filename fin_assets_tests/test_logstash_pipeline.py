"""Static and consistency checks of the Logstash pipeline (Logstash itself cannot run here)."""

from __future__ import annotations

import fnmatch
import json
import posixpath
from pathlib import Path

import pytest
from lscl.errors import DecodeError

from fin_assets import config
from fin_assets.search import assets as search_assets
from fin_assets.search.observation import OBSERVED_INDICES
from fin_assets_tests.logstash_conf import (
    PIPELINE_PATH,
    REPO,
    by_id,
    env_default,
    find,
    parse,
    pipeline_plugins,
    sprintf_fields,
)

SCHEMA = json.loads((REPO / "fin_assets" / "simulator" / "event.schema.json").read_text())


@pytest.fixture(scope="module")
def plugins():
    return pipeline_plugins()


def schema_fields() -> set[str]:
    fields = set(SCHEMA["properties"])
    for variant in SCHEMA.get("oneOf", []):
        fields |= set(variant.get("properties", {}))
    return fields


def test_pipeline_parses_and_has_three_sections():
    from lscl.parser import parse_lscl

    sections = [block.name for block in parse_lscl(PIPELINE_PATH.read_text())]
    assert sections == ["input", "filter", "output"]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda text: text.replace('mode => "read"', 'mode => "read"\n    }', 1),  # extra brace
        lambda text: text.rstrip().removesuffix("}"),  # missing final brace
        lambda text: text.replace("skip_header => true", "skip_header => true =>", 1),
    ],
)
def test_a_broken_copy_fails_to_parse(breakage, tmp_path: Path):
    broken = breakage(PIPELINE_PATH.read_text())
    assert broken != PIPELINE_PATH.read_text()
    with pytest.raises(DecodeError):
        parse(broken)


def test_two_inputs_each_routed_to_its_flow(plugins):
    inputs = [p for p in plugins if p.section == "input"]
    assert sorted((p.name, p.flow) for p in inputs) == [
        ("file", "batch"),
        ("kafka", "transactions"),
    ]
    # Every filter runs inside one flow's branch, and every Elasticsearch output too.
    assert all(p.flow in ("batch", "transactions") for p in plugins if p.section == "filter")
    outputs = [p for p in plugins if p.name == "elasticsearch"]
    assert sorted(p.flow for p in outputs) == ["batch", "transactions"]
    ids = [p.attrs.get("id") for p in plugins]
    assert None not in ids and len(ids) == len(set(ids)), "every plugin has a unique id"


def test_file_input_reads_only_the_csv_and_keeps_it(plugins):
    (csv_input,) = find(plugins, "input", "file", "batch")
    attrs = csv_input.attrs
    assert attrs["mode"] == "read"
    assert attrs["file_completed_action"] == "log"  # the default would delete the CSV
    assert attrs["file_completed_log_path"]
    assert attrs["sincedb_path"] and attrs["sincedb_clean_after"]
    path = env_default(attrs["path"])
    assert posixpath.isabs(path)
    assert posixpath.basename(path) == config.CSV_FILE_NAME
    folder = posixpath.dirname(path)
    siblings = [
        config.EXTRACTION_LOG_FILE_NAME,
        config.TRANSACTIONS_LOG_FILE_NAME,
        f"{config.RAW_DIR_NAME}/TSLA/x.json",
        f"{config.HISTORY_DIR_NAME}/{config.CSV_FILE_NAME}",
        f".{config.CSV_FILE_NAME}.abc123.tmp",  # the batch flow's temp file before its rename
        config.CSV_FILE_NAME + ".bak",
    ]
    assert fnmatch.fnmatch(f"{folder}/{config.CSV_FILE_NAME}", path)
    for sibling in siblings:
        assert not fnmatch.fnmatch(f"{folder}/{sibling}", path), sibling


def test_csv_filter_matches_the_csv_contract(plugins):
    (csv_filter,) = find(plugins, "filter", "csv", "batch")
    assert tuple(csv_filter.attrs["columns"]) == config.CSV_COLUMNS
    assert csv_filter.attrs["skip_header"] == "true"
    assert csv_filter.attrs["separator"] == ","
    assert set(csv_filter.attrs["convert"]) <= set(config.CSV_COLUMNS)


def test_date_filters_use_existing_fields_and_market_timezone(plugins):
    (batch_date,) = find(plugins, "filter", "date", "batch")
    field, *formats = batch_date.attrs["match"]
    assert field in config.CSV_COLUMNS and formats == ["yyyy-MM-dd"]
    assert batch_date.attrs["timezone"] == config.MARKET_TIMEZONE
    (ts_date,) = find(plugins, "filter", "date", "transactions")
    field, *formats = ts_date.attrs["match"]
    assert field in SCHEMA["required"] and formats == ["ISO8601"]


def test_kafka_input_follows_config(plugins):
    (kafka,) = find(plugins, "input", "kafka", "transactions")
    (topic,) = kafka.attrs["topics"]
    assert topic.startswith("${FIN_KAFKA_TOPIC:")
    assert env_default(topic) == config.DEFAULT_KAFKA_TOPIC
    assert kafka.attrs["bootstrap_servers"].startswith("${KAFKA_BOOTSTRAP_SERVERS:")
    assert kafka.attrs["codec"] == "json"
    assert env_default(kafka.attrs["group_id"])


def test_outputs_write_the_configured_indices_with_stable_ids(plugins):
    batch = by_id(plugins, "es_finanzas_batch")
    transactions = by_id(plugins, "es_transacciones_nrt")
    assert (batch.flow, batch.attrs["index"]) == ("batch", config.BATCH_INDEX)
    assert (transactions.flow, transactions.attrs["index"]) == (
        "transactions",
        config.TRANSACTIONS_INDEX,
    )
    assert sprintf_fields(batch.attrs["document_id"]) == ["simbolo", "fecha"]
    assert set(sprintf_fields(batch.attrs["document_id"])) <= set(config.CSV_COLUMNS)
    assert sprintf_fields(transactions.attrs["document_id"]) == ["event_id"]
    assert "event_id" in SCHEMA["required"]


def test_index_names_agree_across_dagster_side():
    assert {search_assets.finanzas_batch.key.to_user_string()} == {config.BATCH_INDEX}
    assert search_assets.transacciones_nrt.key.to_user_string() == config.TRANSACTIONS_INDEX
    assert set(OBSERVED_INDICES) == {config.BATCH_INDEX, config.TRANSACTIONS_INDEX}
    assert search_assets.transacciones_nrt.deps[0].asset_key.to_user_string() == (
        config.DEFAULT_KAFKA_TOPIC
    )


def test_elasticsearch_outputs_take_connection_from_env_and_use_v12_options(plugins):
    for output in (p for p in plugins if p.name == "elasticsearch"):
        attrs = output.attrs
        for host in attrs["hosts"]:
            assert host.startswith("${ELASTICSEARCH_HOSTS")
        assert attrs["user"].startswith("${")
        assert attrs["password"] == "${ELASTICSEARCH_PASSWORD}", "no default: no literal secret"
        # logstash-output-elasticsearch 12 refuses the pre-8 names.
        assert not {"ssl", "cacert", "ssl_certificate_verification"} & set(attrs)
        assert "ssl_enabled" in attrs
        assert all(ca.startswith("${") for ca in attrs["ssl_certificate_authorities"])
        assert attrs["manage_template"] == "false"


def test_no_literal_secrets_in_logstash_files():
    for path in (REPO / "logstash").rglob("*"):
        if path.is_file():
            text = path.read_text().lower()
            assert "changeme" not in text and "password =>" not in text.replace(
                'password => "${elasticsearch_password}"', ""
            ), path


def test_pipelines_yml_points_at_the_pipeline_with_a_persistent_queue():
    text = (REPO / "logstash" / "config" / "pipelines.yml").read_text()
    assert f'path.config: "/usr/share/logstash/pipeline/{PIPELINE_PATH.name}"' in text
    assert "queue.type: persisted" in text
    assert "queue.type: persisted" in (REPO / "logstash" / "config" / "logstash.yml").read_text()
