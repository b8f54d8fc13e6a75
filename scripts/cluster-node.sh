#!/usr/bin/env bash
# One node of the three-node test cluster that scripts/start-cluster.sh starts beside the default broker:
#   scripts/cluster-node.sh kill N     SIGKILL node N's Erlang VM (a crash: no clean shutdown), wait until it is gone
#   scripts/cluster-node.sh start N    start node N the way start-cluster.sh does, wait until it runs and is back in
#                                      the cluster (a restarted node rejoins on its own: its database names its peers)
#   scripts/cluster-node.sh status N   print whether node N runs, and which nodes its cluster has running; exits 1 when
#                                      RabbitMQ does not run on it (down, booting, or paused by pause_minority)
# N is 1, 2 or 3: node clusterN@localhost, AMQP on 127.0.0.1:568N, Erlang distribution on 127.0.0.1:2568N, folders
# under /var/lib/rabbitmq/cluster/nodeN. start-cluster.sh and stop-cluster.sh source this file for these definitions.
#
# Runs as root, or through sudo otherwise (like start-broker.sh); the nodes run as the rabbitmq user, since Debian's
# rabbitmq-server wrapper switches to it (`su rabbitmq`, which keeps the RABBITMQ_* environment given here). Every wait
# is bounded by CLUSTER_WAIT seconds and ends with an error that names the node and its log.
set -euo pipefail

cluster_sudo=""
if [ "$(id -u)" -ne 0 ]; then cluster_sudo="sudo"; fi
CLUSTER_BASE=/var/lib/rabbitmq/cluster
CLUSTER_WAIT=60
CLUSTER_NODES="1 2 3"

node_name() { echo "cluster$1@localhost"; }
node_port() { echo $((5680 + $1)); }
node_dist_port() { echo $((25680 + $1)); }
node_dir() { echo "$CLUSTER_BASE/node$1"; }
node_pid_file() { echo "$(node_dir "$1")/$(node_name "$1").pid"; }
node_log() { echo "$(node_dir "$1")/log/$(node_name "$1").log"; }

cluster_fail() {
    echo "error: $*" >&2
    exit 1
}

check_node_number() {
    case "${1:-}" in
        1 | 2 | 3) ;;
        *) cluster_fail "the node number must be 1, 2 or 3, not '${1:-}'" ;;
    esac
}

# rabbitmqctl against node N (as the rabbitmq user, through Debian's wrapper).
ctl() {
    local n=$1
    shift
    $cluster_sudo rabbitmqctl -n "$(node_name "$n")" "$@"
}

node_responds() { ctl "$1" -q ping >/dev/null 2>&1; }

# The list $1 (names separated by spaces or new lines) on one line, separated by single spaces.
flat() { tr -s ' \n' '  ' <<<"$1" | sed 's/^ //; s/ $//'; }

# Whether the list $1 (names separated by spaces or new lines) holds the name $2.
has_name() { tr ' ' '\n' <<<"$1" | grep -x "$2" >/dev/null; }

# The running nodes of node N's cluster as node N sees them, one a line; nothing when N does not answer.
running_nodes() {
    ctl "$1" -q cluster_status --formatter json 2>/dev/null |
        grep -o '"running_nodes":\[[^]]*\]' | grep -o '"[^"]*@[^"]*"' | tr -d '"' || true
}

# Every member of node N's cluster (running or not) as node N sees them, one a line.
member_nodes() {
    ctl "$1" -q cluster_status --formatter json 2>/dev/null |
        grep -o '"disk_nodes":\[[^]]*\]' | grep -o '"[^"]*@[^"]*"' | tr -d '"' || true
}

print_log_tail() {
    echo "last lines of $(node_log "$1"):" >&2
    $cluster_sudo tail -n 20 "$(node_log "$1")" >&2 2>/dev/null || echo "(no log)" >&2
}

