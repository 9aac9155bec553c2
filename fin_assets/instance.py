"""The local Dagster instance (`$DAGSTER_HOME`) used by `fin-assets dev` and `fin-assets batch`."""

from pathlib import Path

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
