#!/usr/bin/env bash
# A local single-node Elasticsearch (or OpenSearch) for development and tests, without Docker.
#
#   scripts/elasticsearch.sh start|stop|status
#
# The integration-test distribution is fetched from Maven Central with Maven on first use and
# cached outside the clone in ${FIN_CACHE_DIR:-$HOME/.cache/fin_assets}. Each port gets its own
# state folder $FIN_RUN_DIR/elasticsearch-$ES_PORT (config, data, logs, pid).
#
# Environment:
#   ES_PORT        HTTP port (default 9200); transport uses the default free-port range.
#   FIN_RUN_DIR    state root (default <repo>/.run)
#   FIN_CACHE_DIR  download cache (default ~/.cache/fin_assets)
#   ES_FLAVOR      elasticsearch (default) or opensearch
#   ES_VERSION     default 8.19.21 (elasticsearch) / 2.19.6 (opensearch); both run on Java 17
#   ES_HEAP        JVM heap (default 512m)
#   ES_START_TIMEOUT  seconds to wait for yellow/green (default 180)
#   ES_RUN_AS      user when started as root (default nobody): Elasticsearch refuses to run as
#                  root, so the node runs under this user through setpriv and owns its state.
set -euo pipefail
source "$(dirname "$0")/_process_group.sh"
repo="$(cd "$(dirname "$0")/.." && pwd)"

port="${ES_PORT:-9200}"
run_root="${FIN_RUN_DIR:-$repo/.run}"
cache="${FIN_CACHE_DIR:-$HOME/.cache/fin_assets}"
flavor="${ES_FLAVOR:-elasticsearch}"
case "$flavor" in
    elasticsearch) version="${ES_VERSION:-8.19.21}"; group_id="org.elasticsearch.distribution.integ-test-zip" ;;
    opensearch) version="${ES_VERSION:-2.19.6}"; group_id="org.opensearch.distribution.integ-test-zip" ;;
    *) echo "ES_FLAVOR must be elasticsearch or opensearch, got '$flavor'" >&2; exit 2 ;;
esac
heap="${ES_HEAP:-512m}"
timeout="${ES_START_TIMEOUT:-180}"
run_as="${ES_RUN_AS:-nobody}"

state="$run_root/elasticsearch-$port"
pid_file="$state/pid"
url="http://127.0.0.1:$port"

log() { echo "elasticsearch.sh: $*" >&2; }

running_pid() { group_pid "$pid_file"; }

health() { curl -fsS -m 5 "$url/_cluster/health" 2>/dev/null; }

# Download (Maven, into a cache-local repository) and unpack once; prints the unpacked home.
ensure_dist() {
    local home="$cache/$flavor-$version"
    if [ ! -x "$home/bin/$flavor" ]; then
        local m2="$cache/m2" started=$SECONDS
        log "downloading $group_id:$flavor:$version:zip from Maven Central"
        mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$m2" dependency:get \
            -Dartifact="$group_id:$flavor:$version:zip" -Dtransitive=false >&2
        local zip="$m2/${group_id//.//}/$flavor/$version/$flavor-$version.zip"
        # Unpack beside the target and rename, so an interrupted unzip never looks complete.
        local tmp
        tmp="$(mktemp -d "$cache/unpack.XXXXXX")"
        unzip -q "$zip" -d "$tmp"
        rm -rf "$home"
        mv "$tmp/$flavor-$version" "$home"
        rm -rf "$tmp"
        log "downloaded and unpacked in $((SECONDS - started)) s"
    fi
    echo "$home"
}

