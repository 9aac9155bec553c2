"""Every option the pipelines set exists for its plugin, has a value its validator accepts, and
every required option is there: against logstash/plugin_options.json, the option declarations
read from the plugins' sources for the Logstash release docker-compose pins. Also the keys of
pipelines.yml and logstash.yml against the settings Logstash registers."""

from __future__ import annotations

import re

import pytest
import yaml

from fin_assets_tests.helpers.logstash_conf import (
    DEAD_LETTER_PATH,
    LOGSTASH_YML,
    PIPELINE_PATH,
    PIPELINES_YML,
    option_problems,
    option_table,
    parse,
    pipeline_files,
    pipeline_plugins,
    setting_problems,
)
from fin_assets_tests.helpers.paths import REPO


@pytest.fixture(scope="module")
def table() -> dict:
    return option_table()


def test_the_table_is_for_the_release_compose_runs(table):
    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    # Compose's ${VAR:-default}, with every variable unset.
    image = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", compose["services"]["logstash"]["image"])
    assert image == table["logstash"]["image"]
    assert image.endswith(":" + table["logstash"]["release"])


def test_every_plugin_in_the_table_names_its_version_and_source(table):
    for key, entry in table["plugins"].items():
        assert entry["version"], key
        sources = entry["source"] if isinstance(entry["source"], list) else [entry["source"]]
        for source in sources:
            assert source["url"].startswith("https://github.com/"), key
            assert source["url"].endswith(source["path"]), key


@pytest.mark.parametrize("path", pipeline_files(), ids=lambda p: p.name)
def test_every_pipeline_option_exists_is_valid_and_required_ones_are_set(path, table):
    assert option_problems(pipeline_plugins(path), table) == []


BROKEN_COPIES = [
    # (file, replace this, with this, the problem reported)
    (PIPELINE_PATH, 'mode => "tail"', 'mode => "tail"\n    sincedb_clean_afterr => "1 minute"',
     "input/file batch_csv: unknown option 'sincedb_clean_afterr'"),
    (PIPELINE_PATH, 'mode => "tail"', 'mode => "tial"',
     "input/file batch_csv: mode => 'tial': expected one of ['tail', 'read']"),
    (PIPELINE_PATH, 'start_position => "beginning"', 'start_position => "begin"',
     "start_position => 'begin': expected one of ['beginning', 'end']"),
    (PIPELINE_PATH, 'sincedb_clean_after => "1 minute"', 'sincedb_clean_after => "1 fortnight"',
     "is not a valid duration string"),
    (PIPELINE_PATH, 'decorate_events => "basic"', 'decorate_events => "all"',
     "decorate_events => 'all': expected one of"),
    (PIPELINE_PATH, 'send_to => ["fin_rejected"]', "ensure_delivery => true",
     "output/pipeline to_fin_rejected: required option 'send_to' missing"),
    (PIPELINE_PATH, 'path => "${FIN_DATA_DIR:', 'exclude => "${FIN_DATA_DIR:',
     "input/file batch_csv: required option 'path' missing"),
    (PIPELINE_PATH, '"volumen" => "integer"\n      }', '"volumen" => "int"\n      }',
     "filter/csv batch_csv_columns: convert: volumen => 'int' is not one of"),
    (PIPELINE_PATH, "codec => json\n", "codec => jsn\n", "codec => 'jsn': unknown codec 'jsn'"),
    (PIPELINE_PATH, "${KAFKA_SECURITY_PROTOCOL:PLAINTEXT}", "${KAFKA_SECURITY_PROTOCOL:SASL-SSL}",
     "input/kafka transactions_kafka: security_protocol => '${KAFKA_SECURITY_PROTOCOL:SASL-SSL}':"
     " expected one of ['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL']"),
    (PIPELINE_PATH, "sasl_jaas_config =>", "sasl_jaas =>",
     "input/kafka transactions_kafka: unknown option 'sasl_jaas'"),
    (PIPELINE_PATH, "TRUSTSTORE_LOCATION:/usr/share", "TRUSTSTORE_LOCATION:usr/share",
     "ssl_truststore_location => '${KAFKA_SSL_TRUSTSTORE_LOCATION:usr/share/logstash/jdk/lib/"
     "security/cacerts}': expected an absolute path"),
    (PIPELINE_PATH, "ssl_enabled => true", "ssl_enabled => yes",
     "ssl_enabled => 'yes': expected boolean"),
    (PIPELINE_PATH, 'ilm_enabled => "false"', 'ilm_enabled => "no"',
     "ilm_enabled => 'no': expected one of"),
    (DEAD_LETTER_PATH, "commit_offsets => true", 'commit_offsets => "yes"',
     "commit_offsets => 'yes': expected boolean"),
    (DEAD_LETTER_PATH, "commit_offsets => true", "commit_offsets => false",
     "commit_offsets must be 'true' with {'clean_consumed': ['true']}"),
    (DEAD_LETTER_PATH, 'pipeline_id => "fin_unificado"', 'pipeline => "fin_unificado"',
     "unknown option 'pipeline'"),
    (DEAD_LETTER_PATH, 'address => "fin_rejected"', 'id2 => "fin_rejected"',
     "input/pipeline from_fin_unificado: unknown option 'id2'"),
]


