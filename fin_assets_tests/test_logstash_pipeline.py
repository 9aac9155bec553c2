"""Static and consistency checks of the Logstash pipeline (Logstash itself cannot run here)."""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from pathlib import Path

import pytest
import yaml
from lscl.errors import DecodeError
from lscl.lang import LsclEqualTo, LsclIn, LsclNotIn, LsclOr, LsclSelector
from lscl.parser import parse_lscl

from fin_assets.defs.search import assets as search_assets
from fin_assets.lib import config
from fin_assets.lib.search.observation import OBSERVED_INDICES
from fin_assets_tests.helpers import search_pipeline_mirror as mirror
from fin_assets_tests.helpers.logstash_conf import (
    DEAD_LETTER_PATH,
    LOGSTASH_YML,
    PIPELINE_PATH,
    PIPELINES_YML,
    by_id,
    env_default,
    find,
    friendly_duration_seconds,
    parse,
    pipeline_files,
    pipeline_plugins,
    sprintf_fields,
)
from fin_assets_tests.helpers.paths import REPO

SCHEMA = json.loads((REPO / "fin_assets/lib/simulator/event.schema.json").read_text())


@pytest.fixture(scope="module")
def plugins():
    return pipeline_plugins()


def schema_fields() -> set[str]:
    fields = set(SCHEMA["properties"])
    for variant in SCHEMA.get("oneOf", []):
        fields |= set(variant.get("properties", {}))
    return fields


def test_pipelines_parse_and_have_three_sections():
    from lscl.parser import parse_lscl

    assert pipeline_files() == sorted([PIPELINE_PATH, DEAD_LETTER_PATH])
    for path in pipeline_files():
        sections = [block.name for block in parse_lscl(path.read_text())]
        assert sections == ["input", "filter", "output"], path.name