# The OS pid of node N's Erlang VM, only when that process is a beam.smp of this very node (its environment names it),
# so that a stale pid file never leads to another process: epmd, the default broker or another cluster node. Taken
# from the node's pid file, or else found among the beam.smp processes (a VM that is still booting has not written
# its pid file yet). Prints nothing when the node's VM does not run.
node_vm_pid() {
    local pid
    pid=$($cluster_sudo cat "$(node_pid_file "$1")" 2>/dev/null | tr -dc '0-9') || true
    if [ -n "$pid" ] && is_node_vm "$1" "$pid"; then
        echo "$pid"
        return 0
    fi
    for pid in $(pgrep -x beam.smp || true); do
        if is_node_vm "$1" "$pid"; then
            echo "$pid"
            return 0
        fi
    done
}

# Whether process $1 exists and is not a zombie (an exited VM not reaped yet).
vm_alive() {
    local state
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
    [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ]
}

# Whether something accepts TCP connections on 127.0.0.1, port $1.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Whether process $2 is the beam.smp of node $1.
is_node_vm() {
    [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "beam.smp" ] || return 1
    $cluster_sudo cat "/proc/$2/environ" 2>/dev/null | tr '\0' '\n' |
        grep -x "RABBITMQ_NODENAME=$(node_name "$1")" >/dev/null
}

# Serializes the cluster scripts (start-cluster, stop-cluster, cluster-node start and kill) through a lock file, so
# that two callers never launch the same node at once: the second VM would fail on the distribution port and remove
# the first one's pid file as it exits. Waits at most twice CLUSTER_WAIT seconds (a start can wait several times).
take_cluster_lock() {
    local lock=/tmp/swift-rabbitmq-cluster.lock
    [ -e "$lock" ] || (umask 000 && : >"$lock")
    exec {cluster_lock_fd}<"$lock"
    flock -w $((2 * CLUSTER_WAIT)) "$cluster_lock_fd" ||
        cluster_fail "another cluster script still runs after $((2 * CLUSTER_WAIT)) s (it holds $lock)"
}

# Writes node N's folders and configuration; the same on every start, so a restart is configured as the first start.
prepare_node() {
    local n=$1 dir
    dir=$(node_dir "$n")
    $cluster_sudo install -d -o rabbitmq -g rabbitmq -m 0755 "$CLUSTER_BASE" "$dir" "$dir/mnesia" "$dir/log"
    # AMQP on loopback only, and nothing else (no TLS listener: the default broker's rabbitmq.conf is not read). guest
    # keeps its default loopback-only access, which is all the tests need (they connect to 127.0.0.1).
    # pause_minority: a node that sees only a minority of the cluster (1 of 3) pauses (closes its listeners) until it
    # sees a majority again, instead of going on alone as a second "cluster" whose writes are later thrown away
    # (autoheal) or kept in conflict (ignore). That matches what quorum queues need anyway, keeps the two remaining nodes
    # serving when one is killed (2 of 3 is a majority), and makes clients move to a majority node, as in production.
    # A node killed with SIGKILL is not a partition (its peers see it go at once) and rejoins when restarted.
    printf '%s\n' \
        "# written by swift-rabbitmq scripts/cluster-node.sh" \
        "listeners.tcp.1 = 127.0.0.1:$(node_port "$n")" \
        "cluster_name = swift-rabbitmq-test-cluster" \
        "cluster_partition_handling = pause_minority" |
        $cluster_sudo tee "$dir/rabbitmq.conf" >/dev/null
    echo '[].' | $cluster_sudo tee "$dir/enabled_plugins" >/dev/null
    # Empty: /etc/rabbitmq/rabbitmq-env.conf, which belongs to the default broker, must not change these nodes.
    : | $cluster_sudo tee "$dir/rabbitmq-env.conf" >/dev/null
    $cluster_sudo chown rabbitmq:rabbitmq "$dir/rabbitmq.conf" "$dir/enabled_plugins" "$dir/rabbitmq-env.conf"
}

