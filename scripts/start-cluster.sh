#!/usr/bin/env bash
# Starts a three-node RabbitMQ cluster on loopback beside the default broker, for the tests that need one (failover,
# quorum queues), or reuses it when it already runs. Nodes cluster1@localhost, cluster2@localhost, cluster3@localhost:
# AMQP on 127.0.0.1:5681, 5682, 5683 (guest/guest), Erlang distribution on 127.0.0.1:25681, 25682, 25683, folders
# under /var/lib/rabbitmq/cluster/node1..3 (owned by rabbitmq), no plugins; nodes 2 and 3 join node 1. Waits until
# cluster_status shows the three running (each wait at most 60 s). scripts/cluster-node.sh kills and restarts one
# node; scripts/stop-cluster.sh stops them and removes their folders. Runs as root, or through sudo otherwise.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/cluster-node.sh"
take_cluster_lock

started=$SECONDS
all_names="$(node_name 1) $(node_name 2) $(node_name 3)"

print_ready() {
    echo "RabbitMQ cluster ready ($((SECONDS - started)) s): $all_names"
    for n in $CLUSTER_NODES; do
        echo "  $(node_name "$n"): amqp://guest:guest@127.0.0.1:$(node_port "$n")/ (distribution port $(node_dist_port "$n"))"
    done
}

# The nodes whose VM runs (booted or not): those are waited for, never launched a second time.
present=""
for n in $CLUSTER_NODES; do
    if [ -n "$(node_vm_pid "$n")" ]; then present="$present $n"; fi
done

if [ "$present" = " 1 2 3" ] && [ "$(running_nodes 1 | sort | tr '\n' ' ')" = "$all_names " ]; then
    echo "the RabbitMQ cluster already runs"
    print_ready
    exit 0
fi

if [ -z "$present" ] && $cluster_sudo test -e "$CLUSTER_BASE"; then
    # Nothing runs (nodes of an earlier session, ended since): start from empty folders. Old folders would make each
    # node wait at boot for the peer that stopped last, and would hold old queues and messages.
    echo "removing the folders of a stopped cluster under $CLUSTER_BASE"
    $cluster_sudo rm -rf "$CLUSTER_BASE"
fi

# Every missing node is launched at once (a restarted member waits at boot for its peers), then each is waited for.
for n in $CLUSTER_NODES; do
    if has_name "$present" "$n"; then
        echo "$(node_name "$n") already runs"
    else
        echo "starting $(node_name "$n")"
        launch_node "$n"
    fi
done
for n in $CLUSTER_NODES; do wait_node_booted "$n"; done

# Nodes 2 and 3 join node 1, unless they are members already (a reused cluster, or a restarted member).
join_node 2 1
join_node 3 1
wait_running_together 1 "$all_names"
print_ready
