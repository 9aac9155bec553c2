#!/usr/bin/env bash
# The Dagster UI on http://127.0.0.1:3000 with a local Kafka broker (and the Alpha Vantage
# stand-in when ALPHAVANTAGE_API_KEY is unset). Ctrl-C or SIGTERM stops the UI and everything
# it started (simulator runs included, see docs/simulator.md), then the broker.
#
#   scripts/dev.sh [--search] [fin-assets dev arguments]
#
# --search: the whole local stack without Docker: also a secured Elasticsearch and Logstash on
# the project's pipelines (scripts/_local_stack.sh start_search_stack), so the CSV the batch
# writes lands in finanzas_batch and the simulator's events in transacciones_nrt.
set -euo pipefail
cd "$(dirname "$0")/.."
search=0
if [ "${1:-}" = "--search" ]; then
    search=1
    shift
fi
source scripts/_local_stack.sh
if [ "$search" = 1 ]; then
    start_search_stack
fi

# In the background so that a SIGTERM to this script reaches fin-assets dev too (a foreground
# child would be left running, and the EXIT trap that stops the broker would not run).
.venv/bin/fin-assets dev "$@" &
dev_pid=$!
trap 'kill -TERM "$dev_pid" 2>/dev/null || true' TERM INT HUP
status=0
wait "$dev_pid" || status=$?
# A trapped signal ends the first wait early: wait again for fin-assets dev's own shutdown.
if kill -0 "$dev_pid" 2>/dev/null; then
    status=0
    wait "$dev_pid" || status=$?
fi
exit "$status"
