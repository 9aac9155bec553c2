"""The simulator op's run configuration, and the supervision settings read from the env."""

# No `from __future__ import annotations`: Dagster reads the Config's annotations at runtime.

from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field

from fin_assets.defs.simulator.specs import OP_NAME
from fin_assets.lib import settings

_DEFAULTS = {
    name: field.default
    for name, field in settings.SimulatorSettings.model_fields.items()
    if name != "sensor_interval_s"
}


class SimulatorConfig(dg.Config):
    """Run configuration of the simulator op."""

    rate_per_s: float = Field(
        default=1.0, gt=0, description="Events per second of this run (e.g. 0.2 to 5000)."
    )
    max_duration_s: float = Field(
        default=0.0, ge=0, description="Stop after this many seconds; 0 = until terminated."
    )
    seed: int | None = Field(default=None, description="Same seed => same event contents.")
    trade_weight: float = Field(default=0.85, ge=0)
    price_alert_weight: float = Field(default=0.07, ge=0)
    api_error_weight: float = Field(default=0.08, ge=0)
    alert_threshold_pct: float = Field(
        default=2.0, gt=0, description="A price move of at least this many percent is an alert."
    )
    backlog_limit: int = Field(
        default=50_000,
        ge=1,
        description="Events kept while Kafka is unreachable; beyond it the oldest are dropped"
        " (counted and reported).",
    )
    progress_interval_s: float = Field(
        default=30.0, gt=0, description="Seconds between progress logs."
    )
    flush_timeout_s: float = Field(
        default=30.0, ge=0, description="How long to wait for Kafka acknowledgements at the end."
    )


def run_config(
    duration_s: float | None = None, rate_per_s: float | None = None, seed: int | None = None
) -> dict[str, Any]:
    """Run config for transaction_simulator_job with only the given values set."""
    values: dict[str, Any] = {}
    if duration_s:
        values["max_duration_s"] = float(duration_s)
    if rate_per_s:
        values["rate_per_s"] = float(rate_per_s)
    if seed is not None:
        values["seed"] = int(seed)
    return {"ops": {OP_NAME: {"config": values}}}


# A FIN_SIMULATOR_* variable that cannot be used: the message names it and what it accepts.
SupervisionConfigError = settings.SettingsError


@dataclass(frozen=True)
class SupervisionSettings:
    """How the sensor keeps the simulator alive (FIN_SIMULATOR_* variables, parsed and
    validated in fin_assets/lib/settings.py; the defaults are there too)."""

    rate_per_s: float = _DEFAULTS["rate_per_s"]  # total over all shards
    shards: int = _DEFAULTS["shards"]
    stale_after_s: float = _DEFAULTS["stale_after_s"]
    # A run still STARTING (its worker process importing Dagster and the code) is given at
    # least this long: on a busy machine that alone can take tens of seconds.
    start_grace_s: float = _DEFAULTS["start_grace_s"]
    # How often a run stamps its heartbeat tag; keep it well below stale_after_s.
    heartbeat_s: float = _DEFAULTS["heartbeat_s"]
    backoff_base_s: float = _DEFAULTS["backoff_base_s"]
    backoff_cap_s: float = _DEFAULTS["backoff_cap_s"]
    # A run that lived at least this long before failing was healthy: its failure restarts the
    # backoff from zero instead of growing it.
    healthy_run_s: float = _DEFAULTS["healthy_run_s"]
    # Optional rotation (0 = never, the default): each run stops after this long. Rotation
    # leaves a gap between one run's end and the next one's start; see docs/simulator.md.
    run_lifetime_s: float = _DEFAULTS["run_lifetime_s"]

    @property
    def rate_per_shard(self) -> float:
        return self.rate_per_s / self.shards


def supervision_settings(environ: dict[str, str] | None = None) -> SupervisionSettings:
    """The settings from `environ` (default os.environ); unset or empty means the default.

    Raises SupervisionConfigError (fin_assets.lib.settings.SettingsError) naming each variable that
    is not a finite ASCII number in its range (FIN_SIMULATOR_SENSOR_INTERVAL_S included, so
    the sensor's ticks name it although the decorator fell back to the default).
    """
    values = settings.simulator(environ).model_dump()
    return SupervisionSettings(**{name: values[name] for name in _DEFAULTS})


def sensor_interval_s() -> int:
    """FIN_SIMULATOR_SENSOR_INTERVAL_S (default 15) for the sensor's decorator; never raises."""
    return settings.sensor_interval_s()
