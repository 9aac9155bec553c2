#!/usr/bin/env bash
# The main command: install, start a local Kafka broker, materialise the batch assets through
# Dagster (against the local Alpha Vantage stand-in when ALPHAVANTAGE_API_KEY is unset), then run
# the transaction simulator job through Dagster for a short while, and stop the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_local_stack.sh

.venv/bin/fin-assets batch
.venv/bin/fin-assets simulator-job --duration "${SIMULATOR_SECONDS:-20}"
echo
echo "Data written to ${FIN_DATA_DIR:-./data}. Open the UI with: scripts/dev.sh"
