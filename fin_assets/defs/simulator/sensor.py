"""transaction_simulator_sensor: keeps exactly one simulator run alive per shard."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
from dagster import DagsterRunStatus, DefaultRunLauncher, RunsFilter

from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.defs.simulator.config import (
    SupervisionConfigError,
    SupervisionSettings,
    run_config,
    sensor_interval_s,
    supervision_settings,
)
from fin_assets.defs.simulator.fencing import shard_of
from fin_assets.defs.simulator.job import transaction_simulator_job
from fin_assets.defs.simulator.specs import (
    HEARTBEAT_TAG,
    JOB_NAME,
    REPLACES_TAG,
    SENSOR_NAME,
    SHARD_COUNT_TAG,
    SHARD_TAG,
)
from fin_assets.defs.simulator.workers import kill_local_worker
from fin_assets.lib import settings as settings_module
from fin_assets.lib.simulator.backoff import EndedRun, backoff
from fin_assets.lib.simulator.shards import ShardError, assign_shards

# Kept for callers of the previous API.
DEFAULT_STALE_AFTER_S = SupervisionSettings.stale_after_s

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
RECENT_RUNS_FOR_BACKOFF = 20


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


def stale_limit_s(status: DagsterRunStatus, settings: SupervisionSettings) -> float:
    """How long a run in `status` may stay silent before it is presumed dead."""
    if status == DagsterRunStatus.STARTING:
        return max(settings.stale_after_s, settings.start_grace_s)
    return settings.stale_after_s


def retire_run(instance: dg.DagsterInstance, run: dg.DagsterRun, why: str) -> None:
    """Stop a run that must no longer produce, then mark it failed so that it no longer holds
    its shard's concurrency slot; its own fence stops it if it ever resumes.

    Its worker is SIGKILLed when it is a live process on this host. Otherwise a launcher that
    can reach remote workers is asked to terminate it; DefaultRunLauncher is not (see
    fin_assets/defs/simulator/workers.py: it blocks the code server when the worker is paused).
    """
    killed = kill_local_worker(run)
    if killed is not None:
        how = f"its worker process {killed} on this host was killed"
    elif isinstance(instance.run_launcher, DefaultRunLauncher):
        how = "its worker is not a live process on this host"
    else:
        try:
            terminated = bool(instance.run_launcher.terminate(run.run_id))
            how = "termination sent" if terminated else "the launcher could not reach it"
        except Exception as exc:  # the launcher's backend is unreachable, say
            how = f"termination failed ({type(exc).__name__}: {exc})"
    current = instance.get_run_by_id(run.run_id)
    if current is not None and not current.is_finished:
        instance.report_run_failed(
            current,
            message=f"{SENSOR_NAME}: {why}; {how}. Replacing it; should it ever produce again,"
            " it sees it is no longer the live run and stops.",
        )


def _ended_runs(records: list[dg.RunRecord]) -> list[EndedRun]:
    return [
        EndedRun(
            run_id=r.dagster_run.run_id,
            failed=r.dagster_run.status == DagsterRunStatus.FAILURE,
            start_time=r.start_time,
            # A run marked failed from outside (by this sensor, say) may have no end time.
            end_time=r.end_time or r.update_timestamp.timestamp(),
        )
        for r in records
    ]


def _at(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def next_run_requests(
    instance: dg.DagsterInstance,
    now: float,
    settings: SupervisionSettings | None = None,
    symbols: list[str] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> list[dg.RunRequest] | dg.SkipReason:
    """The decision of one tick, shard by shard: skip a shard while it has a healthy run (or
    is backing off after failures), otherwise one RunRequest for it.

    A stale run (no heartbeat for `stale_after_s`) and a run of an older shard layout are
    retired first (terminated, marked failed), so that they no longer count and the UI shows
    what happened.
    """
    settings = settings or SupervisionSettings()
    if symbols is not None:
        assign_shards(symbols, settings.shards)  # raises ShardError naming the mismatch
    live = instance.get_run_records(
        RunsFilter(job_name=JOB_NAME, statuses=LIVE_STATUSES), limit=100
    )
    by_shard: dict[str, list[dg.RunRecord]] = defaultdict(list)
    for record in live:
        run = record.dagster_run
        count_tag = run.tags.get(SHARD_COUNT_TAG)
        if count_tag and count_tag != str(settings.shards):
            retire_run(
                instance,
                run,
                f"it is shard {shard_of(run)} of {count_tag}, but FIN_SIMULATOR_SHARDS is now"
                f" {settings.shards}",
            )
            continue
        by_shard[shard_of(run)].append(record)

    requests: list[dg.RunRequest] = []
    waiting: list[str] = []
    for shard in map(str, range(settings.shards)):
        healthy = []
        for record in by_shard.get(shard, []):
            run = record.dagster_run
            silent_for = now - last_sign_of_life(record)
            limit = stale_limit_s(run.status, settings)
            if run.status in HEARTBEATING_STATUSES and silent_for > limit:
                retire_run(
                    instance,
                    run,
                    f"no heartbeat for {silent_for:.0f} s while {run.status.value} (limit"
                    f" {limit:.0f} s); its process is presumed dead or paused",
                )
            else:
                healthy.append(run)
        if healthy:
            waiting.append(f"shard {shard}: run {healthy[0].run_id} is {healthy[0].status.value}")
            continue

        recent = instance.get_run_records(
            RunsFilter(job_name=JOB_NAME, tags={SHARD_TAG: shard}), limit=RECENT_RUNS_FOR_BACKOFF
        )
        wait = backoff(
            _ended_runs(recent),
            settings.backoff_base_s,
            settings.backoff_cap_s,
            settings.healthy_run_s,
        )
        if wait.retry_at > now:
            waiting.append(
                f"shard {shard}: backing off after {wait.failures} failed runs in a row (last:"
                f" {wait.last_failed_run_id}); next launch at {_at(wait.retry_at)}, in"
                f" {wait.retry_at - now:.0f} s (delay {wait.delay_s:.0f} s, cap"
                f" {settings.backoff_cap_s:.0f} s)"
            )
            continue
        # run_key dedupes forever, so key each new run on the run it replaces.
        previous = recent[0].dagster_run.run_id if recent else None
        requests.append(
            dg.RunRequest(
                run_key=f"shard-{shard}-after-{previous}" if previous else f"shard-{shard}-first",
                run_config=run_config(
                    duration_s=settings.run_lifetime_s or None,
                    rate_per_s=settings.rate_per_shard,
                ),
                tags={
                    SHARD_TAG: shard,
                    SHARD_COUNT_TAG: str(settings.shards),
                    REPLACES_TAG: previous or "none",
                },
            )
        )
    if requests:
        for line in waiting:
            log(line)
        return requests
    return dg.SkipReason("; ".join(waiting) or "nothing to do")


def tick_settings() -> SupervisionSettings:
    """FIN_SIMULATOR_* read at each tick, and the Kafka settings checked (a run launched with
    bad ones would only fail); every bad variable is named in one SupervisionConfigError."""
    problems: list[str] = []
    supervision = None
    try:
        supervision = supervision_settings()
    except SupervisionConfigError as exc:
        problems.append(str(exc))
    try:
        settings_module.kafka()
    except SupervisionConfigError as exc:
        problems.append(str(exc))
    if problems or supervision is None:
        raise SupervisionConfigError("; ".join(problems))
    return supervision


@dg.sensor(
    name=SENSOR_NAME,
    job=transaction_simulator_job,
    minimum_interval_seconds=sensor_interval_s(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Keeps exactly one transaction_simulator_job run alive per shard (FIN_SIMULATOR_SHARDS,"
        " default 1; run tag fin_assets/shard): launches one when the shard has none queued,"
        " starting or running; replaces a run that ended or whose process died or froze (no"
        " heartbeat for FIN_SIMULATOR_STALE_AFTER_S, default 180 s: terminated, marked failed,"
        " then replaced; the run also fences itself). After repeated failures it backs off"
        " exponentially (FIN_SIMULATOR_BACKOFF_BASE_S 15 s, cap FIN_SIMULATOR_BACKOFF_CAP_S"
        " 600 s) and its skip reason says until when. Runs do not rotate. Rate:"
        " FIN_SIMULATOR_RATE events/s in total (default 1). To stop the flow, turn this sensor"
        " off first, then terminate the runs."
    ),
)
def transaction_simulator_sensor(context: dg.SensorEvaluationContext, settings: PipelineSettings):
    try:
        return next_run_requests(
            context.instance,
            now=time.time(),
            settings=tick_settings(),
            symbols=settings.symbol_list,
            log=context.log.info,
        )
    except (SupervisionConfigError, ShardError) as exc:
        # A tick error, shown on the sensor's page with this message: nothing is launched.
        raise SupervisionConfigError(f"{SENSOR_NAME}: {exc}") from None
