"""What the UI shows, checked through Dagster's GraphQL API on the session's `dagster dev`.

The browser tests (test_ui_browser.py) check the same outcomes on the pages; when only those
fail, the UI layer broke, not the definitions or the webserver.
"""

from __future__ import annotations

import json
import os
import re
import signal

from fin_assets.defs.batch.partitions import range_tags
from fin_assets_tests.helpers.dagster_ui import (
    BATCH_CHAIN,
    EXPECTED,
    NRT_CHAIN,
    SCHEDULE,
    SEARCH_BATCH_EDGE,
    SIMULATOR_JOB,
    SIMULATOR_SENSOR,
    SYMBOLS,
    DagsterUI,
)
from fin_assets_tests.helpers.graphql import LIVE_RUN_STATUSES, TRANSIENT
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.helpers.prerequisites import missing
from fin_assets_tests.helpers.processes import alive


def edges(nodes: dict[str, dict]) -> set[tuple[str, str]]:
    return {
        ("/".join(dep["path"]), key)
        for key, node in nodes.items()
        for dep in node["dependencyKeys"]
    }


def require_assets(nodes: dict[str, dict], *keys: str) -> None:
    assert [k for k in keys if k not in nodes] == [], "assets missing from the definitions"


def test_batch_lineage(dagster_ui: DagsterUI):
    nodes = dagster_ui.asset_nodes()
    found = edges(nodes)
    for edge in BATCH_CHAIN:
        assert edge in found, f"missing lineage edge {edge[0]} -> {edge[1]}; edges: {found}"
    # The chain starts at the API, an external asset with nothing upstream.
    assert nodes["alpha_vantage_api"]["dependencyKeys"] == []
    assert "Alpha Vantage" in nodes["alpha_vantage_api"]["description"]


def test_lineage_down_to_elasticsearch(dagster_ui: DagsterUI):
    nodes = dagster_ui.asset_nodes()
    require_assets(nodes, "finanzas_batch", "transacciones_financieras", "transacciones_nrt")
    found = edges(nodes)
    for edge in [*BATCH_CHAIN, SEARCH_BATCH_EDGE, *NRT_CHAIN]:
        assert edge in found, f"missing lineage edge {edge[0]} -> {edge[1]}; edges: {found}"
    # The indices are the ends of both flows.
    downstream = {src for src, _ in found}
    assert "finanzas_batch" not in downstream and "transacciones_nrt" not in downstream


def test_every_asset_has_description_group_and_kinds(dagster_ui: DagsterUI):
    nodes = dagster_ui.asset_nodes()
    problems = []
    for key, node in sorted(nodes.items()):
        if len((node["description"] or "").strip()) < 20:
            problems.append(f"{key}: no useful description ({node['description']!r})")
        if not node["kinds"]:
            problems.append(f"{key}: no kinds")
        if key in EXPECTED:
            group, kinds = EXPECTED[key]
            if node["groupName"] != group:
                problems.append(f"{key}: group {node['groupName']!r}, expected {group!r}")
            if not kinds <= set(node["kinds"]):
                problems.append(f"{key}: kinds {node['kinds']}, expected {sorted(kinds)}")
        elif node["groupName"] in (None, "default"):
            problems.append(f"{key}: in the default group, not a flow's group")
    assert not problems, "\n".join(problems)
    # Definition-time metadata on the external indices says where they come from.
    for key in ("finanzas_batch", "transacciones_nrt"):
        if key in nodes:
            labels = {e["label"] for e in nodes[key]["metadataEntries"]}
            assert {"index", "logstash_pipeline"} <= labels, f"{key} metadata: {labels}"


PARTITION_STATS = """
query PartitionStats($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      partitionKeys
      partitionStats { numMaterialized numFailed numPartitions }
    }
  }
}
"""


def partition_stats(ui: DagsterUI, key: str) -> dict:
    node = ui.graphql(PARTITION_STATS, {"key": {"path": [key]}})["assetNodeOrError"]
    return {"keys": node["partitionKeys"], **node["partitionStats"]}


