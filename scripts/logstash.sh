#!/usr/bin/env bash
# A local Logstash running the project's own pipelines, for development and tests, without Docker.
#
#   scripts/logstash.sh start|stop|status
#   scripts/logstash.sh home          (prints the Logstash distribution it runs)
#
# It runs logstash/config/logstash.yml, logstash/config/pipelines.yml and logstash/pipeline/*.conf
# unchanged: its settings folder links to them, and everything that differs from the docker stack
# comes from the environment, under the names docker/docker-compose.yml sets.
#
# Which Logstash:
#   1. LOGSTASH_HOME, if set (any 8.x distribution);
#   2. else ../shared/tools/logstash/install.sh beside the clone (8.15.0, unpacked once into
#      ${FIN_CACHE_DIR:-~/.cache/fin_assets}/logstash-8.15.0; its folder may be read-only);
#   3. else nothing is downloaded: unpack the official 8.x tarball (logstash-<v>-linux-x86_64.tar.gz
#      from Elastic's downloads) and set LOGSTASH_HOME to it.
#
# Environment (defaults for a local stack; the secrets have none):
#   LOGSTASH_API_PORT       monitoring API port (default 9600), also names the state folder
#                           $FIN_RUN_DIR/logstash-<port>/ (data: queues, sincedbs, dead letter
#                           queue, rejected/; logs; settings; pid)
#   FIN_RUN_DIR             state root (default <repo>/.run)
#   FIN_DATA_DIR            the batch flow's data folder, read for Datos_financieros.csv (default
#                           <repo>/data)
#   KAFKA_BOOTSTRAP_SERVERS default 127.0.0.1:9092; KAFKA_SECURITY_PROTOCOL and the other KAFKA_*
#                           of the pipeline pass through (docs/search-stack.md)
#   ELASTICSEARCH_HOSTS     default https://127.0.0.1:9201 (the secured node's root-endpoint front,
#                           scripts/elasticsearch.sh with ES_SECURITY=1)
#   ELASTICSEARCH_USER      default logstash_writer
#   ELASTICSEARCH_PASSWORD  required, by environment only (never on a command line)
#   ELASTICSEARCH_CA        required: the CA of the node's certificate
#   LS_JAVA_HOME            default: the JDK of `java` on PATH (17+)
#   LS_JAVA_OPTS            default -Xms512m -Xmx512m, as in docker-compose.yml
#   LOGSTASH_START_TIMEOUT  seconds until both pipelines run (default 180)
#   LOGSTASH_STOP_TIMEOUT   seconds for a graceful stop before SIGKILL (default 60)
#   LOGSTASH_START_ATTEMPTS starts tried while the monitoring API gives empty replies (default 10)
#   LOGSTASH_PIPELINES_YML  another pipelines.yml (bench/bench_logstash.py's setting variants);
#                           default the repository's
set -euo pipefail
source "$(dirname "$0")/_process_group.sh"
repo="$(cd "$(dirname "$0")/.." && pwd)"

api_port="${LOGSTASH_API_PORT:-9600}"
run_root="${FIN_RUN_DIR:-$repo/.run}"
state="$run_root/logstash-$api_port"
cache="${FIN_CACHE_DIR:-$HOME/.cache/fin_assets}"
pid_file="$state/pid"
start_timeout="${LOGSTASH_START_TIMEOUT:-180}"
stop_timeout="${LOGSTASH_STOP_TIMEOUT:-60}"
start_attempts="${LOGSTASH_START_ATTEMPTS:-10}"
pipelines=(fin_unificado fin_rejected)

log() { echo "logstash.sh: $*" >&2; }

logstash_home() {
    if [ -n "${LOGSTASH_HOME:-}" ]; then
        [ -x "$LOGSTASH_HOME/bin/logstash" ] || { log "LOGSTASH_HOME=$LOGSTASH_HOME has no bin/logstash"; return 1; }
        echo "$LOGSTASH_HOME"
        return 0
    fi
    local installer="$repo/../shared/tools/logstash/install.sh"
    if [ -x "$installer" ] || [ -f "$installer" ]; then
        bash "$installer" "$cache/logstash-8.15.0"
        return 0
    fi
    log "no Logstash: set LOGSTASH_HOME to an unpacked Logstash 8.x (the official"
    log "logstash-<version>-linux-x86_64.tar.gz), or keep ../shared/tools/logstash beside the clone"
    return 1
}

java_home() {
    echo "${LS_JAVA_HOME:-${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}}"
}

api() { curl -fsS -m 15 "http://127.0.0.1:$api_port$1" 2>/dev/null; }

# Both pipelines are loaded and running (the API lists only running pipelines).
ready() {
    local p answer
    for p in "${pipelines[@]}"; do
        answer="$(api "/_node/pipelines/$p")" || return 1
        echo "$answer" | grep -q "\"$p\"" || return 1
    done
}

