# Sourced by kafka.sh and elasticsearch.sh: a service runs as the leader of its own process
# group, its PID in a file; it is found and stopped by that PID, never by name.

# group_pid PID_FILE: the leader's PID when its process group is alive, else fails.
group_pid() {
    [ -f "$1" ] || return 1
    local pid
    pid="$(cat "$1")"
    [ -n "$pid" ] && kill -0 -- "-$pid" 2>/dev/null && echo "$pid"
}

# stop_group PID_FILE NAME: SIGTERM the group, wait up to 30 s, then SIGKILL it.
stop_group() {
    local pid
    if ! pid="$(group_pid "$1")"; then
        rm -f "$1"
        echo "$2: not running" >&2
        return 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 -- "-$pid" 2>/dev/null; then
        echo "$2: still running after 30 s; killing process group $pid" >&2
        kill -KILL -- "-$pid" 2>/dev/null || true
        sleep 1
    fi
    rm -f "$1"
    echo "$2: stopped (pid $pid)" >&2
}

# stop_groups TIMEOUT NAME PID_FILE...: SIGTERM every group at once, wait up to TIMEOUT seconds
# for all of them, then SIGKILL the rest. For clusters: nodes stopped one after another lose
# their quorum and hang in shutdown, so they are stopped together.
stop_groups() {
    local timeout="$1" name="$2" file pid
    shift 2
    local -a pids=() files=()
    for file in "$@"; do
        if pid="$(group_pid "$file")"; then
            pids+=("$pid")
            files+=("$file")
            kill -TERM -- "-$pid" 2>/dev/null || true
        else
            rm -f "$file"
        fi
    done
    ((${#pids[@]})) || { echo "$name: not running" >&2; return 0; }
    local deadline=$((SECONDS + timeout)) alive
    while :; do
        alive=0
        for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
        ((alive && SECONDS < deadline)) || break
        sleep 0.5
    done
    for pid in "${pids[@]}"; do
        if kill -0 -- "-$pid" 2>/dev/null; then
            echo "$name: process group $pid still running after ${timeout} s; killing it" >&2
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
    done
    for _ in $(seq 1 20); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.25
    done
    rm -f "${files[@]}"
    echo "$name: stopped (pids ${pids[*]})" >&2
}
