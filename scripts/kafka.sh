#!/usr/bin/env bash
# A local single-node Apache Kafka broker (KRaft, 127.0.0.1 only) for development and tests,
# or a local cluster of combined broker+controller nodes for failover tests.
#
#   scripts/kafka.sh start|stop|status              the single node
#   scripts/kafka.sh cluster-start|cluster-stop|cluster-status
#                                                   KAFKA_NODES nodes (default 3)
#   scripts/kafka.sh node-start N|node-stop N       one node of the cluster (e.g. after a kill)
#   scripts/kafka.sh fetch                          fetch the jars; print their folder
#
# First use fetches the broker's jars from Maven Central with `mvn dependency:copy-dependencies`
# into ${FIN_CACHE_DIR:-~/.cache/fin_assets}/kafka-<version>/ (outside the clone).
# Env: KAFKA_PORT (default 9092; the KRaft controller listens on KAFKA_PORT+1),
#      FIN_RUN_DIR (default <repo>/.run; state in $FIN_RUN_DIR/kafka-$KAFKA_PORT/),
#      KAFKA_VERSION (default 4.4.0), KAFKA_HEAP_OPTS (default -Xmx512m -Xms256m),
#      KAFKA_START_TIMEOUT (seconds, default 90).
# Cluster: node N (1..KAFKA_NODES) serves on KAFKA_PORT+2(N-1), its controller one port up;
#      state in $FIN_RUN_DIR/kafka-cluster-$KAFKA_PORT/node-N/; KAFKA_CLUSTER_HEAP_OPTS (default
#      -Xmx384m -Xms128m per node); new and internal topics get replication factor
#      min(3, nodes) and min.insync.replicas min(2, nodes); KAFKA_STOP_TIMEOUT (default 20 s)
#      before a SIGKILL.
# `start` on a running broker and `stop` on a stopped one do nothing.
set -euo pipefail
source "$(dirname "$0")/_process_group.sh"

repo_dir="$(cd "$(dirname "$0")/.." && pwd)"
kafka_version="${KAFKA_VERSION:-4.4.0}"
log4j_version="2.24.3"
slf4j_version="2.0.16"
port="${KAFKA_PORT:-9092}"
controller_port="$((port + 1))"
run_dir="${FIN_RUN_DIR:-$repo_dir/.run}"
state_dir="$run_dir/kafka-$port"
cache_dir="${FIN_CACHE_DIR:-$HOME/.cache/fin_assets}/kafka-$kafka_version"
pid_file="$state_dir/kafka.pid"
log_file="$state_dir/kafka.log"
start_timeout="${KAFKA_START_TIMEOUT:-90}"

say() { echo "kafka.sh: $*" >&2; }

fetch_jars() {
    [ -f "$cache_dir/.complete" ] && return 0
    command -v mvn >/dev/null || { say "mvn is required to fetch Kafka"; exit 1; }
    say "fetching Apache Kafka $kafka_version jars from Maven Central into $cache_dir (first use)"
    local started=$SECONDS
    mkdir -p "$cache_dir"
    local tmp
    tmp="$(mktemp -d)"
    # A pom whose only purpose is to resolve the broker's runtime classpath. slf4j 2 + the
    # log4j2 binding so that the broker logs through log4j2 (Kafka 4 uses log4j2).
    cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.fin_assets</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$kafka_version</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$slf4j_version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$log4j_version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$log4j_version</version></dependency>
  </dependencies>
</project>
EOF
    rm -rf "$cache_dir/libs"
    if ! mvn -q -B -f "$tmp/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$cache_dir/libs" -DincludeScope=runtime >"$tmp/mvn.log" 2>&1; then
        say "mvn failed:"
        cat "$tmp/mvn.log" >&2
        exit 1
    fi
    rm -rf "$tmp"
    cat >"$cache_dir/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
EOF
    touch "$cache_dir/.complete"
    say "fetched $(ls "$cache_dir/libs" | wc -l) jars in $((SECONDS - started)) s"
}

