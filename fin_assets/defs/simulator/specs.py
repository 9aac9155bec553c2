"""Names the simulator's job, op, sensor and tags share, and the topic's asset spec."""

import dagster as dg

from fin_assets.lib import config

JOB_NAME = "transaction_simulator_job"
OP_NAME = "simulate_transactions"
SENSOR_NAME = "transaction_simulator_sensor"

# The op stamps this run tag (unix seconds) every FIN_SIMULATOR_HEARTBEAT_S (default
# HEARTBEAT_INTERVAL_S); the sensor treats a running run whose heartbeat is older than its
# stale limit as dead.
HEARTBEAT_TAG = "fin_assets/heartbeat"
HEARTBEAT_INTERVAL_S = 10.0
# Which shard (0-based) a run simulates, and out of how many. The instance limits runs per
# value of SHARD_TAG to 1 (fin_assets/cli/instance.py): a second run of a shard waits, QUEUED.
SHARD_TAG = "fin_assets/shard"
SHARD_COUNT_TAG = "fin_assets/shards"
# The pid of the process running the op (to find a run's worker: `kill -STOP`, a debugger).
WORKER_PID_TAG = "fin_assets/worker_pid"
# The run a sensor-launched run replaces ("none" for the first one).
REPLACES_TAG = "fin_assets/replaces"
# Set by a run that stopped because it was no longer the live simulator of its shard.
FENCED_TAG = "fin_assets/fenced"

TOPIC_ASSET_KEY = dg.AssetKey(config.DEFAULT_KAFKA_TOPIC)

transactions_topic = dg.AssetSpec(
    TOPIC_ASSET_KEY,
    deps=["datos_financieros_csv"],
    group_name="near_real_time",
    kinds={"kafka"},
    metadata={
        "message_key": "symbol (one partition per symbol keeps its order)",
        "event_schema": "fin_assets/lib/simulator/event.schema.json",
        "transactions_log": "$FIN_DATA_DIR/" + config.TRANSACTIONS_LOG_FILE_NAME,
    },
    description=(
        "Kafka topic `transacciones_financieras` (override: FIN_KAFKA_TOPIC), fed continuously"
        " by `transaction_simulator_job`: JSON trading events (trade, price_alert, api_error;"
        " schema in fin_assets/lib/simulator/event.schema.json), key = symbol. Prices start from"
        " the latest `cierre` per symbol in Datos_financieros.csv. Each simulator run reports here"
        " when it ends, with how many events it generated, Kafka acknowledged, failed or dropped."
        " Every event is also a line in logs_transacciones.log."
    ),
)
