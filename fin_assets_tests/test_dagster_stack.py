"""The Dagster side of the docker stack, for real (fixtures/dagster_stack.py): installed by the
Dockerfile's pip commands, the compose services as separate processes (stand-in, code server
over gRPC, webserver, daemon) at their container paths, on a real PostgreSQL 15 and Kafka.

A user's deployment: runs are launched from the webserver, queued, picked up by the daemon,
executed by the code server, and every trace of them is in Postgres."""

from __future__ import annotations

import csv
import json
import time

import pytest
import yaml

from fin_assets.defs.batch.partitions import range_tags
from fin_assets_tests.fixtures.dagster_stack import ARTIFACTS, DagsterStack
from fin_assets_tests.fixtures.kafka import read_topic
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.helpers.processes import command_line, pids_in_namespace

BATCH_JOB = "daily_batch_job"
SIMULATOR_JOB = "transaction_simulator_job"
SIMULATOR_SENSOR = "transaction_simulator_sensor"
SHARD_TAG = "fin_assets/shard"
FINAL = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""
START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""
RUN_DETAILS = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runConfigYaml tags { key value } }
  }
}"""

RUN_STATUS = """
query Run($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }"""
CAPTURED_LOGS = """
query Logs($logKey: [String!]!) { capturedLogs(logKey: $logKey) { stdout stderr } }"""

MEASUREMENTS: dict[str, object] = {}
BATCH_RUNS: list[str] = []


def launch(stack: DagsterStack, job: str, run_config: dict | None = None,
           tags: dict[str, str] | None = None) -> tuple[str, str]:  # fmt: skip
    params = {
        "selector": stack.job_selector(job),
        "runConfigData": run_config or {},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
    }
    result = stack.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", f"launching {job}: {result}"
    return result["run"]["runId"], result["run"]["status"]


def batch_range(symbols: list[str]) -> dict[str, str]:
    """The tags of one batch run over the symbol partitions first..last, as the schedule
    launches it (a single-run backfill over a key range)."""
    return range_tags(symbols[0], symbols[-1])


def run_status(stack: DagsterStack, run_id: str) -> str:
    ((status,),) = stack.sql("SELECT status FROM runs WHERE run_id = %s", (run_id,))
    return status


def failure_text(stack: DagsterStack, run_id: str) -> str:
    rows = stack.sql(
        "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type IN "
        "('STEP_FAILURE', 'PIPELINE_FAILURE', 'ENGINE_EVENT') ORDER BY id",
        (run_id,),
    )
    messages = []
    for (event,) in rows:
        body = json.loads(event)
        messages.append(body.get("user_message", ""))
        error = ((body.get("dagster_event") or {}).get("event_specific_data") or {}).get("error")
        if error:
            messages.append(json.dumps(error)[:2000])
    return "\n".join(messages)[-6000:]


def wait_for(stack: DagsterStack, condition, timeout_s: float, what: str):
    """Polls `condition()` until it returns something truthy; fails naming `what`, with the
    services' logs, after `timeout_s`."""
    return wait_until(condition, timeout_s, 1.0, message=what, detail=stack.all_logs)


def wait_final(stack: DagsterStack, run_id: str, timeout_s: float = 420.0) -> str:
    return wait_for(
        stack,
        lambda: (s := run_status(stack, run_id)) in FINAL and s,
        timeout_s,
        f"run {run_id} to end",
    )


def event_types(stack: DagsterStack, run_id: str) -> list[str]:
    rows = stack.sql(
        "SELECT dagster_event_type FROM event_logs WHERE run_id = %s "
        "AND dagster_event_type IS NOT NULL ORDER BY id",
        (run_id,),
    )
    return [t for (t,) in rows]


def simulator_runs(stack: DagsterStack, status: str) -> dict[str, str]:
    """run_id -> shard tag of the simulator runs in `status`."""
    rows = stack.sql(
        "SELECT r.run_id, t.value FROM runs r LEFT JOIN run_tags t"
        " ON t.run_id = r.run_id AND t.key = %s WHERE r.pipeline_name = %s AND r.status = %s",
        (SHARD_TAG, SIMULATOR_JOB, status),
    )
    return dict(rows)


