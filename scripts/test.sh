#!/usr/bin/env bash
# The test command: installs what the tests need, starts a real Kafka broker and a real
# Elasticsearch once for the session, runs ruff and pytest, and stops the services whatever
# the outcome. Extra arguments go to pytest (e.g. scripts/test.sh -k batch).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/apt_deps.sh
scripts/setup.sh

# Test services get their own ports and state, apart from a developer's own broker.
export FIN_RUN_DIR="${FIN_RUN_DIR:-$PWD/.run/test}"
export KAFKA_PORT="${TEST_KAFKA_PORT:-19092}"
export ES_PORT="${TEST_ES_PORT:-19200}"
export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:${KAFKA_PORT}"
export ELASTICSEARCH_URL="http://127.0.0.1:${ES_PORT}"
export FIN_TEST_SERVICES=1

stop_services() {
    scripts/kafka.sh stop || true
    scripts/elasticsearch.sh stop || true
}
trap stop_services EXIT

.venv/bin/ruff check .
scripts/kafka.sh start
scripts/elasticsearch.sh start

.venv/bin/python -m pytest "$@"
