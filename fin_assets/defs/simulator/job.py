"""transaction_simulator_job: one long-running op producing the trading stream to Kafka.

The pieces live in their own modules (specs, config, op, heartbeat, fencing, metadata); the
names other code imports from here are re-exported.
"""

import dagster as dg

from fin_assets.defs.simulator.config import SimulatorConfig, run_config
from fin_assets.defs.simulator.metadata import summary_metadata
from fin_assets.defs.simulator.op import simulate_transactions
from fin_assets.defs.simulator.specs import (
    HEARTBEAT_INTERVAL_S,
    HEARTBEAT_TAG,
    JOB_NAME,
    OP_NAME,
    SHARD_TAG,
    TOPIC_ASSET_KEY,
    transactions_topic,
)

__all__ = [
    "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_TAG",
    "JOB_NAME",
    "OP_NAME",
    "TOPIC_ASSET_KEY",
    "SimulatorConfig",
    "run_config",
    "summary_metadata",
    "transaction_simulator_job",
    "transactions_topic",
]


@dg.job(
    name=JOB_NAME,
    description=(
        "Near-real-time flow: the trading-event simulator producing to the Kafka topic"
        " transacciones_financieras, one run per shard (run tag fin_assets/shard, default 0),"
        " kept alive by transaction_simulator_sensor. The instance allows one run per shard at"
        " a time: a second launch of a shard waits QUEUED. To stop the flow, turn the sensor"
        " off first, then terminate the run: it flushes Kafka and records its counts on the"
        " topic asset."
    ),
    # max_runtime 0: a global run-monitoring max runtime must not kill this long-running job.
    # The shard tag default makes a launchpad run shard 0, held by the same concurrency limit.
    tags={"dagster/max_runtime": "0", "fin_assets/flow": "near_real_time", SHARD_TAG: "0"},
)
def transaction_simulator_job() -> None:
    simulate_transactions()
