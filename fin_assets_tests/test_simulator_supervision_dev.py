"""Simulator supervision under a real `fin-assets dev` (dagster dev: webserver, daemon, code
server) with a real Kafka broker: two shards, a second launch of a shard waiting on the
concurrency limit, a paused worker replaced and fencing itself, a killed worker replaced, a
run failing at start backing off, and SIGTERM to `fin-assets dev` leaving nothing behind.

One `fin-assets dev` serves the whole module (the tests run in file order; the last one stops
it). Short supervision timings through the environment keep it to a few minutes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from fin_assets.defs.simulator.specs import (
    JOB_NAME,
    SENSOR_NAME,
    SHARD_TAG,
    WORKER_PID_TAG,
)
from fin_assets.lib.simulator.backoff import backoff_delay_s
from fin_assets.lib.simulator.shards import assign_shards
from fin_assets_tests.fixtures.kafka import read_topic
from fin_assets_tests.helpers.dagster_ui import free_port, start_logged_process
from fin_assets_tests.helpers.graphql import (
    LIVE_RUN_STATUSES,
    LOCATION_NAME,
    TRANSIENT,
    GraphQLMixin,
)
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.helpers.processes import (
    alive,
    descendants,
    group_members,
    same_process,
    start_time,
)

pytestmark = pytest.mark.kafka

SYMBOLS = "AAPL,IBM,MSFT,TSLA"
SHARDS = 2
HEARTBEAT_S = 1.0
STALE_AFTER_S = 10.0
BACKOFF_BASE_S = 4.0
BACKOFF_CAP_S = 16.0
SENSOR_INTERVAL_S = 1
LOG_NAME = "logs_transacciones.log"


@dataclass
class DevUnderTest(GraphQLMixin):
    process: subprocess.Popen
    port: int
    data_dir: Path
    topic: str
    bootstrap: str
    log_path: Path
    session: requests.Session = field(default_factory=requests.Session)
    # Every descendant seen, so that a failed test leaves no orphan behind (teardown kills).
    seen: dict[int, float | None] = field(default_factory=dict)  # pid -> start time

    def remember_tree(self) -> None:
        for pid in descendants(self.process.pid):
            self.seen.setdefault(pid, start_time(pid))

    def kill_leftovers(self) -> None:
        """SIGKILL remembered processes still alive, never a reused pid (start time checked)."""
        for pid, started in self.seen.items():
            if same_process(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    # --- questions the tests ask ---------------------------------------------------------

    def sim_runs(self, statuses: list[str] | None = None) -> list[dict[str, Any]]:
        runs = self.runs(job_name=JOB_NAME, statuses=statuses, limit=100)
        for run in runs:
            run["tagmap"] = {t["key"]: t["value"] for t in run["tags"]}
        return runs

    def started_by_shard(self) -> dict[str, dict[str, Any]]:
        """{shard: run} of STARTED runs whose op has stamped its worker pid."""
        found = {}
        for run in self.sim_runs(["STARTED"]):
            if WORKER_PID_TAG in run["tagmap"]:
                found.setdefault(run["tagmap"].get(SHARD_TAG, "0"), run)
        return found

    def skip_reasons(self) -> list[str]:
        data = self.graphql(SKIP_REASONS_QUERY, {"selector": self.sensor_selector(SENSOR_NAME)})
        return [t["skipReason"] or "" for t in data["sensorOrError"]["sensorState"]["ticks"]]

    def tick_count(self) -> int:
        data = self.graphql(TICK_COUNT_QUERY, {"selector": self.sensor_selector(SENSOR_NAME)})
        return len(data["sensorOrError"]["sensorState"]["ticks"])

    def events(self) -> list[dict[str, Any]]:
        return [event for _, _, event in read_topic(self.bootstrap, self.topic, timeout_s=60)]


SKIP_REASONS_QUERY = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 200) { skipReason } } }
  }
}
"""

