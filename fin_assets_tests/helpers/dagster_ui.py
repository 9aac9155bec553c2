"""The `dagster dev` the UI tests run against, apart from its fixture (fixtures/ui.py):
what it is started with, how it is started (its own session, default SIGINT/SIGTERM handling),
`DagsterUI` (the running server: its GraphQL calls, its folders, the stand-in it fetches
from), and what the UI is expected to show (the asset chains, groups and kinds, the simulator
job, sensor and schedule names), which the GraphQL and the browser tests both check.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from fin_assets.lib.alpha_vantage.stand_in import StandInServer
from fin_assets_tests.helpers.graphql import (
    DAEMON_QUERY,
    LOCATION_NAME,
    LOCATION_QUERY,
    GraphQLMixin,
)
from fin_assets_tests.helpers.paths import REPO

ARTIFACTS = REPO / "test-artifacts" / "ui"
SYMBOLS = "TSLA,IBM"
# Nothing listens here: without a test broker the simulator must never reach a developer's.
UNREACHABLE = "127.0.0.1:9"
# A killed simulator is declared dead after 25 s without heartbeat (10 s period), so the crash
# test needs no 3-minute wait.
STALE_AFTER_S = 25

INSTANCE_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_signals() -> None:
    # A parent started from a script may ignore SIGINT/SIGTERM; children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


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


def start_dagster_dev(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port)]
    return start_logged_process([*command, "-w", "workspace.yaml"], env, log_path)


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


# --- what the UI shows: checked through GraphQL (test_ui_graphql.py) and in Chromium
# (test_ui_browser.py) ------------------------------------------------------------------------

BATCH_CHAIN = [
    ("alpha_vantage_api", "alpha_vantage_daily_raw"),
    ("alpha_vantage_daily_raw", "daily_prices"),
    ("daily_prices", "datos_financieros_csv"),
]
SEARCH_BATCH_EDGE = ("datos_financieros_csv", "finanzas_batch")
NRT_CHAIN = [
    ("datos_financieros_csv", "transacciones_financieras"),
    ("transacciones_financieras", "transacciones_nrt"),
]
# Each asset's group (its flow) and the kinds that say what it is.
EXPECTED = {
    "alpha_vantage_api": ("batch", {"api"}),
    "alpha_vantage_daily_raw": ("batch", {"json"}),
    "daily_prices": ("batch", {"pandas"}),
    "datos_financieros_csv": ("batch", {"csv"}),
    "transacciones_financieras": ("near_real_time", {"kafka"}),
    "finanzas_batch": ("search", {"elasticsearch"}),
    "transacciones_nrt": ("search", {"elasticsearch"}),
}
SIMULATOR_JOB = "transaction_simulator_job"
SIMULATOR_SENSOR = "transaction_simulator_sensor"
SCHEDULE = "daily_batch_schedule"