def test_materialize_batch_through_graphql(dagster_ui: DagsterUI):
    """One run over every symbol partition on the stand-in ends in SUCCESS; each symbol is a
    materialised partition; the CSV asset carries its metadata; one log line per fetch."""
    symbols = SYMBOLS.split(",")
    run_id = dagster_ui.client().submit_job_execution(
        "daily_batch_job", tags=range_tags(symbols[0], symbols[-1])
    )
    status = dagster_ui.wait_run(run_id, {"SUCCESS"}, timeout=90)
    assert status == "SUCCESS", f"batch run {run_id} ended {status}:\n{dagster_ui.log_tail()}"
    assert run_id in [r["runId"] for r in dagster_ui.runs(job_name="daily_batch_job")]

    csv = dagster_ui.latest_materialization("datos_financieros_csv")
    assert csv is not None and csv["runId"] == run_id
    metadata = csv["metadata"]
    assert metadata["path"] == str(dagster_ui.csv_path)
    rows = dagster_ui.csv_path.read_text().splitlines()
    assert metadata["dagster/row_count"] == len(rows) - 1 > 0
    for symbol in SYMBOLS.split(","):
        assert f"| {symbol} |" in metadata["date_ranges"], metadata["date_ranges"]
        assert isinstance(metadata[f"last_close/{symbol}"], float)
    preview = metadata["preview"]
    assert [c["name"] for c in preview["schema"]["columns"]] == rows[0].split(",")
    assert {json.loads(r)["simbolo"] for r in preview["records"]} == set(SYMBOLS.split(","))

    prices = dagster_ui.latest_materialization("daily_prices")
    assert prices["runId"] == run_id and 0 < prices["metadata"]["dagster/row_count"] < len(rows)
    for key in ("alpha_vantage_daily_raw", "daily_prices"):
        stats = partition_stats(dagster_ui, key)  # what the partition bar shows
        assert stats == {
            "keys": symbols,
            "numMaterialized": len(symbols),
            "numFailed": 0,
            "numPartitions": len(symbols),
        }, key

    # One line per fetch (several lines may share one log event: see BatchedLog).
    lines = [
        line
        for e in dagster_ui.run_messages(run_id)
        for line in (e.get("message") or "").split("\n")
    ]
    for symbol in SYMBOLS.split(","):
        fetch = re.compile(rf"^{symbol}: \d+ days \d{{4}}-\d\d-\d\d\.\.\d{{4}}-\d\d-\d\d")
        fetch_lines = [m for m in lines if fetch.match(m)]
        assert len(fetch_lines) == 1, f"{symbol}: expected one fetch line, got {fetch_lines}"


def test_schedule_toggles_through_graphql(dagster_ui: DagsterUI):
    schedule = dagster_ui.schedule(SCHEDULE)
    assert schedule is not None, f"{SCHEDULE} is not in the code location"
    assert schedule["pipelineName"] == "daily_batch_job"
    assert schedule["cronSchedule"] == "30 18 * * 1-5"
    assert schedule["executionTimezone"] == "America/New_York"
    assert schedule["scheduleState"]["status"] == "STOPPED"
    try:
        assert dagster_ui.start_schedule(SCHEDULE) == "RUNNING"
        assert dagster_ui.schedule(SCHEDULE)["scheduleState"]["status"] == "RUNNING"
    finally:
        assert dagster_ui.stop_schedule(SCHEDULE) == "STOPPED"
    assert dagster_ui.schedule(SCHEDULE)["scheduleState"]["status"] == "STOPPED"


def test_simulator_sensor_through_graphql(dagster_ui: DagsterUI):
    """Sensor on -> its tick launches the simulator job -> sensor off -> terminate -> CANCELED,
    and the run records its counts and rates on the topic asset."""
    sensor = dagster_ui.sensor(SIMULATOR_SENSOR)
    assert sensor is not None, f"{SIMULATOR_SENSOR} not defined"
    assert [t["pipelineName"] for t in sensor["targets"]] == [SIMULATOR_JOB]
    assert sensor["sensorState"]["status"] == "STOPPED"
    if not dagster_ui.kafka_bootstrap:
        missing(dagster_ui.kafka_reason)

    before = {r["runId"] for r in dagster_ui.runs(job_name=SIMULATOR_JOB)}
    run_id = None
    try:
        assert dagster_ui.start_sensor(SIMULATOR_SENSOR) == "RUNNING"
        run_id = launched_simulator_run(dagster_ui, before, timeout=90)
        assert dagster_ui.wait_run(run_id, {"STARTED"}, timeout=60) == "STARTED"
    finally:
        assert dagster_ui.stop_sensor(SIMULATOR_SENSOR) == "STOPPED"
    dagster_ui.client().terminate_run(run_id)
    status = dagster_ui.wait_run(run_id, {"CANCELED"}, timeout=90)
    assert status == "CANCELED", f"simulator run {run_id} ended {status}"
    assert not dagster_ui.runs(job_name=SIMULATOR_JOB, statuses=LIVE_RUN_STATUSES)

    topic = dagster_ui.latest_materialization("transacciones_financieras")
    assert topic is not None and topic["runId"] == run_id
    counts = topic["metadata"]
    assert counts["ended_by"] == "terminated"
    assert counts["generated"] >= counts["acknowledged"] >= 0
    assert "generated_per_s" in counts and "acknowledged_per_s" in counts
    messages = [e.get("message") or "" for e in dagster_ui.run_messages(run_id)]
    assert any(m.startswith("Simulating ") for m in messages), messages[-20:]
    assert any(m.startswith("Simulator finished (terminated)") for m in messages)


