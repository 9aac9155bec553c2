#!/usr/bin/env bash
# The Dagster UI on http://127.0.0.1:3000 with a local Kafka broker (and the Alpha Vantage
# stand-in when ALPHAVANTAGE_API_KEY is unset). Ctrl-C or SIGTERM stops the UI and everything
# it started (simulator runs included, see docs/simulator.md), then the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_local_stack.sh

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
