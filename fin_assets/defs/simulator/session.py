"""Assembles a Simulator from the pipeline settings and the Kafka resource."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fin_assets.defs.resources.kafka import KafkaProducerResource
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.lib.simulator.delivery import EventDelivery
from fin_assets.lib.simulator.events import EventGenerator, EventWeights, GeneratorSettings
from fin_assets.lib.simulator.prices import start_prices
from fin_assets.lib.simulator.runner import SimulationSummary, Simulator
from fin_assets.lib.simulator.transactions_log import TransactionLog


def build_simulator(
    settings: PipelineSettings,
    kafka: KafkaProducerResource,
    run_id: str,
    rate_per_s: float = 1.0,
    duration_s: float | None = None,
    seed: int | None = None,
    weights: EventWeights | None = None,
    alert_threshold_pct: float = 2.0,
    backlog_limit: int = 50_000,
    flush_timeout_s: float = 30.0,
    progress_interval_s: float = 30.0,
    log: Callable[[str, str], None] = lambda level, message: None,
    on_progress: Callable[[SimulationSummary], None] | None = None,
    stop: threading.Event | None = None,
    symbols: list[str] | None = None,
) -> Simulator:
    """`stop`: the event the loop checks before every event (a FencedStop under supervision).
    `symbols`: a shard's symbols; default all of FIN_SYMBOLS."""
    symbols = list(symbols) if symbols is not None else settings.symbol_list
    generator = EventGenerator(
        symbols=symbols,
        start_prices=start_prices(symbols, settings.csv_path),
        run_id=run_id,
        seed=seed,
        settings=GeneratorSettings(
            weights=weights or EventWeights(), alert_threshold_pct=alert_threshold_pct
        ),
    )
    delivery = EventDelivery(
        topic=kafka.topic, connect=kafka.connect, backlog_limit=backlog_limit, log=log
    )
    return Simulator(
        generator=generator,
        delivery=delivery,
        transactions_log=TransactionLog(settings.transactions_log_path),
        rate_per_s=rate_per_s,
        duration_s=duration_s,
        flush_timeout_s=flush_timeout_s,
        progress_interval_s=progress_interval_s,
        on_progress=on_progress,
        stop=stop,
    )
