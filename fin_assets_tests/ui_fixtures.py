"""The Dagster UI as users meet it: `dagster dev` once per session, GraphQL, Chromium.

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
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from fin_assets.lib.alpha_vantage.stand_in import StandInServer
from fin_assets_tests.prerequisites import missing

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 900}
LOCATION_NAME = "fin_assets.definitions"
SYMBOLS = "TSLA,IBM"
# Nothing listens here: without a test broker the simulator must never reach a developer's.
UNREACHABLE = "127.0.0.1:9"

INSTANCE_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""

LOCATION_QUERY = """
query Locations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

DAEMON_QUERY = """
query Daemons {
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""


class GraphQLError(AssertionError):
    pass


STALE_AFTER_S = 25


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5
) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except (requests.RequestException, GraphQLError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _default_signals() -> None:
    # A parent started from a script may ignore SIGINT/SIGTERM; children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


REPOSITORY = "__repository__"
LIVE_RUN_STATUSES = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]
FINISHED_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}

ASSET_NODES_QUERY = """
query AssetNodes {
  assetNodes {
    assetKey { path }
    dependencyKeys { path }
    groupName
    kinds
    description
    isExecutable
    metadataEntries { label }
  }
}
"""

RUNS_QUERY = """
query Runs($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { runId jobName status tags { key value } } }
    ... on PythonError { message }
  }
}
"""

RUN_LOGS_QUERY = """
query RunLogs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message level stepKey }
        ... on ExecutionStepFailureEvent { error { message } }
      }
    }
  }
}
"""

METADATA_FIELDS = """
metadataEntries {
  label
  __typename
  ... on TextMetadataEntry { text }
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on BoolMetadataEntry { boolValue }
  ... on PathMetadataEntry { path }
  ... on MarkdownMetadataEntry { mdStr }
  ... on JsonMetadataEntry { jsonString }
  ... on TableMetadataEntry { table { records schema { columns { name } } } }
}
"""

LATEST_MATERIALIZATION_QUERY = """
query Latest($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 1) { runId timestamp description METADATA }
    }
  }
}
""".replace("METADATA", METADATA_FIELDS)

SENSOR_QUERY = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      name
      minIntervalSeconds
      targets { pipelineName }
      sensorState { id status ticks(limit: 5) { status runIds skipReason error { message } } }
    }
    ... on PythonError { message }
  }
}
"""

START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}
"""

STOP_SENSOR = """
mutation Stop($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}
"""

SCHEDULE_QUERY = """
query Schedule($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    __typename
    ... on Schedule {
      name
      cronSchedule
      executionTimezone
      pipelineName
      scheduleState { id status }
    }
    ... on PythonError { message }
  }
}
"""

START_SCHEDULE = """
mutation Start($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}
"""

STOP_SCHEDULE = """
mutation Stop($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}
"""


def metadata_values(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """GraphQL metadata entries as {label: value}."""
    values: dict[str, Any] = {}
    for entry in entries:
        value: Any = None
        for name in ("text", "intValue", "floatValue", "boolValue", "path", "mdStr"):
            if entry.get(name) is not None:
                value = entry[name]
                break
        if entry.get("table") is not None:
            value = entry["table"]
        if entry.get("jsonString") is not None:
            value = entry["jsonString"]
        values[entry["label"]] = value
    return values


BACKFILL_QUERY = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
  }
}
"""

BACKFILL_RUNS_QUERY = """
query BackfillRuns($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) {
    ... on Runs {
      results { runId status assetSelection { path } tags { key value } }
    }
  }
}
"""


BACKFILL_RUNS_QUERY_BY_ID = """
query RunsById($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) {
    ... on Runs {
      results { runId status assetSelection { path } tags { key value } }
    }
  }
}
"""


