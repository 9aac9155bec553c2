"""The Dagster UI as users meet it: the fixtures only (the server, the GraphQL client and the
Playwright helpers they use are in fin_assets_tests/helpers/: dagster_ui.py, graphql.py,
browser.py, processes.py).

- `dagster_ui`: `dagster dev` on 127.0.0.1 (webserver and daemon) for the whole session, on
  the local Alpha Vantage stand-in, with its own DAGSTER_HOME and data folder. It runs in its
  own process group with default SIGINT/SIGTERM handling (a scripted `dagster dev` otherwise
  ignores them); teardown stops the whole group and asserts that nothing of it is left.
- `ui_browser` / `ui_page`: Debian's Chromium driven by Playwright (sync API), a 1400x900 page
  that dismisses the first-visit "Join the Dagster community" dialog as a user would.
- `shots`: screenshots of each step under test-artifacts/ui/<test>/.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fin_assets.lib.alpha_vantage.stand_in import StandInServer
from fin_assets_tests.helpers.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SKIP,
    VIEWPORT,
    Shots,
    community_dialog,
    skip_community_dialog,
)
from fin_assets_tests.helpers.dagster_ui import (
    ARTIFACTS,
    INSTANCE_YAML,
    STALE_AFTER_S,
    SYMBOLS,
    UNREACHABLE,
    DagsterUI,
    free_port,
    start_dagster_dev,
)
from fin_assets_tests.helpers.graphql import LOCATION_NAME, TRANSIENT
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.helpers.processes import group_members, stop_process_group
from fin_assets_tests.prerequisites import missing


def _kafka_bootstrap(request: pytest.FixtureRequest) -> tuple[str | None, str]:
    """The broker the simulator job produces to, or (None, why there is none)."""
    if os.environ.get("FIN_TEST_SERVICES") == "1" and os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"], ""
    # The simulator flow's plugin (kafka_fixtures.py): the session broker, or a throwaway one.
    try:
        value = request.getfixturevalue("kafka_bootstrap_servers")
    except pytest.FixtureLookupError:
        pass
    except pytest.skip.Exception as exc:
        return None, f"no Kafka broker for the simulator job: {exc}"
    else:
        if isinstance(value, str) and value:
            return value, ""
    return None, (
        "no Kafka broker for the simulator job: run through scripts/test.sh (FIN_TEST_SERVICES=1 "
        "with KAFKA_BOOTSTRAP_SERVERS) or provide a session broker fixture in "
        "fin_assets_tests/kafka_fixtures.py"
    )


@pytest.fixture(scope="session")
def dagster_ui(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[DagsterUI]:
    """`dagster dev` on the stand-in, started once per session and stopped with its group."""
    kafka, kafka_reason = _kafka_bootstrap(request)
    root = tmp_path_factory.mktemp("dagster_ui")
    home, data = root / "dagster_home", root / "data"
    home.mkdir()
    data.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "dagster-dev.log"

    with StandInServer() as stand_in:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DAGSTER_", "FIN_", "ALPHAVANTAGE_", "KAFKA_"))
        }
        env.update(
            DAGSTER_HOME=str(home),
            FIN_DATA_DIR=str(data),
            FIN_SYMBOLS=SYMBOLS,
            ALPHAVANTAGE_API_KEY="stand-in",
            ALPHAVANTAGE_BASE_URL=stand_in.url,
            KAFKA_BOOTSTRAP_SERVERS=kafka or UNREACHABLE,
            ELASTICSEARCH_URL=os.environ.get("ELASTICSEARCH_URL", f"http://{UNREACHABLE}")
            if os.environ.get("FIN_TEST_SERVICES") == "1"
            else f"http://{UNREACHABLE}",
            PYTHONUNBUFFERED="1",
            FIN_SIMULATOR_STALE_AFTER_S=str(STALE_AFTER_S),
        )
        if os.environ.get("FIN_TEST_SERVICES") == "1":
            env["FIN_TEST_SERVICES"] = "1"
        port = free_port()
        process = start_dagster_dev(port, env, log_path)
        ui = DagsterUI(port, process, home, data, log_path, stand_in, kafka, kafka_reason)
        try:

            def serving() -> bool:
                if process.poll() is not None:
                    raise AssertionError(
                        f"dagster dev exited with {process.returncode}:\n{ui.log_tail()}"
                    )
                return requests.get(f"{ui.url}/server_info", timeout=2).status_code == 200

            wait_until(serving, 120, message="dagster dev to serve /server_info", ignore=TRANSIENT)
            wait_until(
                ui.location_status,
                120,
                message=f"code location {LOCATION_NAME} to load",
                ignore=TRANSIENT,
            )
            yield ui
        finally:
            # A run still going (the simulator) would outlive dagster dev as an orphan.
            leftover_runs: list[str] = []
            if process.poll() is None:
                with contextlib.suppress(Exception):
                    leftover_runs = ui.terminate_live_runs(timeout=60)
            ui.session.close()
            # Twice SIGTERM: dagster dev may restart its code server when that one exits on
            # the first, before dagster dev shuts down itself.
            killed = stop_process_group(process.pid, 30.0, popen=process, sigterm_rounds=2)
            left = group_members(process.pid)
            assert not left, f"dagster dev processes survived SIGKILL: {left}"
            assert not killed, (
                f"dagster dev's group ignored SIGTERM; SIGKILLed {killed}\n{ui.log_tail()}"
            )
            assert not leftover_runs, (
                f"runs still live at session end (terminated): {leftover_runs}"
            )


@pytest.fixture(scope="session")
def ui_browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright; never a downloaded browser."""
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} missing: run scripts/apt_deps.sh")
    from playwright.sync_api import expect, sync_playwright

    # The UI on 2 busy cores can take more than Playwright's default 5 s to render a page.
    expect.set_options(timeout=20_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so that ui_page can screenshot a failed test."""
    report = yield
    setattr(item, f"ui_report_{report.when}", report)
    return report


@pytest.fixture
def ui_page(request: pytest.FixtureRequest, ui_browser, dagster_ui: DagsterUI) -> Iterator[Any]:
    """A fresh 1400x900 page on the UI's overview, first-visit dialog dismissed with "Skip"."""
    context = ui_browser.new_context(viewport=VIEWPORT, base_url=dagster_ui.url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        page.goto("/overview")
        page.get_by_role("link", name="Runs").first.wait_for()
        if not dagster_ui.community_dialog_handled:
            # The dialog comes after the page's first queries: give it a few seconds, once.
            dagster_ui.community_dialog_handled = True
            skip_community_dialog(page, wait_ms=8_000)
        # Should it come back (another Dagster version, another trigger), Skip it again before
        # any later action.
        page.add_locator_handler(
            community_dialog(page),
            lambda dialog: dialog.get_by_role("button", name=SKIP).click(),
        )
        yield page
        report = getattr(request.node, "ui_report_call", None)
        if report is not None and report.failed:
            folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / "failure.png"))
    finally:
        context.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return Shots(ARTIFACTS / name)
