"""transaction_simulator_job: one long-running op producing the trading stream to Kafka."""

# No `from __future__ import annotations`: Dagster reads the op's annotations at runtime.

import threading
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from fin_assets import config
from fin_assets.resources.kafka import KafkaProducerResource
from fin_assets.resources.settings import PipelineSettings
from fin_assets.simulator.events import EventWeights
from fin_assets.simulator.runner import SimulationSummary
from fin_assets.simulator.session import build_simulator

JOB_NAME = "transaction_simulator_job"
OP_NAME = "simulate_transactions"
# The op stamps this run tag (unix seconds) every HEARTBEAT_INTERVAL_S; the sensor treats a
# running run whose heartbeat is older than its stale limit as dead.
HEARTBEAT_TAG = "fin_assets/heartbeat"
HEARTBEAT_INTERVAL_S = 10.0

TOPIC_ASSET_KEY = dg.AssetKey(config.DEFAULT_KAFKA_TOPIC)

transactions_topic = dg.AssetSpec(
    TOPIC_ASSET_KEY,
    deps=["datos_financieros_csv"],
    group_name="near_real_time",
    kinds={"kafka"},
    metadata={
        "message_key": "symbol (one partition per symbol keeps its order)",
        "event_schema": "fin_assets/simulator/event.schema.json",
        "transactions_log": "$FIN_DATA_DIR/" + config.TRANSACTIONS_LOG_FILE_NAME,
    },
    description=(
        "Kafka topic `transacciones_financieras` (override: FIN_KAFKA_TOPIC), fed continuously"
        " by `transaction_simulator_job`: JSON trading events (trade, price_alert, api_error;"
        " schema in fin_assets/simulator/event.schema.json), key = symbol. Prices start from the"
        " latest `cierre` per symbol in Datos_financieros.csv. Each simulator run reports here"
        " when it ends, with how many events it generated, Kafka acknowledged, failed or dropped."
        " Every event is also a line in logs_transacciones.log."
    ),
)


class SimulatorConfig(dg.Config):
    """Run configuration of the simulator op."""

    rate_per_s: float = Field(
        default=1.0, gt=0, description="Events per second (e.g. 0.2 to 5000)."
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


def summary_metadata(summary: SimulationSummary, kafka: KafkaProducerResource) -> dict[str, Any]:
    """Plain ints/floats/strings only: numpy or pandas scalars would fail the run."""
    metadata: dict[str, Any] = {
        "generated": int(summary.generated),
        "acknowledged": int(summary.acknowledged),
        "failed": int(summary.failed),
        "dropped": int(summary.dropped),
        "unsent": int(summary.unsent),
        "elapsed_s": float(round(summary.elapsed_s, 3)),
        "generated_per_s": float(round(summary.generated_per_s, 3)),
        "acknowledged_per_s": float(round(summary.acknowledged_per_s, 3)),
        "schedule_resets": int(summary.schedule_resets),
        "events_by_type": dg.MetadataValue.json(dict(summary.by_type)),
        "topic": kafka.topic,
        "bootstrap_servers": kafka.bootstrap_servers,
    }
    if summary.last_error:
        metadata["last_kafka_error"] = summary.last_error
    return metadata


class _Heartbeat:
    """Progress callback: stamps the heartbeat tag; every progress_interval_s it logs progress
    and records the running counts as an observation of the topic asset, so the asset page
    shows the flow while a run (which may last an hour) is still going."""

    def __init__(
        self,
        context: dg.OpExecutionContext,
        progress_interval_s: float,
        kafka: KafkaProducerResource,
    ) -> None:
        self.context = context
        self.progress_interval_s = progress_interval_s
        self.kafka = kafka
        self._next_log = time.monotonic() + progress_interval_s

    def beat(self) -> None:
        self.context.instance.add_run_tags(
            self.context.run_id, {HEARTBEAT_TAG: f"{time.time():.0f}"}
        )

    def __call__(self, summary: SimulationSummary) -> None:
        self.beat()
        if time.monotonic() >= self._next_log:
            self._next_log = time.monotonic() + self.progress_interval_s
            self.context.log.info(f"Progress: {summary.describe()}")
            self.context.log_event(
                dg.AssetObservation(
                    asset_key=TOPIC_ASSET_KEY,
                    description=f"Simulator run {self.context.run_id} in progress",
                    metadata=summary_metadata(summary, self.kafka),
                )
            )


@dg.op(
    name=OP_NAME,
    description=(
        "Generates trading events at a steady rate, writes each to logs_transacciones.log and"
        " produces it to Kafka (acks=all, idempotent). Runs until terminated or max_duration_s;"
        " on termination it stops generating, flushes Kafka and records the counts."
    ),
)
def simulate_transactions(
    context: dg.OpExecutionContext,
    config: SimulatorConfig,
    settings: PipelineSettings,
    kafka: KafkaProducerResource,
) -> None:
    heartbeat = _Heartbeat(context, config.progress_interval_s, kafka)
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
        progress_interval_s=min(HEARTBEAT_INTERVAL_S, config.progress_interval_s),
        log=lambda level, message: getattr(context.log, level)(message),
        on_progress=heartbeat,
    )
    duration = f"{config.max_duration_s:g} s" if config.max_duration_s else "until terminated"
    context.log.info(
        f"Simulating {config.rate_per_s:g} events/s for {settings.symbol_list} ({duration}) to"
        f" {kafka.describe()}; transactions log: {settings.transactions_log_path}"
    )
    heartbeat.beat()

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
        while not finished.wait(timeout=1.0):
            pass
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
    _record(context, summary, kafka, ended_by)
    if summary.generated and not summary.acknowledged:
        raise dg.Failure(
            description=f"Kafka took none of {summary.generated} events: {summary.last_error}",
            metadata=summary_metadata(summary, kafka),
        )


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
    context.instance.add_run_tags(
        context.run_id, {HEARTBEAT_TAG: f"{datetime.now(UTC).timestamp():.0f}"}
    )


@dg.job(
    name=JOB_NAME,
    description=(
        "Near-real-time flow: the trading-event simulator producing to the Kafka topic"
        " transacciones_financieras. A long-running run, kept alive (exactly one at a time) by"
        " transaction_simulator_sensor. To stop the flow, turn the sensor off first, then"
        " terminate the run: it flushes Kafka and records its counts on the topic asset."
    ),
    # max_runtime 0: a global run-monitoring max runtime must not kill this long-running job.
    tags={"dagster/max_runtime": "0", "fin_assets/flow": "near_real_time"},
)
def transaction_simulator_job() -> None:
    simulate_transactions()
