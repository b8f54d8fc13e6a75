#!/usr/bin/env bash
# Stops the three nodes of scripts/start-cluster.sh and removes their folders (/var/lib/rabbitmq/cluster); the default
# broker (rabbit@<host>, port 5672) and epmd are left alone. Runs as root, or through sudo otherwise.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/cluster-node.sh"
take_cluster_lock

# The VMs' pids, taken first: a stopping node removes its pid file before its VM has exited.
vm_pids=""
for n in $CLUSTER_NODES; do vm_pids="$vm_pids $(node_vm_pid "$n")"; done

# Stopped together: stopped one after the other, the last two would first see a minority and pause (pause_minority).
stops=""
for n in $CLUSTER_NODES; do
    if node_responds "$n"; then
        echo "stopping $(node_name "$n")"
        ctl "$n" -q stop >/dev/null 2>&1 &
        stops="$stops $!"
    fi
done
for stop in $stops; do wait "$stop" || true; done

# The folders go only once the VMs have exited; one that has not after CLUSTER_WAIT seconds is killed (SIGKILL).
deadline=$((SECONDS + CLUSTER_WAIT))
for pid in $vm_pids; do
    while [ -e "/proc/$pid" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if [ -e "/proc/$pid" ]; then
        echo "the VM with pid $pid did not stop: killing it"
        $cluster_sudo kill -KILL "$pid" || true
        sleep 1
    fi
done

$cluster_sudo rm -rf "$CLUSTER_BASE"
echo "RabbitMQ cluster stopped and its folders removed"