write_config() {
    local conf="$1"
    cat >"$conf/$flavor.yml" <<EOF
# Written by scripts/elasticsearch.sh: a throwaway single node for development and tests.
cluster.name: fin-assets-$port
node.name: local-$port
discovery.type: single-node
network.host: 127.0.0.1
http.port: $port
path.data: $state/data
path.logs: $state/logs
# Small shared disks: do not block writes or allocation on disk usage.
cluster.routing.allocation.disk.threshold_enabled: false
EOF
    if [ "$flavor" = elasticsearch ]; then
        # The test node speaks plain HTTP without users; the docker stack turns security on.
        echo "xpack.security.enabled: false" >>"$conf/$flavor.yml"
    fi
    mkdir -p "$conf/jvm.options.d"
    printf -- '-Xms%s\n-Xmx%s\n' "$heap" "$heap" >"$conf/jvm.options.d/heap.options"
}

start() {
    if pid="$(running_pid)"; then
        log "already running (pid $pid) on $url"
        return 0
    fi
    if health >/dev/null; then
        log "port $port already serves another node; refusing to start a second one"
        return 1
    fi
    command -v java >/dev/null || { log "java (17+) is required"; return 1; }
    local home started=$SECONDS
    home="$(ensure_dist)"
    mkdir -p "$state"
    rm -rf "$state/config" "$state/tmp"
    cp -r "$home/config" "$state/config"
    write_config "$state/config"
    mkdir -p "$state/data" "$state/logs" "$state/tmp"

    local launcher=()
    if [ "$(id -u)" = 0 ]; then
        # Root: run as $run_as. The cache under /root is not readable by that user, so the node
        # runs from a hard-linked copy of the distribution inside its state folder (no extra
        # disk), and owns config, data, logs and tmp.
        if [ ! -x "$state/home/bin/$flavor" ]; then
            rm -rf "$state/home"
            cp -al "$home" "$state/home" 2>/dev/null || cp -a "$home" "$state/home"
        fi
        home="$state/home"
        # OpenSearch's launcher writes gc.log relative to its home: that copy's logs/ too.
        chown -R "$run_as:" "$state/config" "$state/data" "$state/logs" "$state/tmp" "$home/logs"
        if ! setpriv --reuid="$run_as" --regid="$(id -g "$run_as")" --clear-groups \
            test -r "$home/bin/$flavor" -a -w "$state/data"; then
            log "user $run_as cannot reach $state: make its parent folders world-searchable"
            return 1
        fi
        launcher=(setpriv --reuid="$run_as" --regid="$(id -g "$run_as")" --clear-groups --)
    fi

    local java_home="${ES_JAVA_HOME:-${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}}"
    log "starting $flavor $version on $url (heap $heap, state $state)"
    # setsid: the node (launcher + server JVM) gets its own session and process group, so stop
    # can signal the whole group by PID and nothing inherits our terminal's signals.
    (
        cd "$state"
        export ES_JAVA_HOME="$java_home" OPENSEARCH_JAVA_HOME="$java_home" JAVA_HOME="$java_home"
        export ES_PATH_CONF="$state/config" OPENSEARCH_PATH_CONF="$state/config"
        export ES_TMPDIR="$state/tmp" OPENSEARCH_TMPDIR="$state/tmp"
        unset ES_JAVA_OPTS OPENSEARCH_JAVA_OPTS
        exec setsid "${launcher[@]}" "$home/bin/$flavor" </dev/null >"$state/console.log" 2>&1
    ) &
    echo $! >"$pid_file"

    local pid
    pid="$(cat "$pid_file")"
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "node exited during start; last lines of $state/console.log:"
            tail -n 30 "$state/console.log" >&2
            rm -f "$pid_file"
            return 1
        fi
        if health | grep -Eq '"status":"(yellow|green)"'; then
            log "ready in $((SECONDS - started)) s (pid $pid)"
            return 0
        fi
        if [ $((SECONDS - started)) -ge "$timeout" ]; then
            log "not ready after $timeout s; stopping it"
            stop
            return 1
        fi
        sleep 1
    done
}

stop() { stop_group "$pid_file" "elasticsearch.sh"; }

status() {
    if pid="$(running_pid)"; then
        echo "running (pid $pid) on $url: $(health || echo 'not answering')"
    else
        echo "not running on port $port"
        return 3
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
