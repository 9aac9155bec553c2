"""Shared fixtures: one plugin module per service or flow in fixtures/, registered here.

Test tiers: a test that uses (directly or through another fixture) a fixture that starts or
needs a service gets that service's marker at collection, so a new test cannot forget it. The
fast tier, with no service at all:

    .venv/bin/python -m pytest -q -p no:randomly \
        -m "not (kafka or elasticsearch or postgres or logstash or browser or stack or cluster)"

Tests that start a service without such a fixture (a scripts/*.sh subprocess, a container
namespace) carry an explicit `pytestmark` at the top of their module.

Tests run in parallel (pytest-xdist, `-n auto --dist loadgroup` in pyproject.toml): every test
with a tier marker joins one xdist group, `services`, so a single worker runs them in order and
starts each session service once, on the ports scripts/test.sh gave it; the tests of a module
with a module-scoped fixture join that module's group, so the fixture is built once; tests that
mostly wait on a clock carry `helpers.xdist.waits_on_a_clock`, so they wait in turn on one
worker rather than idling several at once; the other tests go to whichever worker is free.
`-n 0` runs everything in this process.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

import pytest

from fin_assets_tests.helpers.xdist import SERVICES_GROUP

pytest_plugins: list[str] = [
    "fin_assets_tests.fixtures.batch",
    "fin_assets_tests.fixtures.elasticsearch",
    "fin_assets_tests.fixtures.ui",
    "fin_assets_tests.fixtures.kafka",
    "fin_assets_tests.fixtures.postgres",
    "fin_assets_tests.fixtures.dagster_stack",
    "fin_assets_tests.fixtures.logstash",
]

# Service fixture -> the markers of what it starts or needs. Fixtures reached through another
# fixture's arguments are in a test's fixture closure already; `dagster_ui` asks for the Kafka
# broker at run time (request.getfixturevalue), hence its explicit `kafka`.
SERVICE_FIXTURES: dict[str, tuple[str, ...]] = {
    # fixtures/kafka.py
    "kafka_bootstrap_servers": ("kafka",),
    "private_broker_factory": ("kafka",),
    "secured_kafka": ("kafka",),
    "kafka_cluster": ("kafka", "cluster"),
    # fixtures/elasticsearch.py
    "elasticsearch_url": ("elasticsearch",),
    "es_client": ("elasticsearch",),
    "secured_elasticsearch": ("elasticsearch",),
    "elasticsearch_cluster": ("elasticsearch", "cluster"),
    # fixtures/postgres.py
    "postgres_server": ("postgres",),
    # fixtures/logstash.py: Logstash on the secured node and the session broker
    "logstash_stack": ("logstash", "kafka", "elasticsearch"),
    # fixtures/dagster_stack.py: the compose services in a namespace, on PostgreSQL and Kafka
    "dagster_stack": ("stack", "postgres", "kafka"),
    # fixtures/ui.py: `dagster dev` (its simulator job produces to Kafka) and Chromium
    "dagster_ui": ("browser", "kafka"),
    "ui_browser": ("browser",),
    "ui_page": ("browser", "kafka"),
}

TIER_MARKERS = ("kafka", "elasticsearch", "postgres", "logstash", "browser", "stack", "cluster")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    # Two workers per core: many fast tests wait (deadlines, locks, a subprocess), and a waiting
    # worker leaves its core to another. Capped: each worker imports Dagster (~300 MB).
    # PYTEST_XDIST_AUTO_NUM_WORKERS still wins, as pytest-xdist documents.
    if chosen := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").strip():
        return int(chosen)
    return min(8, 2 * (os.cpu_count() or 1))


def pytest_configure(config: pytest.Config) -> None:
    # A session started with SIGINT ignored (`scripts/test.sh &`, a CI runner's background
    # shell) would soon ignore SIGTERM too: Dagster points SIGTERM at SIGINT's handler each time
    # it restores it around user code. Every process started afterwards inherits that, and
    # Dagster's compute-log `tail -F` then outlives its SIGTERM: each run step waits 2 x 30 s for
    # it and leaves it running. Ctrl-C then raises KeyboardInterrupt, as in any pytest session.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _check_service_fixtures(config: pytest.Config) -> None:
    """A renamed fixture must not silently drop its tests out of their tier, and every tier
    marker must be registered (pyproject.toml [tool.pytest.ini_options] markers)."""
    modules = [importlib.import_module(name) for name in pytest_plugins]
    unknown = [name for name in SERVICE_FIXTURES if not any(hasattr(m, name) for m in modules)]
    if unknown:
        raise pytest.UsageError(
            f"conftest.SERVICE_FIXTURES names fixtures no plugin defines: {unknown}"
        )
    registered = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    used = {marker for markers in SERVICE_FIXTURES.values() for marker in markers}
    if missing := sorted((used | set(TIER_MARKERS)) - registered):
        raise pytest.UsageError(f"tier markers not registered in pyproject.toml: {missing}")


def _uses_a_shared_fixture(item: pytest.Item) -> bool:
    """True when the test uses a module-, class- or package-scoped fixture."""
    info = getattr(item, "_fixtureinfo", None)  # pytest's own record of the test's fixtures
    if info is None:
        return False
    return any(
        definitions[-1].scope in ("module", "class", "package")
        for definitions in info.name2fixturedefs.values()
        if definitions
    )


# First: the markers must be in place before `-m` deselects and before xdist reads the groups.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _check_service_fixtures(config)
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        present = {mark.name for mark in item.iter_markers()}
        for fixture in used.intersection(SERVICE_FIXTURES):
            for marker in SERVICE_FIXTURES[fixture]:
                if marker not in present:
                    item.add_marker(marker)
                    present.add(marker)
        if present.intersection(TIER_MARKERS):
            if other := [m.args for m in item.iter_markers("xdist_group")]:
                # xdist would join the names into another group, on another worker.
                raise pytest.UsageError(
                    f"{item.nodeid} needs a service, so its xdist group is "
                    f"{SERVICES_GROUP!r}; it also names {other}"
                )
            item.add_marker(pytest.mark.xdist_group(SERVICES_GROUP))
        elif item.get_closest_marker("xdist_group") is None and _uses_a_shared_fixture(item):
            # Its module's tests on one worker: a JRuby run, `dg check defs` or a parsed
            # pipeline is built once, not once per worker.
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


def pytest_collection_finish(session: pytest.Session) -> None:
    """In an xdist worker under `--dist loadgroup`, a grouped test's id ends in `@<group>`:
    that suffix is how the controller keeps a group on one worker. Without it the services
    would start on several workers at once, on the same ports (pytest-xdist#1386)."""
    if not session.config.getoption("loadgroup", False):
        return
    for item in session.items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            message = (
                f"pytest-xdist did not group {item.nodeid}: this pytest and pytest-xdist do not "
                "work together under --dist loadgroup (see pyproject.toml's pytest pin)"
            )
            print(f"\nERROR: {message}", file=sys.__stderr__, flush=True)  # a worker's own output
            raise pytest.UsageError(message)
