#!/usr/bin/env bash
# A local Elasticsearch (or OpenSearch) for development and tests, without Docker.
#
#   scripts/elasticsearch.sh start|stop|status
#   scripts/elasticsearch.sh useradd NAME ROLE[,ROLE]   (secured mode; password on stdin)
#   scripts/elasticsearch.sh home                       (prints the unpacked distribution)
#
# Three shapes, chosen by the environment:
#   plain (default)   one node, HTTP, no security: what scripts/test.sh runs.
#   ES_SECURITY=1     one node with security and TLS on HTTP, like the docker stack: the
#                     certificates are made by docker/setup/certs.sh with the distribution's own
#                     bin/elasticsearch-certutil; `elastic` gets ELASTIC_PASSWORD (bootstrap
#                     password in the keystore, from stdin); roles.yml is generated from the role
#                     bodies docker/setup/setup.sh sends (docker/setup/roles/*.json), and users
#                     are added to the file realm with `useradd`. The integration-test zip has
#                     no analysis-common module, so the native realm's .security index cannot be
#                     created there: file realm it is (docs/search-stack.md).
#   ES_NODES=3        a cluster of N plain nodes on loopback (ES_PORT, ES_PORT+1, ... unless
#                     ES_HTTP_PORTS / ES_TRANSPORT_PORTS list the ports, comma-separated).
#
# The integration-test distribution is fetched from Maven Central with Maven on first use and
# cached outside the clone in ${FIN_CACHE_DIR:-$HOME/.cache/fin_assets}. Each node gets its own
# state folder $FIN_RUN_DIR/elasticsearch-<http port> (config, data, logs, pid).
#
# Environment:
#   ES_PORT        HTTP port (default 9200); transport uses the default free-port range
#                  (cluster: ES_PORT+100+i unless ES_TRANSPORT_PORTS is set).
#   FIN_RUN_DIR    state root (default <repo>/.run)
#   FIN_CACHE_DIR  download cache (default ~/.cache/fin_assets)
#   ES_FLAVOR      elasticsearch (default) or opensearch (plain mode only)
#   ES_VERSION     default 8.19.21 (elasticsearch) / 2.19.6 (opensearch); both run on Java 17
#   ES_HEAP        JVM heap per node (default 512m)
#   ES_START_TIMEOUT  seconds to wait for yellow/green (default 180)
#   ES_RUN_AS      user when started as root (default nobody): Elasticsearch refuses to run as
#                  root, so the node runs under this user through setpriv and owns its state.
#   ES_SECURITY, ELASTIC_PASSWORD, ES_ROLES_DIR (default <repo>/docker/setup/roles): secured mode.
#   ES_FRONT_PORT  secured mode: port of the TLS front that answers the root endpoint `GET /`
#                  (default ES_PORT+1), for Logstash: scripts/elasticsearch_front.py says why.
#   ES_NODES, ES_HTTP_PORTS, ES_TRANSPORT_PORTS: cluster mode.
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
secured="${ES_SECURITY:-0}"
nodes="${ES_NODES:-1}"
roles_dir="${ES_ROLES_DIR:-$repo/docker/setup/roles}"

log() { echo "elasticsearch.sh: $*" >&2; }

# HTTP (and, for a cluster, transport) ports of every node.
IFS=, read -r -a http_ports <<<"${ES_HTTP_PORTS:-}"
IFS=, read -r -a transport_ports <<<"${ES_TRANSPORT_PORTS:-}"
if [ "${#http_ports[@]}" -eq 0 ]; then
    for ((i = 0; i < nodes; i++)); do http_ports+=("$((port + i))"); done
fi
nodes="${#http_ports[@]}"
if [ "$nodes" -gt 1 ] && [ "${#transport_ports[@]}" -eq 0 ]; then
    for ((i = 0; i < nodes; i++)); do transport_ports+=("$((port + 100 + i))"); done
fi
if [ "$nodes" -gt 1 ] && [ "${#transport_ports[@]}" -ne "$nodes" ]; then
    log "ES_TRANSPORT_PORTS needs $nodes ports, got '${ES_TRANSPORT_PORTS:-}'"
    exit 2
fi
if [ "$nodes" -gt 1 ] && [ "$secured" = 1 ]; then
    log "ES_SECURITY=1 runs a single node; the cluster mode is plain HTTP"
    exit 2
fi
if { [ "$nodes" -gt 1 ] || [ "$secured" = 1 ]; } && [ "$flavor" != elasticsearch ]; then
    log "the secured and cluster modes are for ES_FLAVOR=elasticsearch"
    exit 2
fi

