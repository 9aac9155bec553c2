"""A sensor that settles runs whose process died, so the `alpha_vantage` pool slot they hold
does not block every later run (the default run launcher cannot check worker health)."""

import socket
from collections.abc import Iterable

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.dagster_run import RunsFilter
from dagster._core.storage.runs import SqliteRunStorage

from fin_assets.defs.batch.schedules import JOB_NAME
from fin_assets.lib import processes

HOST_TAG = "fin_assets/host"
LIVE_STATUSES = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def this_host_tags() -> dict[str, str]:
    """Tags for a run executed in this process, so a later CLI run can tell if it died."""
    return {HOST_TAG: socket.gethostname()}


def run_is_dead(pid: int | None, run_started_at: float | None) -> bool:
    """True when the process that ran it is gone, or the pid now belongs to a newer process."""
    if pid is None:
        return False
    started = processes.start_time(pid)
    if started is None:
        return True
    return run_started_at is not None and started > run_started_at + 1.0


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for record in instance.all_logs(run_id, of_type=DagsterEventType.RUN_START):
        if record.dagster_event and record.dagster_event.pid:
            return record.dagster_event.pid
    return None


def _is_local(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Runs of this host: tagged so, or any run of a file-based (single machine) instance."""
    host = run.tags.get(HOST_TAG)
    if host is not None:
        return host == socket.gethostname()
    return isinstance(instance.run_storage, SqliteRunStorage)


def release_dead_runs(instance: dg.DagsterInstance, job_names: Iterable[str]) -> list[str]:
    """Mark live-looking runs whose process is gone as failed and free their pool slots.

    Looks at runs of `job_names` and at any run holding a concurrency slot. Returns their ids.
    """
    candidates = {
        r.dagster_run.run_id: r
        for name in job_names
        for r in instance.get_run_records(RunsFilter(job_name=name, statuses=LIVE_STATUSES))
    }
    slot_holders = instance.event_log_storage.get_concurrency_run_ids()
    missing = slot_holders - candidates.keys()
    if missing:
        candidates |= {
            r.dagster_run.run_id: r
            for r in instance.get_run_records(RunsFilter(run_ids=list(missing)))
        }
    released = []
    for run_id, record in candidates.items():
        run = record.dagster_run
        started_at = record.start_time or record.create_timestamp.timestamp()
        if not _is_local(instance, run):
            continue
        live = run.status in LIVE_STATUSES
        if not live and not run.is_finished:
            continue  # queued: holds nothing yet
        if live and not run_is_dead(_run_pid(instance, run_id), started_at):
            continue
        if live:
            instance.report_run_failed(
                run, message="Its process is gone (killed?): marked failed by fin-assets."
            )
        if run_id in slot_holders:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        released.append(run_id)
    return released


@dg.sensor(
    name="dead_run_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Marks {JOB_NAME} runs (and any run holding a pool slot) whose process is gone "
    "as failed and frees their slots, so the next scheduled run is not left QUEUED.",
)
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    released = release_dead_runs(context.instance, [JOB_NAME])
    if released:
        return dg.SkipReason(f"released dead run(s): {', '.join(released)}")
    return dg.SkipReason("no dead run")
