"""transaction_simulator_sensor: keeps exactly one simulator run alive."""

from __future__ import annotations

import contextlib
import os
import time

import dagster as dg
from dagster import DagsterRunStatus, RunsFilter

from fin_assets.simulator.job import HEARTBEAT_TAG, JOB_NAME, run_config, transaction_simulator_job

# A run that has not stamped its heartbeat for this long (while STARTING/STARTED/CANCELING) is
# considered dead (its process was killed): it is marked failed and replaced.
DEFAULT_STALE_AFTER_S = 180.0
# Each sensor-launched run stops by itself after this long and the sensor starts the next
# one: no orphan runs survive for long after `dagster dev` stops, code changes get picked up.
DEFAULT_RUN_LIFETIME_S = 3600.0

LIVE_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
# Statuses in which the run's own process should be heartbeating.
HEARTBEATING_STATUSES = {
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
}


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


def last_sign_of_life(record: dg.RunRecord) -> float:
    """Unix time of the newest of: heartbeat tag, run start, run creation."""
    times = [record.create_timestamp.timestamp()]
    if record.start_time:
        times.append(record.start_time)
    beat = record.dagster_run.tags.get(HEARTBEAT_TAG)
    if beat:
        with contextlib.suppress(ValueError):
            times.append(float(beat))
    return max(times)


def next_run_request(
    instance: dg.DagsterInstance,
    now: float,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    run_lifetime_s: float = DEFAULT_RUN_LIFETIME_S,
    rate_per_s: float | None = None,
) -> dg.RunRequest | dg.SkipReason:
    """The decision of one tick: skip while a healthy run is alive, otherwise one RunRequest.

    A stale run (no heartbeat for `stale_after_s`) is reported failed first, so that it no
    longer counts as alive and the UI shows what happened.
    """
    live = instance.get_run_records(RunsFilter(job_name=JOB_NAME, statuses=LIVE_STATUSES), limit=5)
    healthy = []
    for record in live:
        run = record.dagster_run
        silent_for = now - last_sign_of_life(record)
        if run.status in HEARTBEATING_STATUSES and silent_for > stale_after_s:
            instance.report_run_failed(
                run,
                message=(
                    f"transaction_simulator_sensor: no heartbeat for {silent_for:.0f} s"
                    f" (limit {stale_after_s:.0f} s); its process is presumed dead. Replacing it."
                ),
            )
        else:
            healthy.append(run)
    if healthy:
        return dg.SkipReason(
            f"Simulator run {healthy[0].run_id} is {healthy[0].status.value}; one run at a time."
        )

    # run_key dedupes forever, so key each new run on the run it replaces.
    previous = instance.get_runs(RunsFilter(job_name=JOB_NAME), limit=1)
    run_key = f"after-{previous[0].run_id}" if previous else "first-run"
    return dg.RunRequest(
        run_key=run_key,
        run_config=run_config(duration_s=run_lifetime_s, rate_per_s=rate_per_s),
        tags={"fin_assets/replaces": previous[0].run_id if previous else "none"},
    )


@dg.sensor(
    name="transaction_simulator_sensor",
    job=transaction_simulator_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Keeps exactly one transaction_simulator_job run alive: launches one when none is"
        " queued, starting or running; replaces a run that failed, finished (runs rotate every"
        " FIN_SIMULATOR_RUN_LIFETIME_S, default 1 h) or whose process died (no heartbeat for"
        " FIN_SIMULATOR_STALE_AFTER_S, default 180 s: marked failed, then replaced). Never"
        " starts a second run. Rate: FIN_SIMULATOR_RATE events/s (default 1). To stop the"
        " flow, turn this sensor off first, then terminate the run."
    ),
)
def transaction_simulator_sensor(context: dg.SensorEvaluationContext):
    rate = _env_float("FIN_SIMULATOR_RATE", 0.0) or None
    return next_run_request(
        context.instance,
        now=time.time(),
        stale_after_s=_env_float("FIN_SIMULATOR_STALE_AFTER_S", DEFAULT_STALE_AFTER_S),
        run_lifetime_s=_env_float("FIN_SIMULATOR_RUN_LIFETIME_S", DEFAULT_RUN_LIFETIME_S),
        rate_per_s=rate,
    )
