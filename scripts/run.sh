#!/usr/bin/env bash
# The main command: install, start a local Kafka broker, materialise the batch assets through
# Dagster (against the local Alpha Vantage stand-in when ALPHAVANTAGE_API_KEY is unset), then run
# the transaction simulator job through Dagster for a short while, and stop the broker.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/apt_deps.sh
scripts/setup.sh

export FIN_RUN_DIR="${FIN_RUN_DIR:-$PWD/.run}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT}}"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
mkdir -p "$DAGSTER_HOME"

trap 'scripts/kafka.sh stop || true' EXIT
scripts/kafka.sh start

.venv/bin/fin-assets batch
.venv/bin/fin-assets simulator-job --duration "${SIMULATOR_SECONDS:-20}"
echo
echo "Data written to ${FIN_DATA_DIR:-./data}. Open the UI with: scripts/dev.sh"