class GraphQLMixin:
    """The GraphQL calls the tests share (one method per question a test asks), for a webserver
    at `self.port` with a `requests` `self.session` and its log at `self.log_path`."""

    port: int
    session: requests.Session
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /graphql; returns `data`, raises GraphQLError on transport or GraphQL errors."""
        response = self.session.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        if response.status_code != 200:
            raise GraphQLError(f"HTTP {response.status_code}: {response.text[:500]}")
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def client(self):
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def asset_nodes(self) -> dict[str, dict[str, Any]]:
        nodes = self.graphql(ASSET_NODES_QUERY)["assetNodes"]
        return {"/".join(n["assetKey"]["path"]): n for n in nodes}

    def runs(self, job_name: str | None = None, statuses: list[str] | None = None, limit=20):
        run_filter: dict[str, Any] = {}
        if job_name:
            run_filter["pipelineName"] = job_name
        if statuses:
            run_filter["statuses"] = statuses
        data = self.graphql(RUNS_QUERY, {"filter": run_filter, "limit": limit})["runsOrError"]
        if data["__typename"] != "Runs":
            raise GraphQLError(f"runsOrError: {data}")
        return data["results"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        """A backfill's status and its runs (id, status, partition tags)."""
        data = self.graphql(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        if data["__typename"] != "PartitionBackfill":
            raise GraphQLError(f"partitionBackfillOrError: {data}")
        runs = self.graphql(
            BACKFILL_RUNS_QUERY, {"tags": [{"key": "dagster/backfill", "value": backfill_id}]}
        )["runsOrError"]["results"]
        return {"status": data["status"], "runs": runs}

    def backfill_runs_by_id(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Runs (id, status, asset selection, tags), as `backfill` lists them."""
        runs = self.graphql(BACKFILL_RUNS_QUERY_BY_ID, {"ids": run_ids})["runsOrError"]
        return runs["results"]

    def wait_backfill(self, backfill_id: str, timeout: float) -> dict[str, Any]:
        """Poll until the backfill is done (its daemon launches the runs one after the other)."""

        def done() -> dict[str, Any] | None:
            backfill = self.backfill(backfill_id)
            return backfill if backfill["status"] not in ("REQUESTED", "CANCELING") else None

        return wait_until(done, timeout, f"backfill {backfill_id} to finish")

    def run_status(self, run_id: str) -> str:
        runs = self.graphql(RUNS_QUERY, {"filter": {"runIds": [run_id]}, "limit": 1})
        results = runs["runsOrError"]["results"]
        if not results:
            raise GraphQLError(f"run {run_id} not found")
        return results[0]["status"]

    def wait_run(self, run_id: str, statuses: set[str], timeout: float) -> str:
        """Poll until the run reaches one of `statuses` (or any other finished status)."""
        seen: list[str] = []

        def reached() -> str | None:
            status = self.run_status(run_id)
            if not seen or seen[-1] != status:
                seen.append(status)
            if status in statuses or status in FINISHED_RUN_STATUSES:
                return status
            return None

        status = wait_until(reached, timeout, f"run {run_id} to reach {sorted(statuses)}")
        return status

    def run_messages(self, run_id: str) -> list[dict[str, Any]]:
        data = self.graphql(RUN_LOGS_QUERY, {"runId": run_id})["logsForRun"]
        if data["__typename"] != "EventConnection":
            raise GraphQLError(f"logsForRun: {data}")
        return data["events"]

    def latest_materialization(self, key: str) -> dict[str, Any] | None:
        data = self.graphql(LATEST_MATERIALIZATION_QUERY, {"key": {"path": key.split("/")}})
        asset = data["assetOrError"]
        if asset["__typename"] != "Asset" or not asset["assetMaterializations"]:
            return None
        event = asset["assetMaterializations"][0]
        return {**event, "metadata": metadata_values(event["metadataEntries"])}

    def sensor_selector(self, name: str) -> dict[str, str]:
        return {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": REPOSITORY,
            "sensorName": name,
        }

    def schedule_selector(self, name: str) -> dict[str, str]:
        return {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": REPOSITORY,
            "scheduleName": name,
        }

    def sensor(self, name: str) -> dict[str, Any] | None:
        data = self.graphql(SENSOR_QUERY, {"selector": self.sensor_selector(name)})
        sensor = data["sensorOrError"]
        return sensor if sensor["__typename"] == "Sensor" else None

    def schedule(self, name: str) -> dict[str, Any] | None:
        data = self.graphql(SCHEDULE_QUERY, {"selector": self.schedule_selector(name)})
        schedule = data["scheduleOrError"]
        return schedule if schedule["__typename"] == "Schedule" else None

    def start_sensor(self, name: str) -> str:
        result = self.graphql(START_SENSOR, {"selector": self.sensor_selector(name)})
        return result["startSensor"]["sensorState"]["status"]

    def stop_sensor(self, name: str) -> str:
        state_id = self.sensor(name)["sensorState"]["id"]
        result = self.graphql(STOP_SENSOR, {"id": state_id})["stopSensor"]
        return result["instigationState"]["status"]

    def start_schedule(self, name: str) -> str:
        result = self.graphql(START_SCHEDULE, {"selector": self.schedule_selector(name)})
        return result["startSchedule"]["scheduleState"]["status"]

    def stop_schedule(self, name: str) -> str:
        state_id = self.schedule(name)["scheduleState"]["id"]
        result = self.graphql(STOP_SCHEDULE, {"id": state_id})["stopRunningSchedule"]
        return result["scheduleState"]["status"]

    def terminate_live_runs(self, timeout: float = 60.0) -> list[str]:
        """Terminate every queued or running run; wait until they are finished."""
        live = [r["runId"] for r in self.runs(statuses=LIVE_RUN_STATUSES, limit=50)]
        if live:
            self.client().terminate_runs(live)
            for run_id in live:
                self.wait_run(run_id, FINISHED_RUN_STATUSES, timeout)
        return live


@dataclass
class DagsterUI(GraphQLMixin):
    """A running `dagster dev` and what it was started with."""

    port: int
    process: subprocess.Popen
    dagster_home: Path
    data_dir: Path
    log_path: Path
    stand_in: StandInServer
    kafka_bootstrap: str | None
    kafka_reason: str = ""
    community_dialog_handled: bool = False
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def csv_path(self) -> Path:
        return self.data_dir / "Datos_financieros.csv"

    def location_status(self) -> str | None:
        """None while loading; "loaded" once the repository is there; raises on a load error."""
        data = self.graphql(LOCATION_QUERY)["workspaceOrError"]
        if data["__typename"] != "Workspace":
            raise AssertionError(f"workspace error: {data}")
        for entry in data["locationEntries"]:
            if entry["name"] != LOCATION_NAME:
                continue
            location = entry["locationOrLoadError"]
            if location is None:
                return None
            if location["__typename"] == "PythonError":
                raise AssertionError(
                    f"code location {LOCATION_NAME} failed to load:\n{location['message']}"
                    f"\n{''.join(location['stack'])}"
                )
            if location["repositories"]:
                return "loaded"
        return None

    def daemons_healthy(self, *types: str) -> bool:
        statuses = self.graphql(DAEMON_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        healthy = {s["daemonType"] for s in statuses if s["healthy"]}
        return set(types) <= healthy


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


def start_logged_process(command: list[str], env: dict[str, str], log_path: Path):
    """`command` from the repo in its own session (stopped by process group), output to
    `log_path`, with default SIGINT/SIGTERM handling whatever the test runner ignores."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )


def _start_dagster_dev(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port)]
    return start_logged_process([*command, "-w", "workspace.yaml"], env, log_path)


def _wait_group_empty(pgid: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := group_pids(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def stop_process_group(process: subprocess.Popen, grace: float = 30.0) -> list[int]:
    """SIGTERM the group, wait; SIGTERM what is left once more; SIGKILL what still remains.

    Returns the pids that needed SIGKILL. The second SIGTERM is for a race in `dagster dev`:
    when its code server exits on the group's SIGTERM, dagster dev may restart it before it
    shuts down itself, and that new process never got the first signal.
    """
    pgid = process.pid  # start_new_session: the leader's pid is the group id
    for _ in range(2):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        if not _wait_group_empty(pgid, 10):
            return []
    killed = group_pids(pgid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    _wait_group_empty(pgid, 10)
    return killed


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
            # A killed simulator is declared dead after 25 s without heartbeat (10 s period),
            # so the crash test needs no 3-minute wait.
            FIN_SIMULATOR_STALE_AFTER_S=str(STALE_AFTER_S),
        )
        if os.environ.get("FIN_TEST_SERVICES") == "1":
            env["FIN_TEST_SERVICES"] = "1"
        port = free_port()
        process = _start_dagster_dev(port, env, log_path)
        ui = DagsterUI(port, process, home, data, log_path, stand_in, kafka, kafka_reason)
        try:

            def serving() -> bool:
                if process.poll() is not None:
                    raise AssertionError(
                        f"dagster dev exited with {process.returncode}:\n{ui.log_tail()}"
                    )
                return requests.get(f"{ui.url}/server_info", timeout=2).status_code == 200

            wait_until(serving, 120, "dagster dev to serve /server_info")
            wait_until(ui.location_status, 120, f"code location {LOCATION_NAME} to load")
            yield ui
        finally:
            # A run still going (the simulator) would outlive dagster dev as an orphan.
            leftover_runs: list[str] = []
            if process.poll() is None:
                with contextlib.suppress(Exception):
                    leftover_runs = ui.terminate_live_runs(timeout=60)
            ui.session.close()
            killed = stop_process_group(process)
            left = group_pids(process.pid)
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


COMMUNITY_DIALOG = re.compile("Join the Dagster community", re.I)
SKIP = re.compile(r"^\s*skip\s*$", re.I)


def community_dialog(page):
    return page.get_by_role("dialog").filter(has_text=COMMUNITY_DIALOG)


def skip_community_dialog(page, wait_ms: float) -> bool:
    """Click "Skip" on the first-visit dialog if it shows within `wait_ms`, as a user would.

    Dagster remembers the choice on the instance (not in the browser): after the first "Skip"
    of the session, later pages never show it.
    """
    dialog = community_dialog(page)
    try:
        dialog.wait_for(state="visible", timeout=wait_ms)
    except Exception:  # playwright TimeoutError: no dialog this time
        return False
    dialog.get_by_role("button", name=SKIP).click()
    dialog.wait_for(state="hidden")
    return True


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


FULLY_OPAQUE = """element => {
    for (let e = element; e; e = e.parentElement)
        if (getComputedStyle(e).opacity !== "1") return false;
    return true;
}"""


def wait_until_opaque(locator, timeout_ms: float = 10_000) -> None:
    """Until `locator` and its ancestors are fully opaque: a dialog that is still fading in
    would be screenshotted half transparent."""
    locator.page.wait_for_function(FULLY_OPAQUE, arg=locator.element_handle(), timeout=timeout_ms)


class Shots:
    """Numbered screenshots of one test's steps under test-artifacts/ui/<test>/."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    def __call__(self, page, step: str, full_page: bool = False) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return Shots(ARTIFACTS / name)