start() {
    if pid="$(group_pid "$pid_file")"; then
        log "already running (pid $pid), API on http://127.0.0.1:$api_port"
        return 0
    fi
    if curl -s -o /dev/null -m 2 "http://127.0.0.1:$api_port/" 2>/dev/null; then
        log "port $api_port already serves another process; refusing to start"
        return 1
    fi
    [ -n "${ELASTICSEARCH_PASSWORD:-}" ] || { log "ELASTICSEARCH_PASSWORD is required (logstash_writer's)"; return 1; }
    [ -f "${ELASTICSEARCH_CA:-}" ] || { log "ELASTICSEARCH_CA must name the CA certificate file"; return 1; }
    command -v java >/dev/null || [ -n "${LS_JAVA_HOME:-}" ] || { log "java (17+) is required"; return 1; }
    local home java
    home="$(logstash_home)"
    java="$(java_home)"
    mkdir -p "$state/settings" "$state/data" "$state/logs"
    # The distribution's JVM and log4j settings; the project's two files, linked unchanged.
    cp "$home/config/jvm.options" "$home/config/log4j2.properties" "$state/settings/"
    ln -sfn "$repo/logstash/config/logstash.yml" "$state/settings/logstash.yml"
    ln -sfn "${LOGSTASH_PIPELINES_YML:-$repo/logstash/config/pipelines.yml}" "$state/settings/pipelines.yml"
    # fin_rejected's reader fails to start before this folder exists (elastic/logstash#12807);
    # docker-compose.yml's entrypoint makes it the same way.
    mkdir -p "$state/data/dead_letter_queue/fin_unificado"
    local attempt
    for attempt in $(seq 1 "$start_attempts"); do
        launch "$home" "$java"
        case "$(wait_ready)" in
            ready) return 0 ;;
            api-broken)
                # Seen with Logstash 8.15.0 here in about half of the starts, up to five in a row: the pipelines run but
                # its web server answers every request with an empty reply for the life of the
                # process (docs/search-stack.md). The compose healthcheck needs the API: restart.
                log "pipelines running but the monitoring API gives empty replies; restarting (attempt $attempt)"
                stop
                ;;
            *) return 1 ;;
        esac
    done
    log "the monitoring API never answered in $start_attempts starts"
    return 1
}

launch() {
    local home="$1" java="$2"
    log "starting Logstash $(sed -n "s/^logstash: *//p" "$home/logstash-core/versions-gem-copy.yml" 2>/dev/null) (API port $api_port, state $state)"
    (
        cd "$state"
        export LS_JAVA_HOME="$java"
        export LS_JAVA_OPTS="${LS_JAVA_OPTS:--Xms512m -Xmx512m}"
        export LOGSTASH_API_HOST=127.0.0.1 LOGSTASH_API_PORT="$api_port"
        export LOGSTASH_STATE_DIR="$state/data" LOGSTASH_LOG_DIR="$state/logs"
        export LOGSTASH_DLQ_PATH="$state/data/dead_letter_queue"
        export LOGSTASH_PIPELINE_DIR="$repo/logstash/pipeline"
        export FIN_DATA_DIR="${FIN_DATA_DIR:-$repo/data}"
        export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
        # The container's default (its bundled JDK's CA store) does not exist here: this JDK's.
        export KAFKA_SSL_TRUSTSTORE_LOCATION="${KAFKA_SSL_TRUSTSTORE_LOCATION:-$java/lib/security/cacerts}"
        export ELASTICSEARCH_HOSTS="${ELASTICSEARCH_HOSTS:-https://127.0.0.1:9201}"
        export ELASTICSEARCH_USER="${ELASTICSEARCH_USER:-logstash_writer}"
        exec setsid "$home/bin/logstash" --path.settings "$state/settings" </dev/null >"$state/console.log" 2>&1
    ) &
    echo $! >"$pid_file"
}

# wait_ready: prints ready, api-broken (the log says both pipelines run, the API has answered
# nothing for 20 s since) or failed.
wait_ready() {
    local started=$SECONDS running_since=""
    # The API is asked once the log says both pipelines run.
    until grep -qs 'Pipelines running {:count=>2' "$state/console.log" && ready; do
        if ! group_pid "$pid_file" >/dev/null; then
            log "Logstash exited during start; last lines of $state/console.log:"
            tail -n 40 "$state/console.log" >&2
            rm -f "$pid_file"
            echo failed
            return
        fi
        if [ -z "$running_since" ] && grep -qs 'Pipelines running {:count=>2' "$state/console.log"; then
            running_since=$SECONDS
        fi
        if [ -n "$running_since" ] && [ $((SECONDS - running_since)) -ge 20 ]; then
            echo api-broken
            return
        fi
        if [ $((SECONDS - started)) -ge "$start_timeout" ]; then
            log "pipelines not running after $start_timeout s; stopping. Errors in $state/logs:"
            grep -hE '\]\[(ERROR|FATAL)' "$state"/logs/logstash-plain*.log 2>/dev/null | tail -n 5 | cut -c1-400 >&2 || true
            stop
            echo failed
            return
        fi
        sleep 1
    done
    log "ready in $((SECONDS - started)) s: pipelines ${pipelines[*]}, API http://127.0.0.1:$api_port"
    echo ready
}

# SIGTERM lets Logstash drain its in-flight batches into the persistent queue; a Logstash that
# cannot (Elasticsearch down) is killed after LOGSTASH_STOP_TIMEOUT: the queue keeps the rest.
stop() {
    local pid
    if ! pid="$(group_pid "$pid_file")"; then
        rm -f "$pid_file"
        log "not running"
        return 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || true
    local deadline=$((SECONDS + stop_timeout))
    while kill -0 -- "-$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
    if kill -0 -- "-$pid" 2>/dev/null; then
        log "still running after $stop_timeout s; killing process group $pid"
        kill -KILL -- "-$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.25; done
    fi
    rm -f "$pid_file"
    log "stopped (pid $pid)"
}

status() {
    local pid
    if pid="$(group_pid "$pid_file")"; then
        if ready; then
            echo "running (pid $pid): pipelines ${pipelines[*]}, API http://127.0.0.1:$api_port"
        else
            echo "running (pid $pid), pipelines not all running yet"
        fi
    else
        echo "not running (API port $api_port)"
        return 3
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    home) logstash_home ;;
    *) echo "usage: $0 start|stop|status|home" >&2; exit 2 ;;
esac
