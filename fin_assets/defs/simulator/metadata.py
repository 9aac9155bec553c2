"""A simulation summary as Dagster metadata."""

from typing import Any

import dagster as dg

from fin_assets.defs.resources.kafka import KafkaProducerResource
from fin_assets.lib.simulator.runner import SimulationSummary


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