@pytest.mark.parametrize(
    "breakage",
    [
        lambda text: text.replace('mode => "tail"', 'mode => "tail"\n    }', 1),  # extra brace
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
    # Every filter runs inside one flow's branch but the last (the rejection check, for both),
    # and every Elasticsearch output too.
    flow_filters = [p for p in plugins if p.section == "filter" and p.flow is None]
    assert [p.attrs["id"] for p in flow_filters] == ["rejection_reason", "batch_drop_raw_line"]
    outputs = [p for p in plugins if p.name == "elasticsearch"]
    assert sorted(p.flow for p in outputs) == ["batch", "transactions"]


def test_plugin_ids_are_unique_across_pipelines():
    ids = [p.attrs.get("id") for path in pipeline_files() for p in pipeline_plugins(path)]
    assert None not in ids and len(ids) == len(set(ids)), "every plugin has a unique id"


def test_csv_input_rereads_the_file_replaced_at_its_path(plugins):
    """Defect 4: read mode never reads the next day's CSV. Tail mode does (rotation handling),
    from its first byte, and the sincedb forgets old inodes before they can be recycled."""
    (csv_input,) = find(plugins, "input", "file", "batch")
    attrs = csv_input.attrs
    assert attrs["mode"] == "tail"
    assert attrs["start_position"] == "beginning"
    # Read-mode-only settings would suggest the file is consumed once.
    assert not {"file_completed_action", "file_completed_log_path", "exit_after_read"} & set(attrs)
    assert env_default(attrs["sincedb_path"]).startswith("/usr/share/logstash/data/")
    # Shorter than the time between two batch runs (at least minutes apart) and than the
    # default 1 hour close_older: a stale record of a recycled inode is gone before a rewrite.
    clean_after = friendly_duration_seconds(attrs["sincedb_clean_after"], "days")
    assert clean_after <= 300
    # ... but longer than the default sincedb_write_interval: the record of the file being read
    # is touched by every line, so a write never finds it expired.
    assert "sincedb_write_interval" not in attrs and clean_after > 15
    assert not {"stat_interval", "close_older", "ignore_older"} & set(attrs), "defaults apply"


def test_file_input_reads_only_the_csv(plugins):
    (csv_input,) = find(plugins, "input", "file", "batch")
    path = env_default(csv_input.attrs["path"])
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


def test_one_time_per_batch_row(plugins):
    """fecha and @timestamp are the same instant: the trading day's market midnight."""
    batch_date = by_id(plugins, "batch_fecha")
    assert batch_date.attrs["target"] == "@timestamp"
    copy = by_id(plugins, "batch_fecha_market_midnight")
    assert copy.attrs["copy"] == {"@timestamp": "fecha"}
    # Only when the date parsed: a failed parse leaves @timestamp at the read time.
    (guard,) = [g for g in copy.guards if not isinstance(g, LsclEqualTo)]
    assert isinstance(guard, LsclNotIn) and guard.needle == "_dateparsefailure"
    # The id keeps the trading day as written (ids from before this change stay the same).
    csv_filter = by_id(plugins, "batch_csv_columns")
    assert csv_filter.attrs["add_field"] == {mirror.TRADING_DAY_FIELD: "%{fecha}"}


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
    assert sprintf_fields(batch.attrs["document_id"]) == ["simbolo", mirror.TRADING_DAY_FIELD]
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


# A secret is an environment reference with no default, or an empty one: never a literal.
_SECRET_REFERENCE = re.compile(r"\$\{[A-Z0-9_]+:?\}")


def test_no_literal_secrets_in_logstash_files():
    read = [path for path in (REPO / "logstash").rglob("*") if path.is_file()]
    for path in read:
        assert "changeme" not in path.read_text().lower(), path
    # Counted: the pipeline definitions were among the files read, and password options seen.
    assert PIPELINE_PATH in read, [str(p) for p in read]
    passwords_checked = jaas_checked = 0
    for path in pipeline_files():
        for plugin in pipeline_plugins(path):
            where = f"{path.name} {plugin.attrs.get('id')}"
            for name, value in plugin.attrs.items():
                if "password" in name:
                    passwords_checked += 1
                    assert isinstance(value, str) and _SECRET_REFERENCE.fullmatch(value), where
                if name == "sasl_jaas_config":
                    jaas_checked += 1
                    # Inside the JAAS line: password='${VAR:}', nothing else.
                    secrets = re.findall(r"password\s*=\s*(\S+?);?(?:\s|$)", value)
                    assert secrets, where
                    assert all(_SECRET_REFERENCE.fullmatch(s.strip("'\"")) for s in secrets), where
    assert passwords_checked > 0 and jaas_checked > 0, (passwords_checked, jaas_checked)


def pipelines_yml() -> dict[str, dict]:
    import yaml

    return {p["pipeline.id"]: p for p in yaml.safe_load(PIPELINES_YML.read_text())}


def test_pipelines_yml_registers_both_pipelines_with_persistent_queues():
    pipelines = pipelines_yml()
    assert set(pipelines) == {"fin_unificado", mirror.REJECTED_PIPELINE}
    assert {Path(p["path.config"]).name for p in pipelines.values()} == {
        PIPELINE_PATH.name,
        DEAD_LETTER_PATH.name,
    }
    # The container's path by default (docker-compose.yml mounts logstash/pipeline there);
    # scripts/logstash.sh sets LOGSTASH_PIPELINE_DIR to the checkout's folder.
    for path in (PIPELINE_PATH, DEAD_LETTER_PATH):
        assert f"/usr/share/logstash/pipeline/{path.name}" in {
            env_default(p["path.config"]) for p in pipelines.values()
        }
    assert all(p["queue.type"] == "persisted" for p in pipelines.values())
    assert pipelines["fin_unificado"]["dead_letter_queue.enable"] is True
    assert pipelines[mirror.REJECTED_PIPELINE]["dead_letter_queue.enable"] is False
    assert "queue.type: persisted" in LOGSTASH_YML.read_text()


# --- nothing vanishes (defect 7) -------------------------------------------------------------


def rejection_condition(plugins) -> tuple[set[str], set[str]]:
    """(tags, fields) the output's rejection branch tests; asserts it is the first branch."""
    (to_rejected,) = [p for p in plugins if p.section == "output" and p.name == "pipeline"]
    (condition,) = to_rejected.guards
    terms = condition.conditions if isinstance(condition, LsclOr) else [condition]
    tags = {t.needle for t in terms if isinstance(t, LsclIn)}
    fields = {".".join(t.names) for t in terms if isinstance(t, LsclSelector)}
    assert len(tags) + len(fields) == len(terms), terms
    for es_output in (p for p in plugins if p.name == "elasticsearch"):
        assert es_output.guards[0] != condition
    return tags, fields


def test_every_rejection_tag_leaves_through_fin_rejected_and_never_an_index(plugins):
    tags, fields = rejection_condition(plugins)
    assert tags == set(mirror.REJECTION_REASONS)
    assert fields == {"rejection"}
    (to_rejected,) = [p for p in plugins if p.section == "output" and p.name == "pipeline"]
    assert to_rejected.attrs["send_to"] == [mirror.REJECTED_PIPELINE]
    # The rejection branch comes first: lscl keeps if/else-if order, ES outputs are later arms.
    (outputs,) = [s for s in parse_lscl(PIPELINE_PATH.read_text()) if s.name == "output"]
    (branches,) = outputs.content
    first_condition, first_body = branches.conditions[0]
    assert [b.name for b in first_body] == ["pipeline"]


def test_the_rejection_check_knows_every_tag_and_runs_last(plugins):
    check = by_id(plugins, "rejection_reason")
    reasons = dict(re.findall(r"'(_\w+)' => '([^']+)'", check.attrs["init"]))
    assert reasons == mirror.REJECTION_REASONS
    filters = [p for p in plugins if p.section == "filter"]
    assert filters[-2:] == [check, by_id(plugins, "batch_drop_raw_line")]
    # The tags the checks set are all known to it.
    set_by_checks = set()
    for plugin in filters:
        set_by_checks |= set(re.findall(r"event\.tag\('(_\w+)'\)", plugin.attrs.get("code", "")))
        set_by_checks |= set(plugin.attrs.get("add_tag", []))
    assert set_by_checks - {"trade", "price_alert", "api_error", "_unknown_event_type"} <= set(
        mirror.REJECTION_REASONS
    )


def test_dead_letter_pipeline_reads_the_main_pipeline_queue_and_keeps_the_reason():
    plugins = pipeline_plugins(DEAD_LETTER_PATH)
    dlq = by_id(plugins, "dlq_fin_unificado")
    assert dlq.name == "dead_letter_queue"
    assert dlq.attrs["pipeline_id"] == "fin_unificado" and "fin_unificado" in pipelines_yml()
    assert dlq.attrs["commit_offsets"] == "true"
    assert env_default(dlq.attrs["path"]) == "/usr/share/logstash/data/dead_letter_queue"
    # The writer (logstash.yml) and the reader take the same variable, with the same default.
    settings = yaml.safe_load(LOGSTASH_YML.read_text())
    assert settings["path.dead_letter_queue"] == dlq.attrs["path"]
    assert env_default(settings["path.dead_letter_queue"]) == (
        "/usr/share/logstash/data/dead_letter_queue"
    )
    (bus,) = [p for p in plugins if p.section == "input" and p.name == "pipeline"]
    assert bus.attrs["address"] == mirror.REJECTED_PIPELINE
    copy = by_id(plugins, "dlq_reason").attrs["copy"]
    assert copy["[@metadata][dead_letter_queue][reason]"] == "[rejection][reason]"
    # One way out, a file: nothing here writes to an index.
    outputs = [p for p in plugins if p.section == "output"]
    assert [(p.name, p.attrs["codec"]) for p in outputs] == [("file", "json_lines")]
    path = env_default(outputs[0].attrs["path"])
    assert path.startswith("/usr/share/logstash/data/rejected/")
    assert "%{[@metadata][rejected_day]}" in path and "%{+" not in path, "named by rejection day"


def test_compose_creates_the_dead_letter_folder_before_logstash_starts():
    import yaml

    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    logstash = compose["services"]["logstash"]
    *shell, script = logstash["entrypoint"]
    assert shell == ["bash", "-c"]
    dlq = by_id(pipeline_plugins(DEAD_LETTER_PATH), "dlq_fin_unificado").attrs
    folder = f"{env_default(dlq['path'])}/{dlq['pipeline_id']}"
    assert script == f"mkdir -p {folder} && exec /usr/local/bin/docker-entrypoint"
    # ... inside the volume that keeps it across restarts.
    assert "logstash_data:/usr/share/logstash/data" in logstash["volumes"]
    health = " ".join(logstash["healthcheck"]["test"])
    assert all(f"/_node/pipelines/{p}" in health for p in pipelines_yml())