scheme=http
[ "$secured" = 1 ] && scheme=https

state_of() { echo "$run_root/elasticsearch-$1"; }
url_of() { echo "$scheme://127.0.0.1:$1"; }

# health PORT: the cluster health JSON as this node answers it.
health() {
    local state
    state="$(state_of "$1")"
    if [ "$secured" = 1 ]; then
        # The password reaches curl on a pipe, not on its command line.
        curl -fsS -m 5 --cacert "$state/config/certs/ca/ca.crt" \
            -K <(printf 'user = "elastic:%s"\n' "${ELASTIC_PASSWORD:-}") \
            "$(url_of "$1")/_cluster/health" 2>/dev/null
    else
        curl -fsS -m 5 "$(url_of "$1")/_cluster/health" 2>/dev/null
    fi
}

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

java_home() {
    echo "${ES_JAVA_HOME:-${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}}"
}

# write_config STATE HTTP_PORT INDEX: the node's yml (INDEX: its position in a cluster).
write_config() {
    local state="$1" http_port="$2" index="$3" conf="$1/config"
    {
        echo "# Written by scripts/elasticsearch.sh: a throwaway node for development and tests."
        echo "network.host: 127.0.0.1"
        echo "http.port: $http_port"
        echo "path.data: $state/data"
        echo "path.logs: $state/logs"
        echo "# Small shared disks: do not block writes or allocation on disk usage."
        echo "cluster.routing.allocation.disk.threshold_enabled: false"
        if [ "$nodes" -gt 1 ]; then
            local seeds="" names="" i
            for ((i = 0; i < nodes; i++)); do
                seeds+="${seeds:+, }\"127.0.0.1:${transport_ports[i]}\""
                names+="${names:+, }\"node-${http_ports[i]}\""
            done
            echo "cluster.name: fin-assets-cluster-${http_ports[0]}"
            echo "node.name: node-$http_port"
            echo "transport.port: ${transport_ports[index]}"
            echo "discovery.seed_hosts: [$seeds]"
            echo "cluster.initial_master_nodes: [$names]"
        else
            echo "cluster.name: fin-assets-$http_port"
            echo "node.name: local-$http_port"
            echo "discovery.type: single-node"
        fi
    } >"$conf/$flavor.yml"
    if [ "$flavor" != elasticsearch ]; then
        :
    elif [ "$secured" = 1 ]; then
        # As the docker stack: security on, HTTPS with certs.sh's certificate; a single node
        # has no transport peers to encrypt against.
        cat >>"$conf/$flavor.yml" <<EOF
xpack.security.enabled: true
xpack.security.http.ssl.enabled: true
xpack.security.http.ssl.key: certs/elasticsearch/elasticsearch.key
xpack.security.http.ssl.certificate: certs/elasticsearch/elasticsearch.crt
xpack.security.http.ssl.certificate_authorities: certs/ca/ca.crt
xpack.security.transport.ssl.enabled: false
EOF
    else
        # The test nodes speak plain HTTP without users; the docker stack turns security on.
        echo "xpack.security.enabled: false" >>"$conf/$flavor.yml"
    fi
    mkdir -p "$conf/jvm.options.d"
    printf -- '-Xms%s\n-Xmx%s\n' "$heap" "$heap" >"$conf/jvm.options.d/heap.options"
}