java_cmd() {
    # shellcheck disable=SC2086
    java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$cache_dir/log4j2.properties" \
        -cp "$cache_dir/libs/*" "$@"
}

running_pid() { group_pid "$pid_file"; }

write_config() {
    mkdir -p "$state_dir/data"
    cat >"$state_dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$state_dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
EOF
}

format_storage() {
    [ -f "$state_dir/data/meta.properties" ] && return 0
    say "formatting KRaft storage in $state_dir/data"
    java_cmd kafka.tools.StorageTool format \
        --config "$state_dir/server.properties" \
        --cluster-id "$(java_cmd kafka.tools.StorageTool random-uuid)" >>"$log_file" 2>&1 \
        || { say "storage format failed, see $log_file"; tail -20 "$log_file" >&2; exit 1; }
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

broker_serves() {
    # A real metadata round trip, not just an open port: the broker has finished starting.
    local python="$repo_dir/.venv/bin/python"
    port_open "$port" || return 1
    if [ -x "$python" ]; then
        "$python" - "$port" <<'EOF' >/dev/null 2>&1
import sys
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sys.argv[1]}",
                         request_timeout_ms=3000)
admin.describe_cluster()
admin.close()
EOF
    else
        port_open "$port"
    fi
}

start() {
    if pid="$(running_pid)"; then
        say "already running (pid $pid) on 127.0.0.1:$port"
        return 0
    fi
    fetch_jars
    mkdir -p "$state_dir"
    write_config
    format_storage
    if port_open "$port" || port_open "$controller_port"; then
        say "port $port or $controller_port is taken by another process"
        exit 1
    fi
    local started=$SECONDS
    # set -m: the broker gets its own process group, so `stop` can signal the whole group
    # and an interactive Ctrl-C in the caller's shell does not reach it.
    set -m
    # shellcheck disable=SC2086
    nohup java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$cache_dir/log4j2.properties" \
        -cp "$cache_dir/libs/*" kafka.Kafka "$state_dir/server.properties" \
        >>"$log_file" 2>&1 </dev/null &
    local pid=$!
    set +m
    echo "$pid" >"$pid_file"
    until broker_serves; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "broker exited during start-up, see $log_file"
            tail -20 "$log_file" >&2
            rm -f "$pid_file"
            exit 1
        fi
        if ((SECONDS - started > start_timeout)); then
            say "broker not serving after ${start_timeout} s, stopping it; see $log_file"
            stop
            exit 1
        fi
        sleep 0.5
    done
    say "started (pid $pid) on 127.0.0.1:$port in $((SECONDS - started)) s; log: $log_file"
}

stop() { stop_group "$pid_file" "kafka.sh"; }

status() {
    if pid="$(running_pid)"; then
        echo "running (pid $pid) on 127.0.0.1:$port; log: $log_file"
    else
        echo "stopped (127.0.0.1:$port)"
        return 3
    fi
}

# -- cluster ---------------------------------------------------------------------------------

nodes="${KAFKA_NODES:-3}"
cluster_dir="$run_dir/kafka-cluster-$port"
cluster_heap="${KAFKA_CLUSTER_HEAP_OPTS:--Xmx384m -Xms128m}"

node_port() { echo "$((port + 2 * ($1 - 1)))"; }
node_dir() { echo "$cluster_dir/node-$1"; }
node_pid_file() { echo "$cluster_dir/node-$1/kafka.pid"; }
node_log() { echo "$cluster_dir/node-$1/kafka.log"; }
min() { echo "$(($1 < $2 ? $1 : $2))"; }

write_node_config() {
    local n="$1" dir voters="" i broker_port replicas min_isr
    dir="$(node_dir "$n")"
    broker_port="$(node_port "$n")"
    for i in $(seq 1 "$nodes"); do
        voters+="${voters:+,}$i@127.0.0.1:$(($(node_port "$i") + 1))"
    done
    replicas="$(min 3 "$nodes")"
    min_isr="$(min 2 "$nodes")"
    mkdir -p "$dir/data"
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$broker_port,CONTROLLER://127.0.0.1:$((broker_port + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$broker_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
unclean.leader.election.enable=false
log.retention.hours=168
EOF
}

format_node() {
    local n="$1"
    [ -f "$(node_dir "$n")/data/meta.properties" ] && return 0
    java_cmd kafka.tools.StorageTool format --config "$(node_dir "$n")/server.properties" \
        --cluster-id "$(cat "$cluster_dir/cluster.id")" >>"$(node_log "$n")" 2>&1 \
        || { say "node $n: storage format failed, see $(node_log "$n")"; exit 1; }
}

launch_node() {
    local n="$1" pid broker_port
    broker_port="$(node_port "$n")"
    if pid="$(group_pid "$(node_pid_file "$n")")"; then
        say "node $n already running (pid $pid)"
        return 0
    fi
    if port_open "$broker_port" || port_open "$((broker_port + 1))"; then
        say "node $n: port $broker_port or $((broker_port + 1)) is taken by another process"
        exit 1
    fi
    set -m  # its own process group, as for the single node
    # shellcheck disable=SC2086
    nohup java $cluster_heap -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$cache_dir/log4j2.properties" \
        -cp "$cache_dir/libs/*" kafka.Kafka "$(node_dir "$n")/server.properties" \
        >>"$(node_log "$n")" 2>&1 </dev/null &
    set +m
    echo "$!" >"$(node_pid_file "$n")"
}

# cluster_serves [N]: a metadata round trip (through node N, or any node) lists every node
# as a registered broker.
cluster_serves() {
    local servers="" i
    for i in $(seq 1 "$nodes"); do servers+="${servers:+,}127.0.0.1:$(node_port "$i")"; done
    if [ -n "${1:-}" ]; then servers="127.0.0.1:$(node_port "$1")"; fi
    "$repo_dir/.venv/bin/python" - "$servers" "$nodes" <<'EOF' >/dev/null 2>&1
import sys
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1].split(","), request_timeout_ms=3000,
                         bootstrap_timeout_ms=3000)
try:
    assert len(admin.describe_cluster()["brokers"]) == int(sys.argv[2])
finally:
    admin.close()
EOF
}

# wait_cluster STARTED [N]: until the cluster (or node N) serves; fails when a node being
# started exits or after KAFKA_START_TIMEOUT.
wait_cluster() {
    local started="$1" only="${2:-}" i
    until cluster_serves "$only"; do
        for i in $(seq 1 "$nodes"); do
            [ -n "$only" ] && [ "$only" != "$i" ] && continue
            if ! group_pid "$(node_pid_file "$i")" >/dev/null; then
                say "node $i exited during start-up, see $(node_log "$i")"
                tail -20 "$(node_log "$i")" >&2
                exit 1
            fi
        done
        if ((SECONDS - started > start_timeout)); then
            say "cluster not serving after ${start_timeout} s; see $cluster_dir/node-*/kafka.log"
            exit 1
        fi
        sleep 0.5
    done
}

