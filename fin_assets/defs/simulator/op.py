"""simulate_transactions: one long-running op producing one shard's trading stream to Kafka."""

# No `from __future__ import annotations`: Dagster reads the op's annotations at runtime.

import os
import threading

import dagster as dg

from fin_assets.defs.resources.kafka import KafkaProducerResource
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.defs.simulator.config import (
    SimulatorConfig,
    SupervisionConfigError,
    supervision_settings,
)
from fin_assets.defs.simulator.fencing import FencedStop, RunFence
from fin_assets.defs.simulator.heartbeat import Heartbeat
from fin_assets.defs.simulator.metadata import summary_metadata
from fin_assets.defs.simulator.session import build_simulator
from fin_assets.defs.simulator.specs import (
    FENCED_TAG,
    OP_NAME,
    SHARD_COUNT_TAG,
    SHARD_TAG,
    TOPIC_ASSET_KEY,
    WORKER_PID_TAG,
)
from fin_assets.defs.simulator.workers import WORKER_TAG, worker_identity
from fin_assets.lib.simulator.events import EventWeights
from fin_assets.lib.simulator.runner import SimulationSummary
from fin_assets.lib.simulator.shards import ShardError, parse_shard_tags, shard_symbols

# The op's main thread checks the fence this often; the simulator loop re-checks by itself
# when the last check is older than FENCE_MAX_UNVERIFIED_S (a paused or starved process).
FENCE_INTERVAL_S = 1.0
FENCE_MAX_UNVERIFIED_S = 3.0


def _shard(
    context: dg.OpExecutionContext, settings: PipelineSettings, default_count: int
) -> tuple[int, int, list]:
    """(index, count, symbols) of the run's shard: its tags, else FIN_SIMULATOR_SHARDS."""
    tags = context.run.tags
    try:
        index, count = parse_shard_tags(
            tags.get(SHARD_TAG), tags.get(SHARD_COUNT_TAG), default_count
        )
        return index, count, shard_symbols(settings.symbol_list, index, count)
    except ShardError as exc:
        raise dg.Failure(description=f"Cannot start the simulator: {exc}") from None


@dg.op(
    name=OP_NAME,
    description=(
        "Generates trading events at a steady rate for its shard's symbols (run tag"
        " fin_assets/shard), writes each to logs_transacciones.log and produces it to Kafka"
        " (acks=all, idempotent). Runs until terminated or max_duration_s; stops at once when"
        " its run is no longer the live simulator of its shard (fenced). On termination it"
        " stops generating, flushes Kafka and records the counts."
    ),
)
def simulate_transactions(
    context: dg.OpExecutionContext,
    config: SimulatorConfig,
    settings: PipelineSettings,
    kafka: KafkaProducerResource,
) -> None:
    try:
        supervision = supervision_settings()
    except SupervisionConfigError as exc:
        raise dg.Failure(description=f"Cannot start the simulator: {exc}") from None
    shard, shard_count, symbols = _shard(context, settings, supervision.shards)
    context.instance.add_run_tags(
        context.run_id, {WORKER_PID_TAG: str(os.getpid()), WORKER_TAG: worker_identity()}
    )
    fence = RunFence(context.instance, context.run_id, str(shard))
    stop = FencedStop(fence.check, max_unverified_s=FENCE_MAX_UNVERIFIED_S)
    heartbeat = Heartbeat(context, config.progress_interval_s, kafka)
    simulator = build_simulator(
        settings=settings,
        kafka=kafka,
        run_id=context.run_id,
        rate_per_s=config.rate_per_s,
        duration_s=config.max_duration_s or None,
        seed=config.seed,
        weights=EventWeights(
            config.trade_weight, config.price_alert_weight, config.api_error_weight
        ),
        alert_threshold_pct=config.alert_threshold_pct,
        backlog_limit=config.backlog_limit,
        flush_timeout_s=config.flush_timeout_s,
        progress_interval_s=min(supervision.heartbeat_s, config.progress_interval_s),
        log=lambda level, message: getattr(context.log, level)(message),
        on_progress=heartbeat,
        stop=stop,
        symbols=symbols,
    )
    duration = f"{config.max_duration_s:g} s" if config.max_duration_s else "until terminated"
    context.log.info(
        f"Simulating {config.rate_per_s:g} events/s for {symbols} (shard {shard} of"
        f" {shard_count}, {duration}) to {kafka.describe()}; transactions log:"
        f" {settings.transactions_log_path}"
    )
    heartbeat.beat()
    stop.verify()

    # The simulation runs in a worker thread so that Dagster's termination (an exception raised
    # in this, the main, thread) never lands in the middle of a Kafka send: we catch it here,
    # ask the worker to stop, and wait for its flush.
    failure: list[BaseException] = []
    # An Event, not Thread.join: an exception raised into join() (Python 3.11) can leave the
    # thread marked as finished while it still runs, and we would record counts too early.
    finished = threading.Event()

    def work() -> None:
        try:
            simulator.run()
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            finished.set()

    worker = threading.Thread(target=work, name="transaction-simulator", daemon=True)
    worker.start()
    ended_by = "max_duration_s reached"
    try:
        while not finished.wait(timeout=FENCE_INTERVAL_S):
            _check_fence(context, stop)
    except BaseException:  # DagsterExecutionInterruptedError (UI terminate, SIGTERM), Ctrl-C
        ended_by = "terminated"
        context.log.info("Termination requested: stopping the simulator and flushing Kafka")
        simulator.stop.set()
        finished.wait()
        _record(context, simulator.summary, kafka, ended_by)
        raise
    if failure:
        raise failure[0]
    summary = simulator.summary
    if stop.reason:
        ended_by = f"fenced: {stop.reason}"
        context.instance.add_run_tags(context.run_id, {FENCED_TAG: stop.reason[:200]})
    _record(context, summary, kafka, ended_by)
    if stop.reason:
        raise dg.Failure(
            description=(
                f"Stopped producing: this run is no longer the live simulator of shard {shard}"
                f" ({stop.reason})."
            ),
            metadata=summary_metadata(summary, kafka),
        )
    if summary.refused:
        raise dg.Failure(
            description=f"Stopped producing, Kafka refused: {summary.refused}",
            metadata=summary_metadata(summary, kafka),
        )
    if summary.generated and not summary.acknowledged:
        raise dg.Failure(
            description=f"Kafka took none of {summary.generated} events: {summary.last_error}",
            metadata=summary_metadata(summary, kafka),
        )


def _check_fence(context: dg.OpExecutionContext, stop: FencedStop) -> None:
    try:
        reason = stop.verify()
    except Exception as exc:  # a busy storage: the loop re-checks by itself if this persists
        context.log.warning(f"Fence check failed, will retry: {exc}")
        return
    if reason:
        context.log.warning(f"Fenced: {reason}; stopping the simulator now")


def _record(
    context: dg.OpExecutionContext,
    summary: SimulationSummary,
    kafka: KafkaProducerResource,
    ended_by: str,
) -> None:
    metadata = {**summary_metadata(summary, kafka), "ended_by": ended_by}
    context.log_event(
        dg.AssetMaterialization(
            asset_key=TOPIC_ASSET_KEY,
            description=f"Simulator run {context.run_id} ({ended_by})",
            metadata=metadata,
        )
    )
    level = "info" if summary.all_delivered else "warning"
    getattr(context.log, level)(f"Simulator finished ({ended_by}): {summary.describe()}")
    Heartbeat(context, 0.0, kafka).beat()