# Starts node N's VM (detached) as start-cluster.sh and `start` do; returns once rabbitmq-server returned, before the
# node is reachable.
launch_node() {
    local n=$1 dir output
    dir=$(node_dir "$n")
    prepare_node "$n"
    $cluster_sudo rm -f "$dir/erl_crash.dump"
    # The detached VM must hold none of the caller's descriptors: a test that reads this script's output to its end
    # would wait for as long as the node runs. So standard output and error go to a file, and every other descriptor
    # is closed first (Foundation's Process, for one, lets the write end of its pipe leak into its child; and the VM
    # must not keep the cluster lock).
    output=$(mktemp)
    # The distribution listener binds 127.0.0.1 only (inet_dist_use_interface), like the AMQP listener.
    if ! (
        for fd in "/proc/$BASHPID/fd/"*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
        done
        exec $cluster_sudo env \
            RABBITMQ_NODENAME="$(node_name "$n")" \
            RABBITMQ_DIST_PORT="$(node_dist_port "$n")" \
            RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
            RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
            RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
            RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
            RABBITMQ_MNESIA_BASE="$dir/mnesia" \
            RABBITMQ_LOG_BASE="$dir/log" \
            RABBITMQ_PID_FILE="$(node_pid_file "$n")" \
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
            ERL_CRASH_DUMP="$dir/erl_crash.dump" \
            rabbitmq-server -detached
    ) >"$output" 2>&1 </dev/null; then
        cat "$output" >&2
        rm -f "$output"
        cluster_fail "rabbitmq-server -detached failed for $(node_name "$n")"
    fi
    rm -f "$output"
}

# Waits until node N has booted (RabbitMQ runs on it), at most CLUSTER_WAIT seconds; fails sooner when its VM exits.
wait_node_booted() {
    local n=$1 started=$SECONDS left dump
    # A node that was just launched may not be known to epmd yet, and await_startup then fails at once: retry.
    while :; do
        left=$((started + CLUSTER_WAIT - SECONDS))
        [ "$left" -gt 0 ] || break
        if ctl "$n" -q await_startup --timeout "$left" >/dev/null 2>&1; then return 0; fi
        # The VM exists a moment after rabbitmq-server -detached returns; gone later, it has crashed.
        if [ $((SECONDS - started)) -ge 5 ] && [ -z "$(node_vm_pid "$n")" ]; then
            print_log_tail "$n"
            dump="$(node_dir "$n")/erl_crash.dump"
            if $cluster_sudo test -e "$dump"; then $cluster_sudo grep -m1 '^Slogan' "$dump" >&2 || true; fi
            cluster_fail "$(node_name "$n")'s VM exited while booting (see the log above, and $dump)"
        fi
        sleep 1
    done
    print_log_tail "$n"
    cluster_fail "$(node_name "$n") did not boot within ${CLUSTER_WAIT} s"
}

# Waits until node N runs in a cluster of which every node in $2 (names, space-separated) also runs, as N and those
# nodes see it; at most CLUSTER_WAIT seconds.
wait_running_together() {
    local n=$1 expected=$2 deadline=$((SECONDS + CLUSTER_WAIT)) seen missing name m
    while :; do
        seen=$(running_nodes "$n")
        missing=""
        for name in $expected; do
            has_name "$seen" "$name" || missing="$missing $name"
        done
        # The peers must see N running too (a node that just restarted sees its peers before they all see it).
        if [ -z "$missing" ]; then
            for m in $CLUSTER_NODES; do
                name=$(node_name "$m")
                if [ "$m" = "$n" ] || ! has_name "$expected" "$name"; then continue; fi
                has_name "$(running_nodes "$m")" "$(node_name "$n")" || missing="$missing ($name does not see it)"
            done
        fi
        [ -n "$missing" ] || return 0
        if [ $SECONDS -ge $deadline ]; then
            print_log_tail "$n"
            cluster_fail "$(node_name "$n") is not running together with:$missing (after ${CLUSTER_WAIT} s); it sees" \
                "running: $(flat "$seen")"
        fi
        sleep 1
    done
}