@pytest.mark.parametrize(
    ("path", "old", "new", "problem"), BROKEN_COPIES, ids=[c[3][:48] for c in BROKEN_COPIES]
)
def test_a_broken_copy_is_refused(path, old, new, problem, table):
    text = path.read_text()
    assert old in text, old
    problems = option_problems(parse(text.replace(old, new, 1)), table)
    assert any(problem in p for p in problems), problems


def deploy_logstash_env() -> dict[str, str]:
    """deploy/logstash/logstash.yaml's plain env values (not those from Secrets)."""
    docs = yaml.safe_load_all((REPO / "deploy" / "logstash" / "logstash.yaml").read_text())
    (logstash,) = [d for d in docs if d and d.get("kind") == "Logstash"]
    (container,) = logstash["spec"]["podTemplate"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def under_env(text: str, env: dict[str, str]) -> str:
    """The pipeline with the variables this environment sets substituted, the rest left."""
    return re.sub(
        r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}", lambda m: env.get(m[1], m[0]), text
    )


def test_the_pipeline_is_valid_under_the_deploys_env(table):
    # The defaults are checked above; the deploy's values (SASL_SSL, PKCS12, ...) here.
    text = under_env(PIPELINE_PATH.read_text(), deploy_logstash_env())
    assert "SASL_SSL" in text
    assert option_problems(parse(text), table) == []


def test_a_bad_protocol_in_the_deploys_env_is_refused(table):
    env = {**deploy_logstash_env(), "KAFKA_SECURITY_PROTOCOL": "SASL-SSL"}
    problems = option_problems(parse(under_env(PIPELINE_PATH.read_text(), env)), table)
    assert any("security_protocol => 'SASL-SSL': expected one of" in p for p in problems)


def test_an_unknown_plugin_is_refused(table):
    text = PIPELINE_PATH.read_text().replace("csv {", "csvv {", 1)
    assert "filter/csvv batch_csv_columns: plugin not in plugin_options.json" in option_problems(
        parse(text), table
    )


def pipelines() -> list[dict]:
    return yaml.safe_load(PIPELINES_YML.read_text())


def test_pipelines_yml_sets_only_pipeline_settings_with_valid_values(table):
    for entry in pipelines():
        assert setting_problems(entry, table, pipeline=True) == [], entry["pipeline.id"]


def test_logstash_yml_sets_only_registered_settings_with_valid_values(table):
    assert setting_problems(yaml.safe_load(LOGSTASH_YML.read_text()), table) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"pipeline.workers": 0}, "pipeline.workers: 0 is not a valid positive_integer"),
        ({"queue.type": "disk"}, "queue.type: 'disk' is not a valid enum"),
        ({"pipeline.worker": 2}, "pipeline.worker: not a pipeline setting"),
        ({"api.http.host": "0.0.0.0"}, "api.http.host: not a pipeline setting"),
        ({"dead_letter_queue.enable": "yes"}, "dead_letter_queue.enable: 'yes' is not a valid"),
        ({"queue.max_bytes": "512 megs"}, "queue.max_bytes: '512 megs' is not a valid bytes"),
    ],
)
def test_a_broken_pipelines_yml_is_refused(change, problem, table):
    entry = {**pipelines()[0], **change}
    problems = setting_problems(entry, table, pipeline=True)
    assert any(p.startswith(problem) for p in problems), problems


def test_a_broken_logstash_yml_is_refused(table):
    settings = yaml.safe_load(LOGSTASH_YML.read_text())
    settings["queue.typ"] = settings.pop("queue.type")
    settings["log.level"] = "verbose"
    problems = setting_problems(settings, table)
    assert "queue.typ: not a Logstash setting" in problems
    assert "log.level: 'verbose' is not a valid enum" in problems


def test_validators_in_the_table_all_have_a_checker(table):
    # A validator the checker does not know would raise on first use; find them all now.
    from fin_assets_tests.helpers.logstash_conf import check_value

    seen = set()
    for entry in [*table["plugins"].values(), *table["mixins"].values()]:
        for spec in entry["options"].values():
            seen.add(re.sub(r"\W", "", str(spec["validate"])))
            if not isinstance(spec["validate"], dict):
                try:
                    check_value("x", spec["validate"], table)
                except ValueError as error:
                    assert "no checker" not in str(error), spec