def test_stack_starts_from_the_compose_file(dagster_stack: DagsterStack):
    """pip check passed in the image's venv; the daemon's loops report to Postgres."""
    assert dagster_stack.venv.pip_check == "No broken requirements found."
    daemons = wait_for(
        dagster_stack,
        lambda: (
            {t for (t,) in dagster_stack.sql("SELECT daemon_type FROM daemon_heartbeats")}
            >= {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"}
            and dagster_stack.sql("SELECT daemon_type FROM daemon_heartbeats")
        ),
        180,
        "the daemon's heartbeats in Postgres",
    )
    assert daemons
    MEASUREMENTS.update(dagster_stack.timings)


def test_batch_run_from_the_webserver_is_queued_run_by_the_daemon_and_stored(
    dagster_stack: DagsterStack,
):
    """No API key (the .env.example default): the stand-in service serves the prices."""
    symbols = dagster_stack.services["dagster-code-server"]["environment"]["FIN_SYMBOLS"]
    run_id, status = launch(dagster_stack, BATCH_JOB, tags=batch_range(symbols.split(",")))
    assert status == "QUEUED"  # the webserver only enqueues; the daemon launches

    started = time.monotonic()
    final = wait_final(dagster_stack, run_id)
    assert final == "SUCCESS", failure_text(dagster_stack, run_id)
    MEASUREMENTS["batch_run_seconds"] = round(time.monotonic() - started, 1)

    types = event_types(dagster_stack, run_id)
    # ENQUEUED: the webserver's submission; STARTING: the daemon's launch through the code
    # server; START: the run worker.
    lifecycle = ["PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_START", "PIPELINE_SUCCESS"]
    assert [t for t in types if t in lifecycle] == lifecycle
    assert "ASSET_MATERIALIZATION" in types

    # The CSV in the host folder that compose shares with Logstash, every configured symbol.
    env = dagster_stack.services["dagster-code-server"]["environment"]
    assert env["ALPHAVANTAGE_API_KEY"] == ""
    csv_path = dagster_stack.data_dir / "Datos_financieros.csv"
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["simbolo"] for r in rows} == set(env["FIN_SYMBOLS"].split(","))
    # The run says where the prices came from (the UI shows this warning and metadata).
    ((said,),) = dagster_stack.sql(
        "SELECT count(*) FROM event_logs WHERE run_id = %s AND event LIKE %s",
        (run_id, "%SYNTHETIC%"),
    )
    assert said > 0

    # Compute logs on the dagster_storage volume, where the webserver reads them.
    storage = dagster_stack.volume_dirs["dagster_storage"]
    assert any(run_id in str(p) for p in storage.rglob("*") if p.is_file()), "no compute logs"

    BATCH_RUNS.append(run_id)
    ((count, size),) = dagster_stack.sql(
        "SELECT count(*), coalesce(sum(octet_length(event)), 0) FROM event_logs WHERE run_id = %s",
        (run_id,),
    )
    MEASUREMENTS["batch_symbols"] = len(env["FIN_SYMBOLS"].split(","))
    MEASUREMENTS["batch_event_log_rows"] = count
    MEASUREMENTS["batch_event_log_bytes"] = size
    MEASUREMENTS["batch_csv_rows"] = len(rows)


def test_a_new_webserver_serves_the_earlier_run_and_its_compute_logs(dagster_stack: DagsterStack):
    """As after a rebuild (a new container, same volumes): a new webserver process finds the
    run in Postgres and the compute logs the code server's run worker wrote on the
    dagster_storage volume."""
    assert BATCH_RUNS, "needs the batch run of the test before"
    run_id = BATCH_RUNS[0]
    t0 = time.monotonic()
    dagster_stack.restart_service("dagster-webserver")
    MEASUREMENTS["webserver_restart_seconds"] = round(time.monotonic() - t0, 1)
    run = dagster_stack.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]
    assert run == {"__typename": "Run", "status": "SUCCESS"}
    rows = dagster_stack.sql(
        "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = 'LOGS_CAPTURED'",
        (run_id,),
    )
    assert rows, "the run captured no logs"
    served = ""
    for (event,) in rows:
        data = json.loads(event)["dagster_event"]["event_specific_data"]
        # Stored under its old name, log_key (ComputeLogsCaptureData.file_key).
        key = [run_id, "compute_logs", data.get("log_key") or data["file_key"]]
        logs = dagster_stack.graphql(CAPTURED_LOGS, {"logKey": key})["capturedLogs"]
        served += (logs["stdout"] or "") + (logs["stderr"] or "")
    assert "SYNTHETIC" in served, served[-2000:]


def test_no_secret_reaches_postgres_logs_or_argv(dagster_stack: DagsterStack):
    password = dagster_stack.services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    ((events, leaks),) = dagster_stack.sql(
        "SELECT count(*), count(*) FILTER (WHERE event LIKE %s) FROM event_logs",
        (f"%{password}%",),
    )
    assert events > 0, "no event log rows to inspect"
    assert leaks == 0
    # Every service's log was read (not an empty glob that checks nothing).
    logs = {log.name: log for log in dagster_stack.logs_dir.glob("*.log")}
    expected_logs = {f"{name}.log" for name in dagster_stack.processes}
    assert expected_logs and expected_logs <= set(logs), (sorted(expected_logs), sorted(logs))
    for name, log in logs.items():
        assert password not in log.read_text(errors="replace"), name
    # Every process in the namespace, as `ps` shows it; the Dagster services among them.
    command_lines = {
        pid: line
        for pid in pids_in_namespace(dagster_stack.namespace.inode)
        if (line := command_line(pid)) is not None
    }
    assert any("dagster" in line for line in command_lines.values()), command_lines
    for pid, line in command_lines.items():
        assert password not in line, f"pid {pid}: {line[:200]}"