TICK_COUNT_QUERY = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 1000) { timestamp } } }
  }
}
"""


def _parse_ts(event: dict[str, Any]) -> float:
    return datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def _by_run(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        grouped[event["run_id"]].append(event)
    return grouped


def _assert_no_overlap(events: list[dict[str, Any]], symbols: list[str]) -> None:
    """For the given symbols: the runs that produced them did so one after the other."""
    spans = sorted(
        (min(map(_parse_ts, evs)), max(map(_parse_ts, evs)), run_id)
        for run_id, evs in _by_run([e for e in events if e["symbol"] in symbols]).items()
    )
    for (_, end, before), (start, _, after) in zip(spans, spans[1:], strict=False):
        assert end < start, f"runs {before} and {after} both produced {symbols} at once"


@pytest.fixture(scope="module")
def dev(kafka_bootstrap_servers: str, tmp_path_factory) -> Iterator[DevUnderTest]:
    root = tmp_path_factory.mktemp("supervision")
    home, data = root / "dagster_home", root / "data"
    data.mkdir()
    topic = f"test_supervision_{uuid.uuid4().hex[:10]}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DAGSTER_", "FIN_", "ALPHAVANTAGE_", "KAFKA_"))
    }
    env.update(
        DAGSTER_HOME=str(home),  # empty: fin-assets dev writes its instance config there
        FIN_DATA_DIR=str(data),
        FIN_SYMBOLS=SYMBOLS,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap_servers,
        FIN_KAFKA_TOPIC=topic,
        FIN_SIMULATOR_SHARDS=str(SHARDS),
        FIN_SIMULATOR_RATE="4",
        FIN_SIMULATOR_HEARTBEAT_S=str(HEARTBEAT_S),
        FIN_SIMULATOR_STALE_AFTER_S=str(STALE_AFTER_S),
        FIN_SIMULATOR_BACKOFF_BASE_S=str(BACKOFF_BASE_S),
        FIN_SIMULATOR_BACKOFF_CAP_S=str(BACKOFF_CAP_S),
        FIN_SIMULATOR_SENSOR_INTERVAL_S=str(SENSOR_INTERVAL_S),
        ELASTICSEARCH_URL="http://127.0.0.1:9",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    log_path = root / "fin-assets-dev.log"
    process = start_logged_process(
        [sys.executable, "-m", "fin_assets.cli", "dev", "--port", str(port)], env, log_path
    )
    ui = DevUnderTest(process, port, data, topic, kafka_bootstrap_servers, log_path)
    try:

        def serving() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"fin-assets dev exited:\n{ui.log_tail()}")
            return requests.get(f"{ui.url}/server_info", timeout=2).status_code == 200

        wait_until(serving, 180, message="fin-assets dev to serve /server_info", ignore=TRANSIENT)

        def loaded() -> bool:
            entries = ui.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
            return any(e["name"] == LOCATION_NAME and e["loadStatus"] == "LOADED" for e in entries)

        wait_until(loaded, 180, message="the code location to load", ignore=TRANSIENT)
        assert ui.start_sensor(SENSOR_NAME) == "RUNNING"
        yield ui
    finally:
        # Normally the last test has stopped it; otherwise stop it the way a user would.
        if process.poll() is None:
            ui.remember_tree()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        ui.kill_leftovers()
        ui.session.close()


LOCATIONS = """
query { workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }
"""


def _both_shards_producing(dev: DevUnderTest, timeout: float = 180) -> dict[str, dict]:
    def ready():
        for tick in dev.sensor(SENSOR_NAME)["sensorState"]["ticks"][:1]:
            if tick["error"]:
                raise AssertionError(f"{SENSOR_NAME} tick failed: {tick['error']['message']}")
        runs = dev.started_by_shard()
        dev.remember_tree()
        return runs if set(runs) == {str(i) for i in range(SHARDS)} else None

    try:
        return wait_until(ready, timeout, message=f"{SHARDS} shard runs STARTED", ignore=TRANSIENT)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{dev.log_tail()}") from None


def test_each_shard_runs_once_on_its_own_symbols_and_a_second_launch_waits(dev: DevUnderTest):
    runs = _both_shards_producing(dev)
    expected = assign_shards(SYMBOLS.split(","), SHARDS)

    def every_symbol_seen():
        by_run = _by_run(dev.events())
        seen = {
            shard: {e["symbol"] for e in by_run.get(run["runId"], [])}
            for shard, run in runs.items()
        }
        # Never a symbol of another shard; wait until each shard's own have all shown up.
        for shard, symbols in seen.items():
            assert symbols <= set(expected[int(shard)]), (shard, symbols, expected)
        return all(seen[s] == set(expected[int(s)]) for s in seen)

    wait_until(
        every_symbol_seen,
        90,
        message="each shard run's events for all of its symbols",
        ignore=TRANSIENT,
    )

    # A second launch of shard 0 (as from the launchpad, with the job's default shard tag):
    # it waits QUEUED on the instance's one-run-per-shard limit while shard 0 runs.
    second = dev.client().submit_job_execution(JOB_NAME, tags={SHARD_TAG: "0"})
    ticks = dev.tick_count()
    wait_until(
        lambda: dev.tick_count() >= ticks + 5,
        60,
        message="five more sensor ticks",
        ignore=TRANSIENT,
    )
    assert dev.run_status(second) == "QUEUED"
    assert dev.started_by_shard()["0"]["runId"] == runs["0"]["runId"]
    dev.client().terminate_run(second)
    assert dev.wait_run(second, {"CANCELED"}, timeout=60) == "CANCELED"


def test_a_paused_worker_is_replaced_and_never_produces_again(dev: DevUnderTest):
    paused = _both_shards_producing(dev)["0"]
    pid = int(paused["tagmap"][WORKER_PID_TAG])
    os.kill(pid, signal.SIGSTOP)
    stopped_at = time.time()
    try:

        def replacement():
            run = dev.started_by_shard().get("0")
            return run if run and run["runId"] != paused["runId"] else None

        new = wait_until(
            replacement,
            120,
            message="the sensor to replace the paused shard-0 run",
            ignore=TRANSIENT,
        )
        new_events = lambda: [e for e in dev.events() if e["run_id"] == new["runId"]]  # noqa: E731
        wait_until(new_events, 60, message="events from the replacement", ignore=TRANSIENT)
    finally:
        # The sensor SIGKILLs a stale worker on this host; should it still exist, resume it.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    resumed_at = time.time()
    wait_until(
        lambda: not alive(pid), 90, message=f"the resumed worker {pid} to exit", ignore=TRANSIENT
    )

    # Marked failed by the sensor; if the termination the sensor sent lands first on resume,
    # Dagster ends it CANCELED instead. Either way it stopped without producing.
    assert dev.run_status(paused["runId"]) in {"FAILURE", "CANCELED"}
    events = dev.events()
    old = [_parse_ts(e) for e in events if e["run_id"] == paused["runId"]]
    # Nothing generated while paused or after resuming (1 s of slack for the clock's ms).
    assert max(old) < stopped_at + 1, (max(old), stopped_at, resumed_at)
    _assert_no_overlap(events, assign_shards(SYMBOLS.split(","), SHARDS)[0])


def test_a_killed_worker_is_replaced(dev: DevUnderTest):
    killed = _both_shards_producing(dev)["1"]
    pid = int(killed["tagmap"][WORKER_PID_TAG])
    os.kill(pid, signal.SIGKILL)

    def replacement():
        run = dev.started_by_shard().get("1")
        return run if run and run["runId"] != killed["runId"] else None

    new = wait_until(
        replacement, 120, message="the sensor to replace the killed shard-1 run", ignore=TRANSIENT
    )
    wait_until(
        lambda: any(e["run_id"] == new["runId"] for e in dev.events()),
        60,
        message="replacement events",
        ignore=TRANSIENT,
    )
    assert dev.run_status(killed["runId"]) == "FAILURE"
    _assert_no_overlap(dev.events(), assign_shards(SYMBOLS.split(","), SHARDS)[1])


def test_a_run_failing_at_start_is_replaced_with_growing_backoff(dev: DevUnderTest):
    runs = _both_shards_producing(dev)
    # The topic turns compacted on the broker: every new run refuses it at start (a compacted
    # stream loses events), until the policy is set back. (An unwritable transactions log no
    # longer fails a run: the feed goes on without it.)
    set_cleanup_policy(dev, "compact")
    try:
        for run in runs.values():
            dev.client().terminate_run(run["runId"])

        def shard0_failures():
            records = _run_records(dev, shard="0", after=runs["0"]["runId"])
            failed = [r for r in records if r["status"] == "FAILURE"]
            return failed if len(failed) >= 4 else None

        wait_until(shard0_failures, 240, message="four failed starts of shard 0", ignore=TRANSIENT)
        reasons = dev.skip_reasons()
        assert any("shard 0: backing off after" in reason for reason in reasons), reasons
    finally:
        set_cleanup_policy(dev, "delete")

    records = _run_records(dev, shard="0", after=runs["0"]["runId"])
    assert [r["status"] for r in records[:4]] == ["FAILURE"] * 4, records
    # The wait between a failure's end and the next launch is at least the backoff delay
    # (plus the sensor's and the queue's own latency).
    waits = [records[i + 1]["creationTime"] - records[i]["endTime"] for i in range(3)]
    for index, wait in enumerate(waits, start=1):
        assert wait >= backoff_delay_s(index, BACKOFF_BASE_S, BACKOFF_CAP_S) - 0.5, waits
    # Fixed: the next launch after the backoff runs.
    _both_shards_producing(dev, timeout=120)


def set_cleanup_policy(dev: DevUnderTest, policy: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=dev.bootstrap)
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, dev.topic, {"cleanup.policy": policy})
        admin.alter_configs([resource])
    finally:
        admin.close()


RUN_TIMES_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter, limit: 200) {
    ... on Runs { results { runId status creationTime startTime endTime tags { key value } } }
  }
}
"""


