"""The code location loads, and its shape is pinned: assets with their groups, lineage, kinds,
owners and partitions; asset checks; jobs, schedules, sensors and resources, as one plain
sorted dict in a syrupy snapshot (__snapshots__/test_defs_load.ambr). A change of lineage or of
any of these shows as a diff of that file; accept it with `pytest --snapshot-update`.

Then the same location as `dg` sees it, through pyproject.toml's [tool.dg]: `dg check defs`
passes and `dg list defs --json` lists the same asset keys. No service is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from fin_assets.definitions import build_definitions
from fin_assets.lib import settings
from fin_assets_tests.helpers.paths import REPO

VENV = REPO / ".venv"
DG = Path(sys.executable).parent / "dg"


def fixed_environ() -> dict[str, str]:
    """os.environ without any variable the product reads, FIN_SYMBOLS at its default: every
    setting at its default whatever the shell exported."""
    environ = {k: v for k, v in os.environ.items() if k not in settings.variables()}
    environ["FIN_SYMBOLS"] = settings.DEFAULT_SYMBOLS
    return environ


@pytest.fixture
def fixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in settings.variables():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FIN_SYMBOLS", settings.DEFAULT_SYMBOLS)


@pytest.fixture
def definitions(fixed_env) -> dg.Definitions:
    return build_definitions()


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> dict[str, Any] | None:
    if partitions_def is None:
        return None
    described: dict[str, Any] = {"type": type(partitions_def).__name__}
    if isinstance(partitions_def, dg.StaticPartitionsDefinition):
        described["keys"] = list(partitions_def.get_partition_keys())
    else:  # time-based or dynamic: its own description, never today's keys
        described["description"] = str(partitions_def)
    return described


def shape(definitions: dg.Definitions) -> dict[str, Any]:
    """What the snapshot pins, in plain sorted types."""
    repository = definitions.get_repository_def()
    graph = repository.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "partitions": _partitions(node.partitions_def),
            "materializable": node.is_materializable,
        }
    checks = sorted(
        (
            {
                "name": check_key.name,
                "asset": check_key.asset_key.to_user_string(),
                "blocking": graph.get(check_key).blocking,
            }
            for check_key in graph.asset_check_keys
        ),
        key=lambda check: (check["asset"], check["name"]),
    )
    schedules = {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "timezone": schedule.execution_timezone,
            "job": schedule.job_name,
            "default_status": schedule.default_status.value,
        }
        for schedule in sorted(repository.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        sensor.name: {
            "default_status": sensor.default_status.value,
            "minimum_interval_s": sensor.minimum_interval_seconds,
            "jobs": sorted(target.job_name for target in sensor.targets) if sensor.targets else [],
        }
        for sensor in sorted(repository.sensor_defs, key=lambda s: s.name)
    }
    return {
        "assets": assets,
        "asset_checks": checks,
        "jobs": sorted(job.name for job in repository.get_all_jobs()),
        "schedules": schedules,
        "sensors": sensors,
        "resources": sorted(repository.get_top_level_resources()),
    }


def test_definitions_load_and_validate(definitions: dg.Definitions):
    dg.Definitions.validate_loadable(definitions)
    graph = definitions.get_repository_def().asset_graph
    assert graph.get_all_asset_keys(), "no asset loaded"


def test_definitions_shape_matches_the_snapshot(definitions: dg.Definitions, snapshot):
    described = shape(definitions)
    # Deterministic: a second build describes the same location.
    assert shape(build_definitions()) == described
    assert described == snapshot


# --- the same location through `dg` -------------------------------------------------------------


@pytest.fixture(scope="module")
def dg_results() -> dict[str, subprocess.CompletedProcess]:
    """`dg check defs` and `dg list defs --json`, started together (each is a few seconds of
    one core loading the location)."""
    if not DG.exists():
        pytest.fail(f"{DG} missing: pip install -e '.[dev]' (dagster-dg-cli)")
    env = {**fixed_environ(), "VIRTUAL_ENV": str(VENV), "NO_COLOR": "1"}
    commands = {"check": ["check", "defs"], "list": ["list", "defs", "--json"]}
    running = {
        name: subprocess.Popen(
            [str(DG), *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    results = {}
    for name, process in running.items():
        try:
            out, err = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results


def test_dg_check_defs_passes(dg_results):
    result = dg_results["check"]
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "All definitions loaded successfully" in result.stdout


def test_dg_list_defs_reports_the_assets_of_build_definitions(dg_results, definitions):
    result = dg_results["list"]
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    graph = definitions.get_repository_def().asset_graph
    assert {asset["asset_key"] for asset in listed["assets"]} == {
        key.to_user_string() for key in graph.get_all_asset_keys()
    }
    assert {(check["asset_key"], check["name"]) for check in listed["asset_checks"]} == {
        (key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys
    }
