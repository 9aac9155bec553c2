#!/usr/bin/env bash
# The Dagster UI on http://127.0.0.1:3000 with a local Kafka broker (and the Alpha Vantage
# stand-in when ALPHAVANTAGE_API_KEY is unset). Ctrl-C stops the UI, then the broker.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/apt_deps.sh
scripts/setup.sh

export FIN_RUN_DIR="${FIN_RUN_DIR:-$PWD/.run}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT}}"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"

trap 'scripts/kafka.sh stop || true' EXIT
scripts/kafka.sh start
.venv/bin/fin-assets dev "$@"