# Makes node N (booted) a member of the cluster of peer P, unless it already is: stop_app, join_cluster, start_app.
# join_cluster resets N first, which is right for a node that was never clustered or whose folders were removed. Its
# output is shown only on failure: on success 3.10 still logs harmless "Failed to create a tracked connection table"
# errors about the node it stopped.
join_node() {
    local n=$1 p=$2 peer output
    peer=$(node_name "$p")
    if has_name "$(member_nodes "$n")" "$peer"; then return 0; fi
    echo "joining $(node_name "$n") to $peer"
    output=$(ctl "$n" -q stop_app 2>&1) || cluster_fail "stop_app on $(node_name "$n") failed: $output"
    if ! output=$(ctl "$n" -q join_cluster "$peer" 2>&1); then
        # The cluster may still list a former incarnation of N (its folders were removed): forget it, join again.
        ctl "$p" -q forget_cluster_node "$(node_name "$n")" >/dev/null 2>&1 || true
        if ! output=$(ctl "$n" -q join_cluster "$peer" 2>&1); then
            ctl "$n" -q start_app >/dev/null 2>&1 || true
            cluster_fail "$(node_name "$n") could not join $peer: $output"
        fi
    fi
    output=$(ctl "$n" -q start_app 2>&1) || cluster_fail "start_app on $(node_name "$n") failed: $output"
}

# The nodes of 1..3 other than N that answer, space-separated names.
other_running_names() {
    local n=$1 m names=""
    for m in $CLUSTER_NODES; do
        [ "$m" != "$n" ] || continue
        if node_responds "$m"; then names="$names $(node_name "$m")"; fi
    done
    flat "$names"
}

cluster_node_start() {
    local n=$1 started=$SECONDS others m
    if [ -n "$(node_vm_pid "$n")" ]; then
        echo "$(node_name "$n") already runs"
    else
        launch_node "$n"
    fi
    wait_node_booted "$n"
    others=$(other_running_names "$n")
    if [ -n "$others" ]; then
        # A restarted node rejoins on its own; one whose folders were removed is joined here.
        for m in $CLUSTER_NODES; do
            if [ "$m" != "$n" ] && has_name "$others" "$(node_name "$m")"; then
                join_node "$n" "$m"
                break
            fi
        done
    fi
    wait_running_together "$n" "$(node_name "$n") $others"
    echo "$(node_name "$n") runs on 127.0.0.1:$(node_port "$n") (pid $(node_vm_pid "$n")), in a cluster with" \
        "${others:-no other running node} ($((SECONDS - started)) s)"
}

cluster_node_kill() {
    local n=$1 pid deadline
    pid=$(node_vm_pid "$n")
    [ -n "$pid" ] || cluster_fail "$(node_name "$n") does not run (no beam.smp of that node in $(node_pid_file "$n"))"
    $cluster_sudo kill -KILL "$pid"
    deadline=$((SECONDS + CLUSTER_WAIT))
    # Gone means its listeners too: an exited VM that is not reaped yet may still hold them (seen under gVisor).
    while vm_alive "$pid" || port_open "$(node_port "$n")" || port_open "$(node_dist_port "$n")"; do
        [ $SECONDS -lt $deadline ] || cluster_fail "$(node_name "$n") (pid $pid) still runs ${CLUSTER_WAIT} s after SIGKILL"
        sleep 0.1
    done
    echo "killed $(node_name "$n") (beam.smp pid $pid)"
}

cluster_node_status() {
    local n=$1 pid running
    pid=$(node_vm_pid "$n")
    if [ -z "$pid" ]; then
        echo "$(node_name "$n"): not running"
        return 1
    fi
    running=$(running_nodes "$n")
    if ! has_name "$running" "$(node_name "$n")"; then
        echo "$(node_name "$n"): its VM runs (pid $pid) but RabbitMQ does not: booting, stopped, or paused by" \
            "pause_minority (it sees a minority of the cluster)"
        return 1
    fi
    echo "$(node_name "$n"): running, pid $pid, AMQP 127.0.0.1:$(node_port "$n"), distribution 127.0.0.1:$(node_dist_port "$n")"
    echo "running nodes of its cluster: $(flat "$running")"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    command=${1:-}
    check_node_number "${2:-}"
    case "$command" in
        kill) take_cluster_lock && cluster_node_kill "$2" ;;
        start) take_cluster_lock && cluster_node_start "$2" ;;
        status) cluster_node_status "$2" ;;
        *) cluster_fail "usage: $0 kill|start|status N  (N = 1, 2 or 3)" ;;
    esac
fi