def launched_simulator_run(ui: DagsterUI, before: set[str], timeout: float) -> str:
    """The run the sensor's tick launched (a run of the simulator job that is new)."""

    def new_run() -> str | None:
        fresh = [r["runId"] for r in ui.runs(job_name=SIMULATOR_JOB) if r["runId"] not in before]
        return fresh[0] if fresh else None

    run_id = wait_until(
        new_run, timeout, message=f"{SIMULATOR_SENSOR} to launch {SIMULATOR_JOB}", ignore=TRANSIENT
    )

    # The run exists a moment before its tick is finalised with the run's id.
    def tick_with_run() -> bool:
        ticks = ui.sensor(SIMULATOR_SENSOR)["sensorState"]["ticks"]
        return any(run_id in t["runIds"] for t in ticks)

    wait_until(
        tick_with_run,
        30,
        message=f"a {SIMULATOR_SENSOR} tick that launched run {run_id}",
        ignore=TRANSIENT,
    )
    return run_id


def run_worker_pids(ui: DagsterUI, run_id: str) -> list[int]:
    """The run worker's PID, as the run's own engine events announce it."""
    for event in ui.run_messages(run_id):
        found = re.search(
            r"(?:Started process for run|in process) \(pid: (\d+)\)", event.get("message") or ""
        )
        if found and alive(int(found[1])):
            return [int(found[1])]
    return []


def test_sensor_replaces_a_simulator_whose_process_was_killed(dagster_ui: DagsterUI):
    """A crash (the run's process killed): the run ends FAILURE with its cause, and the sensor
    starts exactly one replacement."""
    assert dagster_ui.sensor(SIMULATOR_SENSOR) is not None, f"{SIMULATOR_SENSOR} not defined"
    if not dagster_ui.kafka_bootstrap:
        missing(dagster_ui.kafka_reason)
    before = {r["runId"] for r in dagster_ui.runs(job_name=SIMULATOR_JOB)}
    replacement = None
    try:
        assert dagster_ui.start_sensor(SIMULATOR_SENSOR) == "RUNNING"
        crashed = launched_simulator_run(dagster_ui, before, timeout=90)
        assert dagster_ui.wait_run(crashed, {"STARTED"}, timeout=60) == "STARTED"
        pids = wait_until(
            lambda: run_worker_pids(dagster_ui, crashed),
            30,
            message="the run worker's process",
            ignore=TRANSIENT,
        )
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

        replacement = launched_simulator_run(dagster_ui, before | {crashed}, timeout=150)
        assert dagster_ui.run_status(crashed) == "FAILURE"
        assert dagster_ui.wait_run(replacement, {"STARTED"}, timeout=60) == "STARTED"
        live = dagster_ui.runs(job_name=SIMULATOR_JOB, statuses=LIVE_RUN_STATUSES)
        assert [r["runId"] for r in live] == [replacement]
        failure = " ".join(e.get("message") or "" for e in dagster_ui.run_messages(crashed))
        # Under dagster dev the code server sees its child die and fails the run itself; when
        # nothing does (the code server is gone too), the sensor's heartbeat check does
        # (test_simulator_sensor.py). Either way the cause is named.
        assert "SIGKILL" in failure or "no heartbeat" in failure, failure[-500:]
    finally:
        assert dagster_ui.stop_sensor(SIMULATOR_SENSOR) == "STOPPED"
        if replacement:
            dagster_ui.client().terminate_run(replacement)
            assert dagster_ui.wait_run(replacement, {"CANCELED"}, timeout=90) == "CANCELED"