def _run_records(dev: DevUnderTest, shard: str, after: str) -> list[dict[str, Any]]:
    """Shard runs created after run `after`, oldest first."""
    results = dev.graphql(RUN_TIMES_QUERY, {"filter": {"pipelineName": JOB_NAME}})
    runs = results["runsOrError"]["results"][::-1]
    ids = [r["runId"] for r in runs]
    runs = runs[ids.index(after) + 1 :]
    return [r for r in runs if {"key": SHARD_TAG, "value": shard} in r["tags"]]


def test_sigterm_to_fin_assets_dev_stops_everything_it_started(dev: DevUnderTest):
    runs = _both_shards_producing(dev)
    workers = {int(run["tagmap"][WORKER_PID_TAG]) for run in runs.values()}
    tree = descendants(dev.process.pid)
    assert workers <= tree, (workers, tree)
    pgids = {os.getpgid(pid) for pid in tree if alive(pid)}

    dev.process.send_signal(signal.SIGTERM)
    dev.process.wait(timeout=120)
    stopped_at = time.time()

    def nothing_left():
        return not (
            {pid for pgid in pgids for pid in group_members(pgid)} | {p for p in tree if alive(p)}
        )

    wait_until(
        nothing_left, 30, message="every process fin-assets dev started to exit", ignore=TRANSIENT
    )
    assert dev.process.returncode == 0, dev.log_tail()
    # Graceful: each simulator ran its termination path (counts recorded, run CANCELED).
    from dagster import DagsterInstance, DagsterRunStatus

    home = dev.log_path.parent / "dagster_home"
    with DagsterInstance.from_config(str(home)) as instance:
        for run in runs.values():
            assert instance.get_run_by_id(run["runId"]).status == DagsterRunStatus.CANCELED
        assert not [
            r
            for r in instance.get_runs()
            if r.job_name == JOB_NAME and r.status.value in LIVE_RUN_STATUSES
        ]
    last = max(_parse_ts(e) for e in dev.events())
    assert last <= stopped_at, (last, stopped_at)
