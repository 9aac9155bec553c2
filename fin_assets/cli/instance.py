"""The local Dagster instance (`$DAGSTER_HOME`) used by `fin-assets dev` and `fin-assets batch`.

Runs whose process died are settled by fin_assets/defs/batch/recovery.py."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from fin_assets.lib import settings

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

# Dagster's SQLite run and schedule storage, waiting up to 30 s for a busy database as its event
# log does (fin_assets/cli/sqlite_storage.py); the folders are Dagster's defaults. A storage class
# is only told its folder by config, hence absolute paths: move them with this file.
STORAGE_CONFIG = """\
run_storage:
  module: fin_assets.cli.sqlite_storage
  class: PatientSqliteRunStorage
  config:
    base_dir: {history}
schedule_storage:
  module: fin_assets.cli.sqlite_storage
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


# Where earlier versions kept the storage classes a dagster.yaml they wrote names.
MOVED_MODULES = {"module: fin_assets.sqlite_storage\n": "module: fin_assets.cli.sqlite_storage\n"}


def ensure_instance_config(dagster_home: Path) -> Path:
    """Writes dagster.yaml when missing; an existing one is kept, except that a module path
    an earlier fin-assets wrote there and has since moved is updated (else the instance fails
    to load)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    if not path.exists():
        path.write_text(instance_config(dagster_home))
        return path
    text = path.read_text()
    updated = text
    for old, new in MOVED_MODULES.items():
        updated = updated.replace(old, new)
    if updated != text:
        path.write_text(updated)
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
