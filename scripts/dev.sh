#!/usr/bin/env bash
# The Dagster UI on http://127.0.0.1:3000 with a local Kafka broker (and the Alpha Vantage
# stand-in when ALPHAVANTAGE_API_KEY is unset). Ctrl-C stops the UI, then the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_local_stack.sh

.venv/bin/fin-assets dev "$@"
