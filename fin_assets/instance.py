"""The local Dagster instance (`$DAGSTER_HOME`) used by `fin-assets dev` and `fin-assets batch`."""

import os
from pathlib import Path

import dagster as dg

# `alpha_vantage` is the only pool: a limit of 1 keeps two runs (a schedule tick and a manual
# re-run, say) from calling the API at once and tripping its one-request-per-second limit.
INSTANCE_CONFIG = """\
# Written by fin-assets when missing; edit freely.
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def ensure_instance_config(dagster_home: Path) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    if not path.exists():
        path.write_text(INSTANCE_CONFIG)
    return path


def local_instance() -> dg.DagsterInstance:
    """The user's instance when DAGSTER_HOME is set (runs then show up in `dagster dev`), else
    an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        ensure_instance_config(Path(os.environ["DAGSTER_HOME"]))
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


# INFO keeps a CLI run's console to the lines a person reads in the UI's default log view.
CONSOLE_INFO_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