# roles.yml from the JSON bodies setup.sh sends: JSON is YAML, so each body goes under its
# name, indented. One source for the API roles and the file-realm roles.
write_roles() {
    local path name
    : >"$1"
    for path in "$roles_dir"/*.json; do
        name="$(basename "$path" .json)"
        echo "$name:" >>"$1"
        sed 's/^/  /' "$path" >>"$1"
    done
}

# run_tool STATE TOOL ARGS...: a bin/ tool of the node's distribution on its config.
run_tool() {
    local state="$1" tool="$2"
    shift 2
    ES_JAVA_HOME="$(java_home)" ES_PATH_CONF="$state/config" "$state/home/bin/$tool" "$@"
}

secure_config() {
    local state="$1"
    [ -n "${ELASTIC_PASSWORD:-}" ] || { log "ES_SECURITY=1 needs ELASTIC_PASSWORD"; return 1; }
    ES_HOME="$state/home" CERTS_DIR="$state/config/certs" CERTS_OWNER="$run_as_owner" \
        ES_JAVA_HOME="$(java_home)" bash "$repo/docker/setup/certs.sh" >&2
    write_roles "$state/config/roles.yml"
    run_tool "$state" elasticsearch-keystore create >&2
    printf '%s' "$ELASTIC_PASSWORD" | run_tool "$state" elasticsearch-keystore add -x bootstrap.password >&2
}

# prepare_node INDEX: state folder, config, distribution copy; prints the state folder.
prepare_node() {
    local index="$1" http_port="${http_ports[$1]}" home state
    state="$(state_of "$http_port")"
    home="$(ensure_dist)"
    mkdir -p "$state"
    rm -rf "$state/config" "$state/tmp"
    cp -r "$home/config" "$state/config"
    mkdir -p "$state/data" "$state/logs" "$state/tmp"
    # A copy of the distribution inside the state folder, hard-linked (no extra disk): as root
    # the node user cannot read the cache under /root, and the secured mode's tools write there.
    if [ ! -x "$state/home/bin/$flavor" ]; then
        rm -rf "$state/home"
        cp -al "$home" "$state/home" 2>/dev/null || cp -a "$home" "$state/home"
    fi
    write_config "$state" "$http_port" "$index"
    [ "$secured" = 1 ] && secure_config "$state"
    if [ "$(id -u)" = 0 ]; then
        # OpenSearch's launcher writes gc.log relative to its home: that copy's logs/ too.
        chown -R "$run_as:" "$state/config" "$state/data" "$state/logs" "$state/tmp" "$state/home/logs"
        if ! setpriv --reuid="$run_as" --regid="$(id -g "$run_as")" --clear-groups \
            test -r "$state/home/bin/$flavor" -a -w "$state/data"; then
            log "user $run_as cannot reach $state: make its parent folders world-searchable"
            return 1
        fi
    fi
    echo "$state"
}

# launch_node STATE: starts the node in its own session and process group; PID in STATE/pid.
launch_node() {
    local state="$1" launcher=() java
    if [ "$(id -u)" = 0 ]; then
        launcher=(setpriv --reuid="$run_as" --regid="$(id -g "$run_as")" --clear-groups --)
    fi
    java="$(java_home)"
    # setsid: the node (launcher + server JVM) gets its own session and process group, so stop
    # can signal the whole group by PID and nothing inherits our terminal's signals.
    (
        cd "$state"
        export ES_JAVA_HOME="$java" OPENSEARCH_JAVA_HOME="$java" JAVA_HOME="$java"
        export ES_PATH_CONF="$state/config" OPENSEARCH_PATH_CONF="$state/config"
        export ES_TMPDIR="$state/tmp" OPENSEARCH_TMPDIR="$state/tmp"
        unset ES_JAVA_OPTS OPENSEARCH_JAVA_OPTS ELASTIC_PASSWORD
        exec setsid "${launcher[@]}" "$state/home/bin/$flavor" </dev/null >"$state/console.log" 2>&1
    ) &
    echo $! >"$state/pid"
}

# ready PORT: yellow/green, and in a cluster every node has joined.
ready() {
    local answer
    answer="$(health "$1")" || return 1
    echo "$answer" | grep -Eq '"status":"(yellow|green)"' || return 1
    echo "$answer" | grep -q "\"number_of_nodes\":$nodes," || return 1
}

# The secured node's front (scripts/elasticsearch_front.py): its own process group, its PID in
# the node's state folder.
front_port="${ES_FRONT_PORT:-$((port + 1))}"
front_pid_file() { echo "$(state_of "${http_ports[0]}")/front.pid"; }

start_front() {
    local state certs i
    state="$(state_of "${http_ports[0]}")"
    certs="$state/config/certs"
    group_pid "$(front_pid_file)" >/dev/null && return 0
    (
        exec setsid python3 "$repo/scripts/elasticsearch_front.py" \
            --listen "127.0.0.1:$front_port" --node "$(url_of "${http_ports[0]}")" \
            --cert "$certs/elasticsearch/elasticsearch.crt" --key "$certs/elasticsearch/elasticsearch.key" \
            --ca "$certs/ca/ca.crt" --version "$version" --cluster-name "fin-assets-${http_ports[0]}" \
            </dev/null >"$state/front.log" 2>&1
    ) &
    echo $! >"$(front_pid_file)"
    for i in $(seq 1 50); do
        if curl -s -o /dev/null -m 2 --cacert "$certs/ca/ca.crt" "https://127.0.0.1:$front_port/"; then
            log "root-endpoint front on https://127.0.0.1:$front_port"
            return 0
        fi
        sleep 0.2
    done
    log "the front did not start; $state/front.log:"
    cat "$state/front.log" >&2
    return 1
}

stop_all() {
    local p files=()
    if [ "$secured" = 1 ]; then stop_group "$(front_pid_file)" "elasticsearch.sh front ($front_port)"; fi
    for p in "${http_ports[@]}"; do files+=("$(state_of "$p")/pid"); done
    if [ "$nodes" -gt 1 ] && declare -F stop_groups >/dev/null; then
        # Together: nodes stopped one by one lose their quorum and hang in shutdown.
        stop_groups 30 "elasticsearch.sh cluster" "${files[@]}"
    else
        for p in "${http_ports[@]}"; do stop_group "$(state_of "$p")/pid" "elasticsearch.sh ($p)"; done
    fi
}

start() {
    local p running=0 free=1
    for p in "${http_ports[@]}"; do
        if pid="$(group_pid "$(state_of "$p")/pid")"; then
            log "already running (pid $pid) on $(url_of "$p")"
            running=$((running + 1))
        elif curl -s -o /dev/null -m 2 "$(url_of "$p")/" 2>/dev/null; then
            log "port $p already serves another node; refusing to start a second one"
            free=0
        fi
    done
    [ "$running" -eq "$nodes" ] && return 0
    [ "$free" = 1 ] || return 1
    command -v java >/dev/null || { log "java (17+) is required"; return 1; }
    run_as_owner="$run_as:$(id -gn "$run_as" 2>/dev/null || echo 0)"
    [ "$(id -u)" = 0 ] || run_as_owner="$(id -u):$(id -g)"
    local started=$SECONDS state i
    for ((i = 0; i < nodes; i++)); do
        state="$(prepare_node "$i")"
        log "starting $flavor $version on $(url_of "${http_ports[i]}") (heap $heap, state $state)"
        launch_node "$state"
    done
    while :; do
        for p in "${http_ports[@]}"; do
            state="$(state_of "$p")"
            if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
                log "node on port $p exited during start; last lines of $state/console.log:"
                tail -n 30 "$state/console.log" >&2
                stop_all
                return 1
            fi
        done
        if ready "${http_ports[0]}"; then
            log "ready in $((SECONDS - started)) s ($nodes node(s), $(url_of "${http_ports[0]}"))"
            if [ "$secured" = 1 ] && ! start_front; then
                stop_all
                return 1
            fi
            return 0
        fi
        if [ $((SECONDS - started)) -ge "$timeout" ]; then
            log "not ready after $timeout s; stopping"
            stop_all
            return 1
        fi
        sleep 1
    done
}

status() {
    local p rc=0
    for p in "${http_ports[@]}"; do
        if pid="$(group_pid "$(state_of "$p")/pid")"; then
            echo "running (pid $pid) on $(url_of "$p"): $(health "$p" || echo 'not answering')"
        else
            echo "not running on port $p"
            rc=3
        fi
    done
    return "$rc"
}

# useradd NAME ROLES: a file-realm user of the secured node; the password is read from stdin.
# Returns once the node authenticates the user (the realm re-reads its files: no restart).
useradd() {
    [ "$secured" = 1 ] || { log "useradd is for ES_SECURITY=1"; return 2; }
    local name="$1" roles="$2" state password
    state="$(state_of "${http_ports[0]}")"
    IFS= read -r password
    run_tool "$state" elasticsearch-users userdel "$name" >/dev/null 2>&1 || true
    # The tool prompts for the password when -p is absent and reads it from stdin.
    printf '%s\n%s\n' "$password" "$password" | run_tool "$state" elasticsearch-users useradd "$name" -r "$roles" >/dev/null
    [ "$(id -u)" = 0 ] && chown "$run_as:" "$state/config/users" "$state/config/users_roles"
    # Done when the node knows the user: the realm re-reads its files within seconds.
    local escaped="${password//\\/\\\\}" i
    escaped="${escaped//\"/\\\"}"
    for i in $(seq 1 120); do
        if curl -fsS -o /dev/null --cacert "$state/config/certs/ca/ca.crt" \
            -K <(printf 'user = "%s:%s"\n' "$name" "$escaped") \
            "https://127.0.0.1:${http_ports[0]}/_security/_authenticate" 2>/dev/null; then
            log "file-realm user $name with roles $roles"
            return 0
        fi
        sleep 0.5
    done
    log "file-realm user $name: the node still does not authenticate it after 60 s"
    return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop_all ;;
    status) status ;;
    home) ensure_dist ;;
    useradd)
        [ $# -eq 3 ] || { echo "usage: $0 useradd NAME ROLE[,ROLE] (password on stdin)" >&2; exit 2; }
        useradd "$2" "$3"
        ;;
    *) echo "usage: $0 start|stop|status|home|useradd NAME ROLES" >&2; exit 2 ;;
esac