cluster_start() {
    fetch_jars
    mkdir -p "$cluster_dir"
    [ -s "$cluster_dir/cluster.id" ] \
        || java_cmd kafka.tools.StorageTool random-uuid >"$cluster_dir/cluster.id"
    local started=$SECONDS n
    for n in $(seq 1 "$nodes"); do
        write_node_config "$n"
        format_node "$n"
    done
    # All at once: no node finishes starting before a majority of the controllers is up.
    for n in $(seq 1 "$nodes"); do launch_node "$n"; done
    wait_cluster "$started"
    say "cluster of $nodes nodes serving on 127.0.0.1:$(node_port 1)..$(node_port "$nodes")" \
        "in $((SECONDS - started)) s; logs: $cluster_dir/node-*/kafka.log"
}

cluster_stop() {
    local files=() n
    for n in $(seq 1 "$nodes"); do files+=("$(node_pid_file "$n")"); done
    stop_groups "${KAFKA_STOP_TIMEOUT:-20}" "kafka.sh cluster" "${files[@]}"
}

cluster_status() {
    local n pid down=0
    for n in $(seq 1 "$nodes"); do
        if pid="$(group_pid "$(node_pid_file "$n")")"; then
            echo "node $n running (pid $pid) on 127.0.0.1:$(node_port "$n")"
        else
            echo "node $n stopped (127.0.0.1:$(node_port "$n"))"
            down=1
        fi
    done
    return $((down ? 3 : 0))
}

check_node_number() {
    if ! [[ "${1:-}" =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > nodes)); then
        say "a node number 1..$nodes is expected, got '${1:-}'"
        exit 2
    fi
}

node_start() {
    check_node_number "$1"
    [ -f "$(node_dir "$1")/data/meta.properties" ] \
        || { say "node $1 was never formatted: run cluster-start first"; exit 1; }
    local started=$SECONDS
    launch_node "$1"
    wait_cluster "$started" "$1"
    say "node $1 serving (pid $(cat "$(node_pid_file "$1")")) in $((SECONDS - started)) s"
}

node_stop() {
    check_node_number "$1"
    stop_groups "${KAFKA_STOP_TIMEOUT:-20}" "kafka.sh node $1" "$(node_pid_file "$1")"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    cluster-start) cluster_start ;;
    cluster-stop) cluster_stop ;;
    cluster-status) cluster_status ;;
    node-start) node_start "${2:-}" ;;
    node-stop) node_stop "${2:-}" ;;
    fetch)
        fetch_jars
        echo "$cache_dir"
        ;;
    *)
        echo "usage: $0 start|stop|status | cluster-start|cluster-stop|cluster-status" \
            "| node-start N|node-stop N | fetch" >&2
        exit 2
        ;;
esac