def test_simulator_sensor_runs_each_shard_and_a_second_launch_of_a_shard_waits(
    dagster_stack: DagsterStack,
):
    """FIN_SIMULATOR_SHARDS=2 (compose env): the sensor keeps one run per shard alive; a
    manual launch of a shard that runs already stays QUEUED on the per-shard limit while the
    daemon launches a later run that fits."""
    stack = dagster_stack
    shards = int(stack.services["dagster-code-server"]["environment"]["FIN_SIMULATOR_SHARDS"])
    selector = {
        "repositoryLocationName": stack.location_name,
        "repositoryName": "__repository__",
        "sensorName": SIMULATOR_SENSOR,
    }
    started = stack.graphql(START_SENSOR, {"selector": selector})["startSensor"]
    assert started["__typename"] == "Sensor", started
    t0 = time.monotonic()
    running = wait_for(
        stack,
        lambda: len(set((r := simulator_runs(stack, "STARTED")).values())) == shards and r,
        300,
        f"{shards} simulator shard runs STARTED",
    )
    MEASUREMENTS["simulator_shards_started_seconds"] = round(time.monotonic() - t0, 1)
    assert sorted(running.values()) == [str(i) for i in range(shards)]

    rows_at_start = simulator_event_rows(stack, set(running))
    topic = stack.services["dagster-code-server"]["environment"]["FIN_KAFKA_TOPIC"]
    events = wait_for(
        stack,
        lambda: stack.client.call(read_topic, stack.kafka_bootstrap, topic, 30.0),
        120,
        f"events on {topic}",
    )
    symbols = set(stack.services["dagster-code-server"]["environment"]["FIN_SYMBOLS"].split(","))
    assert {e["symbol"] for _, _, e in events} <= symbols

    # A second run of shard 0, as a user would launch it from the launchpad.
    shard_run = next(run for run, shard in running.items() if shard == "0")
    details = stack.graphql(RUN_DETAILS, {"runId": shard_run})["runOrError"]
    tags = {t["key"]: t["value"] for t in details["tags"] if not t["key"].startswith("dagster/")}
    waiting, status = launch(stack, SIMULATOR_JOB, yaml.safe_load(details["runConfigYaml"]), tags)
    assert status == "QUEUED"
    # A later run that fits the limits: once the daemon has launched it, it has looked at the
    # waiting run first (the queue is first in, first out) and left it queued.
    first_symbol = stack.services["dagster-code-server"]["environment"]["FIN_SYMBOLS"].split(",")[0]
    probe, _ = launch(stack, BATCH_JOB, tags=batch_range([first_symbol]))
    wait_for(stack, lambda: run_status(stack, probe) != "QUEUED", 300, "the probe run to start")
    assert run_status(stack, waiting) == "QUEUED"
    assert set(simulator_runs(stack, "STARTED")) == set(running)

    assert wait_final(stack, probe) == "SUCCESS", failure_text(stack, probe)
    assert run_status(stack, waiting) == "QUEUED"
    measure_storage(stack, probe, rows_at_start, simulator_event_rows(stack, set(running)))


def simulator_event_rows(stack: DagsterStack, run_ids: set[str]) -> tuple[int, int, float]:
    """(rows, bytes, database time) of the simulator runs' event logs now."""
    ((rows, size, now),) = stack.sql(
        "SELECT count(*), coalesce(sum(octet_length(event)), 0), extract(epoch FROM now())"
        " FROM event_logs WHERE run_id = ANY(%s)",
        (list(run_ids),),
    )
    return rows, size, float(now)


def measure_storage(
    stack: DagsterStack,
    one_symbol_run: str,
    simulator_before: tuple[int, int, float],
    simulator_after: tuple[int, int, float],
):
    """Event-log rows and bytes for docs/scaling.md: a one-symbol batch run, and the rate at
    which running simulator shards add rows (between two snapshots, start-up excluded)."""
    ((count, size),) = stack.sql(
        "SELECT count(*), coalesce(sum(octet_length(event)), 0) FROM event_logs WHERE run_id = %s",
        (one_symbol_run,),
    )
    MEASUREMENTS["batch_one_symbol_event_log_rows"] = count
    MEASUREMENTS["batch_one_symbol_event_log_bytes"] = size
    (rows0, bytes0, t0), (rows1, bytes1, t1) = simulator_before, simulator_after
    shards = len(stack.sql("SELECT 1 FROM runs WHERE pipeline_name = %s AND status = 'STARTED'",
                           (SIMULATOR_JOB,)))  # fmt: skip
    hours = (t1 - t0) / 3600
    MEASUREMENTS["simulator_window_seconds"] = round(t1 - t0, 1)
    MEASUREMENTS["simulator_event_log_rows_per_hour_per_shard"] = round(
        (rows1 - rows0) / hours / shards, 1
    )
    MEASUREMENTS["simulator_event_log_bytes_per_hour_per_shard"] = round(
        (bytes1 - bytes0) / hours / shards
    )
    ((total_rows, table_bytes),) = stack.sql(
        "SELECT count(*), pg_total_relation_size('event_logs') FROM event_logs"
    )
    MEASUREMENTS["event_logs_rows_total"] = total_rows
    MEASUREMENTS["event_logs_table_bytes_with_indexes"] = table_bytes


@pytest.fixture(scope="module", autouse=True)
def _write_measurements():
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dagster-stack-measurements.json").write_text(json.dumps(MEASUREMENTS, indent=2))
