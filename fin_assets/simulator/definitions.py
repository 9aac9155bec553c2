"""The near-real-time flow's Definitions (merged into the code location by
fin_assets/definitions.py; the `settings` resource comes from there)."""

import dagster as dg

from fin_assets.resources.kafka import kafka_from_env
from fin_assets.simulator.job import transaction_simulator_job, transactions_topic
from fin_assets.simulator.sensor import transaction_simulator_sensor

defs = dg.Definitions(
    assets=[transactions_topic],
    jobs=[transaction_simulator_job],
    sensors=[transaction_simulator_sensor],
    resources={"kafka": kafka_from_env()},
)
