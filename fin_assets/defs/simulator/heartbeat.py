"""The simulator run's sign of life: a run tag the sensor reads, and progress observations."""

import time

import dagster as dg

from fin_assets.defs.resources.kafka import KafkaProducerResource
from fin_assets.defs.simulator.metadata import summary_metadata
from fin_assets.defs.simulator.specs import HEARTBEAT_TAG, TOPIC_ASSET_KEY
from fin_assets.lib.simulator.runner import SimulationSummary


class Heartbeat:
    """Progress callback: stamps the heartbeat tag; every progress_interval_s it logs progress
    and records the running counts as an observation of the topic asset, so the asset page
    shows the flow while a long run is still going."""

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
