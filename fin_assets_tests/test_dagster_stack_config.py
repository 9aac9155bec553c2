"""The Dagster side of the docker stack, checked without starting it (seconds): the instance
config is one Dagster accepts and agrees with the local instance, the Postgres URL names the
installed driver, the state sits on a volume, the stand-in is wired in when no key is set.
test_dagster_stack.py runs the same files for real."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import sqlalchemy
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster_postgres.utils import pg_url_from_config

from fin_assets.cli.instance import INSTANCE_CONFIG
from fin_assets_tests.helpers.compose_file import (
    DOCKER,
    env_file_from_example,
    resolve,
    start_order,
)
from fin_assets_tests.helpers.dockerfile_install import parse_dockerfile, placements, read_recipe
from fin_assets_tests.helpers.paths import REPO

INSTANCE_FILE = DOCKER / "dagster" / "dagster.yaml"
ENTRYPOINT = DOCKER / "dagster" / "entrypoint.sh"
DAGSTER_IMAGE_SERVICES = {
    "alpha-vantage-stand-in",
    "dagster-code-server",
    "dagster-webserver",
    "dagster-daemon",
}


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("compose-env")
    return resolve(env_file_from_example(folder / ".env", {}))["services"]


@pytest.fixture
def docker_instance(services: dict, monkeypatch, tmp_path: Path) -> dict:
    """docker/dagster/dagster.yaml as Dagster validates and resolves it, with the code
    server's environment (the compose values)."""
    for name, value in services["dagster-code-server"]["environment"].items():
        monkeypatch.setenv(name, str(value))
    shutil.copy(INSTANCE_FILE, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    return config


def test_dagster_accepts_the_instance_config(docker_instance: dict):
    # run_coordinator.config.max_concurrent_runs next to a concurrency block made the
    # webserver and the daemon refuse to start (DagsterInvalidConfigError).
    assert docker_instance["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert not (docker_instance["run_coordinator"].get("config") or {})
    assert docker_instance["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_postgres_url_names_the_driver_dagster_postgres_installs(docker_instance: dict):
    # SQLAlchemy 2.x maps a bare postgresql:// to psycopg 3, which is not installed.
    postgres_db = {
        key: os.environ[value["env"]] if isinstance(value, dict) else value
        for key, value in docker_instance["storage"]["postgres"]["postgres_db"].items()
    }
    url = sqlalchemy.engine.make_url(pg_url_from_config({"postgres_db": postgres_db}))
    assert url.get_dialect().driver == "psycopg2"
    assert url.host == "postgres" and url.database == "dagster"


def _agreeing_keys(config: dict) -> dict:
    concurrency = config.get("concurrency") or {}
    return {
        "pools": concurrency.get("pools"),
        "tag_concurrency_limits": (concurrency.get("runs") or {}).get("tag_concurrency_limits"),
        "run_monitoring": config.get("run_monitoring"),
    }


def test_docker_instance_agrees_with_the_local_instance():
    """Pools, the simulator's per-shard guard and run monitoring: the same in docker as in
    fin_assets/cli/instance.py (which `fin-assets dev` and `fin-assets batch` write)."""
    local = yaml.safe_load(INSTANCE_CONFIG)
    docker = yaml.safe_load(INSTANCE_FILE.read_text())
    assert _agreeing_keys(docker) == _agreeing_keys(local)


def test_dagster_state_lives_in_postgres_and_on_a_shared_volume(services: dict):
    """A rebuild replaces the containers: runs and events are in Postgres, step outputs and
    compute logs on one named volume that every Dagster container mounts (the webserver shows
    the compute logs the code server's run workers write)."""
    instance = yaml.safe_load(INSTANCE_FILE.read_text())
    assert set(instance["storage"]) == {"postgres"}
    state_dirs = [
        instance["local_artifact_storage"]["config"]["base_dir"],
        instance["compute_logs"]["config"]["base_dir"],
    ]
    image = services["dagster-webserver"]["image"]
    dagster = {n for n, s in services.items() if s.get("image") == image}
    assert dagster == DAGSTER_IMAGE_SERVICES
    for name in dagster - {"alpha-vantage-stand-in"}:
        volumes = [v for v in services[name]["volumes"] if v["type"] == "volume"]
        for state_dir in state_dirs:
            covering = [v for v in volumes if PurePosixPath(state_dir).is_relative_to(v["target"])]
            assert covering, f"{name}: {state_dir} is not on a named volume"
            assert not covering[0].get("read_only"), f"{name}: {state_dir} is read-only"
    recipe = read_recipe(DOCKER / "Dockerfile")
    home = recipe.env["DAGSTER_HOME"]
    image_files = {target for copy in recipe.copies for _, target in placements(copy)}
    # The config is part of the image (a rebuild brings the new one), not of a volume.
    assert f"{home}/dagster.yaml" in image_files and f"{home}/workspace.yaml" in image_files


def _entrypoint_env(environment: dict) -> tuple[dict[str, str], str]:
    env = {"PATH": os.environ["PATH"], **{k: str(v) for k, v in environment.items()}}
    result = subprocess.run(
        [str(ENTRYPOINT), "env", "-0"], env=env, capture_output=True, text=True, timeout=30,
        check=True,
    )  # fmt: skip
    pairs = dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)
    return pairs, result.stderr


def test_without_a_key_the_code_server_uses_the_stand_in_service(services: dict):
    code_server = services["dagster-code-server"]
    environment = code_server["environment"]
    assert environment["ALPHAVANTAGE_API_KEY"] == ""  # the .env.example default
    seen, said = _entrypoint_env(environment)
    assert seen["ALPHAVANTAGE_BASE_URL"] == environment["FIN_STAND_IN_URL"]
    assert seen["ALPHAVANTAGE_API_KEY"]  # the stand-in wants a non-empty key
    assert "SYNTHETIC" in said and environment["FIN_STAND_IN_URL"] in said
    # The URL reaches the stand-in service: its service name, the port it serves on, and it
    # listens on every interface of its container (not only its own loopback).
    stand_in = services["alpha-vantage-stand-in"]
    command = stand_in["command"]
    assert command[:2] == ["fin-assets", "stand-in"]
    port = command[command.index("--port") + 1]
    url = urlsplit(environment["FIN_STAND_IN_URL"])
    assert (url.hostname, url.port) == ("alpha-vantage-stand-in", int(port))
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert "network_mode" not in code_server


def test_with_a_key_the_entrypoint_changes_nothing(services: dict):
    environment = {
        **services["dagster-code-server"]["environment"],
        "ALPHAVANTAGE_API_KEY": "a-real-key-placeholder",
    }
    seen, said = _entrypoint_env(environment)
    assert seen["ALPHAVANTAGE_API_KEY"] == "a-real-key-placeholder"
    assert seen["ALPHAVANTAGE_BASE_URL"] == environment["ALPHAVANTAGE_BASE_URL"]
    assert said == ""


def test_services_start_in_compose_order(services: dict):
    order = start_order(services, DAGSTER_IMAGE_SERVICES)
    assert order.index("alpha-vantage-stand-in") < order.index("dagster-code-server")
    for name in ("dagster-webserver", "dagster-daemon"):
        assert order.index("dagster-code-server") < order.index(name)
        deps = services[name]["depends_on"]
        assert deps["dagster-code-server"]["condition"] == "service_healthy"
        assert deps["postgres"]["condition"] == "service_healthy"
    workspace = yaml.safe_load((DOCKER / "dagster" / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    code_server_command = services["dagster-code-server"]["command"]
    assert location["grpc_server"]["host"] == "dagster-code-server"
    assert (
        str(location["grpc_server"]["port"])
        == code_server_command[code_server_command.index("-p") + 1]
    )


def test_dockerfile_installs_with_the_pins():
    recipe = read_recipe(DOCKER / "Dockerfile")
    (pip,) = recipe.pip_commands
    words = shlex.split(pip)
    assert "dagster-postgres==0.29.27" in words and "pip" in words[words.index("&&") + 1 :]
    constraints = words[words.index("--constraint") + 1]
    copied = {
        PurePosixPath(target).relative_to(recipe.workdir).as_posix(): source
        for copy in recipe.copies
        for source, target in placements(copy)
        if PurePosixPath(target).is_relative_to(recipe.workdir)
    }
    pins = (REPO / copied[constraints]).read_text().splitlines()
    assert "dagster==1.13.27" in pins and "dagster-postgres==0.29.27" in pins
    assert '"dagster==1.13.27"' in (REPO / "pyproject.toml").read_text()
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    for copy in recipe.copies:
        for source in copy.sources:
            assert (
                f"!{source}" in ignore
                or f"!{source}/**" in ignore
                or any(
                    line.startswith("!") and line.endswith("/**") and source.startswith(line[1:-2])
                    for line in ignore
                )
            ), f"{source} is excluded from the build context by Dockerfile.dockerignore"


def test_dockerfile_parser_joins_continuations_and_names_lines():
    instructions = parse_dockerfile(
        '# comment\nFROM python:3.11-slim\nRUN pip install a \\\n    # inside\n    b\nCMD ["x"]\n'
    )
    assert [(i.keyword, i.value, i.line) for i in instructions] == [
        ("FROM", "python:3.11-slim", 2),
        ("RUN", "pip install a b", 3),
        ("CMD", '["x"]', 6),
    ]
    with pytest.raises(ValueError, match="line 1"):
        parse_dockerfile("RUN a \\\n")
