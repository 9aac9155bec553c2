"""The simulator op's run configuration, and the supervision settings read from the env."""

# No `from __future__ import annotations`: Dagster reads the Config's annotations at runtime.

import os
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field

from fin_assets.simulator.specs import OP_NAME


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


class SupervisionConfigError(ValueError):
    """A FIN_SIMULATOR_* variable that cannot be used; the message names it and its value."""


@dataclass(frozen=True)
class SupervisionSettings:
    """How the sensor keeps the simulator alive (FIN_SIMULATOR_* variables)."""

    rate_per_s: float = 1.0  # total over all shards
    shards: int = 1
    stale_after_s: float = 180.0
    # A run still STARTING (its worker process importing Dagster and the code) is given at
    # least this long: on a busy machine that alone can take tens of seconds.
    start_grace_s: float = 60.0
    # How often a run stamps its heartbeat tag; keep it well below stale_after_s.
    heartbeat_s: float = 10.0
    backoff_base_s: float = 15.0
    backoff_cap_s: float = 600.0
    # A run that lived at least this long before failing was healthy: its failure restarts the
    # backoff from zero instead of growing it.
    healthy_run_s: float = 60.0
    # Optional rotation (0 = never, the default): each run stops after this long. Rotation
    # leaves a gap between one run's end and the next one's start; see docs/simulator.md.
    run_lifetime_s: float = 0.0

    @property
    def rate_per_shard(self) -> float:
        return self.rate_per_s / self.shards


_ENV = {
    "rate_per_s": "FIN_SIMULATOR_RATE",
    "shards": "FIN_SIMULATOR_SHARDS",
    "stale_after_s": "FIN_SIMULATOR_STALE_AFTER_S",
    "heartbeat_s": "FIN_SIMULATOR_HEARTBEAT_S",
    "start_grace_s": "FIN_SIMULATOR_START_GRACE_S",
    "backoff_base_s": "FIN_SIMULATOR_BACKOFF_BASE_S",
    "backoff_cap_s": "FIN_SIMULATOR_BACKOFF_CAP_S",
    "healthy_run_s": "FIN_SIMULATOR_HEALTHY_RUN_S",
    "run_lifetime_s": "FIN_SIMULATOR_RUN_LIFETIME_S",
}
_POSITIVE = {"rate_per_s", "shards", "stale_after_s", "heartbeat_s"}


def supervision_settings(environ: dict[str, str] | None = None) -> SupervisionSettings:
    """The settings from `environ` (default os.environ); unset or empty means the default.

    Raises SupervisionConfigError naming the variable for a value that is not a number, is
    negative, or is zero where zero makes no sense (rate, shards, stale limit).
    """
    environ = os.environ if environ is None else environ
    defaults = SupervisionSettings()
    values: dict[str, Any] = {}
    for field_name, variable in _ENV.items():
        raw = (environ.get(variable) or "").strip()
        if not raw:
            continue
        default = getattr(defaults, field_name)
        try:
            value = type(default)(raw)
        except ValueError:
            kind = "an integer" if isinstance(default, int) else "a number"
            raise SupervisionConfigError(f"{variable}={raw!r} is not {kind}") from None
        if value < 0 or (value == 0 and field_name in _POSITIVE):
            bound = "> 0" if field_name in _POSITIVE else ">= 0"
            raise SupervisionConfigError(f"{variable}={raw!r} must be {bound}")
        values[field_name] = value
    return SupervisionSettings(**values)


def sensor_interval_s(environ: dict[str, str] | None = None) -> int:
    """FIN_SIMULATOR_SENSOR_INTERVAL_S (default 15): how often the sensor ticks, at least 1 s."""
    environ = os.environ if environ is None else environ
    raw = (environ.get("FIN_SIMULATOR_SENSOR_INTERVAL_S") or "").strip()
    try:
        return max(1, int(float(raw))) if raw else 15
    except ValueError:
        return 15
