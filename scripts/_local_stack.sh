# Sourced by run.sh and dev.sh: install, then the environment of a local run (a developer's own
# broker on KAFKA_PORT, default 9092; Dagster's instance in ./.dagster_home). The broker is
# started here and stopped when the sourcing script exits.
scripts/apt_deps.sh
scripts/setup.sh

export FIN_RUN_DIR="${FIN_RUN_DIR:-$PWD/.run}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT}}"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"

trap 'scripts/kafka.sh stop || true' EXIT
scripts/kafka.sh start
