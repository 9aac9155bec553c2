"""The local Dagster instance (`$DAGSTER_HOME`) used by `fin-assets dev` and `fin-assets batch`,
and the recovery of runs whose process died (SIGKILL, OOM, a closed laptop)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.dagster_run import RunsFilter
from dagster._core.storage.runs import SqliteRunStorage

from fin_assets import settings

# `alpha_vantage` is the only pool: a limit of 1 keeps two runs (a schedule tick and a manual
# re-run, say) from calling the API at once and tripping its one-request-per-second limit.
# Run monitoring frees the slots of a run that ended without releasing them; a run whose
# process was killed stays STARTED under the default launcher, which cannot see worker health:
# `release_dead_runs` (the CLI before each run, and a sensor) settles those.
INSTANCE_CONFIG = """\
# Written by fin-assets when missing; edit freely.
concurrency:
  pools:
    default_limit: 1
  # One simulator run per shard (transaction_simulator_job's fin_assets/shard tag): a second
  # launch of a shard, from the sensor or the launchpad, waits QUEUED until the first ends.
  runs:
    tag_concurrency_limits:
      - key: fin_assets/shard
        value:
          applyLimitPerUniqueValue: true
        limit: 1
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 30
telemetry:
  enabled: false
"""

HOST_TAG = "fin_assets/host"
LIVE_STATUSES = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


# Dagster's SQLite run and schedule storage, waiting up to 30 s for a busy database as its event
# log does (fin_assets/sqlite_storage.py); the folders are Dagster's defaults. A storage class
# is only told its folder by config, hence absolute paths: move them with this file.
STORAGE_CONFIG = """\
run_storage:
  module: fin_assets.sqlite_storage
  class: PatientSqliteRunStorage
  config:
    base_dir: {history}
schedule_storage:
  module: fin_assets.sqlite_storage
  class: PatientSqliteScheduleStorage
  config:
    base_dir: {schedules}
"""


def instance_config(dagster_home: Path) -> str:
    """The dagster.yaml fin-assets writes into `dagster_home`."""
    home = dagster_home.resolve()
    storage = STORAGE_CONFIG.format(
        history=json.dumps(str(home / "history")), schedules=json.dumps(str(home / "schedules"))
    )
    return INSTANCE_CONFIG + storage


def ensure_instance_config(dagster_home: Path) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    if not path.exists():
        path.write_text(instance_config(dagster_home))
    return path


def local_instance() -> dg.DagsterInstance:
    """The user's instance when DAGSTER_HOME is set (runs then show up in `dagster dev`), else
    an ephemeral one."""
    home = settings.dagster_home()
    if home is not None:
        ensure_instance_config(home)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


# INFO keeps a CLI run's console to the lines a person reads in the UI's default log view.
CONSOLE_INFO_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def this_host_tags() -> dict[str, str]:
    """Tags for a run executed in this process, so a later CLI run can tell if it died."""
    return {HOST_TAG: socket.gethostname()}


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    ticks = int(fields[19])  # field 22 of stat(5): start time in clock ticks after boot
    return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")


def run_is_dead(pid: int | None, run_started_at: float | None) -> bool:
    """True when the process that ran it is gone, or the pid now belongs to a newer process."""
    if pid is None:
        return False
    started = process_start_time(pid)
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
