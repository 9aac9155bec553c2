#!/usr/bin/env bash
# Every benchmark of docs/benchmarks.md, then the tables and the plot. By hand only: CI never
# runs this, and nothing in bench/ is a test.
#
#   bench/run_all.sh            # about 60 minutes; run it on a quiet machine
#
# Env: BENCH_KAFKA_PORT (default 39092; its own broker, state in .run/bench/, so a developer's
# broker on 9092 is left alone), BENCH_QUICK=1 (tiny sizes: checks that everything runs, the
# figures mean nothing).
#
# Order: the 30-minute memory soak (1 event/s, ~0.5 % of a core) starts first in the
# background; the batch and Kafka throughput benchmarks run meanwhile; the 1-event/s latency
# runs come last, after the throughput runs, so that nothing heavy of ours runs beside them.
set -euo pipefail

repo_dir="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo_dir"
py=.venv/bin/python
port="${BENCH_KAFKA_PORT:-39092}"
bootstrap="127.0.0.1:$port"
export KAFKA_PORT="$port" FIN_RUN_DIR="$repo_dir/.run/bench"
logs="$FIN_RUN_DIR/logs"
mkdir -p "$logs"

say() { echo "run_all.sh [$(date +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg)]: $*" >&2; }

"$py" -c "import confluent_kafka, matplotlib" 2>/dev/null || {
    say "installing the bench extra (confluent-kafka, matplotlib)"
    .venv/bin/pip install -q confluent-kafka matplotlib
}
for codec in lz4 zstandard; do
    "$py" -c "import $codec" 2>/dev/null || say "$codec not installed: its compression runs are skipped (pip install $codec)"
done

started_broker=0
if ! scripts/kafka.sh status >/dev/null 2>&1; then
    scripts/kafka.sh start
    started_broker=1
fi
soak_pid=""
cleanup() {
    if [ -n "$soak_pid" ] && kill -0 "$soak_pid" 2>/dev/null; then
        kill -TERM -- "-$soak_pid" 2>/dev/null || true
    fi
    if [ "$started_broker" = 1 ]; then
        scripts/kafka.sh stop
    fi
}
trap cleanup EXIT

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    soak_args=(--duration 40 --interval 5)
    symbols_args=(--sizes 1,3 --repeats 1)
    history_args=(--years 1,2 --symbols 3 --repeats 1)
    kafka_args=(--duration 1 --repeats 1 --knob-repeats 1)
    latency_args=(--duration 10 --runs 2 --parallel)
else
    soak_args=()
    symbols_args=()
    history_args=()
    kafka_args=()
    latency_args=(--parallel)
fi

say "machine: $(nproc) cores; uptime: $(uptime)"
set -m  # the soak leads its own process group, so that cleanup can stop all of it
"$py" bench/bench_sim_steady.py soak --bootstrap "$bootstrap" "${soak_args[@]}" >"$logs/soak.log" 2>&1 &
soak_pid=$!
set +m
say "memory soak running in the background (pid $soak_pid, log $logs/soak.log)"

"$py" bench/bench_batch.py symbols "${symbols_args[@]}"
"$py" bench/bench_batch.py history "${history_args[@]}"
"$py" bench/bench_kafka.py --bootstrap "$bootstrap" "${kafka_args[@]}"
# Six processes at 1 event/s side by side (~0.1 % of a core each): the product's linger_ms=5
# and linger_ms=0, three runs each.
"$py" bench/bench_sim_steady.py latency --linger-ms 0 --bootstrap "$bootstrap" \
    "${latency_args[@]}" >"$logs/latency-linger0.log" 2>&1 &
linger0_pid=$!
"$py" bench/bench_sim_steady.py latency --bootstrap "$bootstrap" "${latency_args[@]}"
wait "$linger0_pid"

say "waiting for the memory soak to finish"
wait "$soak_pid"
soak_pid=""
"$py" bench/report.py
say "done: tables above, results in bench/results/, plot in docs/benchmarks-batch.png"
