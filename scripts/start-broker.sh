#!/usr/bin/env bash
# Starts the local RabbitMQ broker unless it already runs, then waits until it accepts connections.
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

if $sudo rabbitmqctl -q status >/dev/null 2>&1; then
    echo "RabbitMQ already runs"
else
    echo "starting RabbitMQ"
    $sudo rabbitmq-server -detached
fi
# A node that was just started may not be known to epmd yet, and await_startup then fails at once: retry.
for _ in $(seq 1 60); do
    if $sudo rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; then
        echo "RabbitMQ is ready on 127.0.0.1:5672"
        exit 0
    fi
    sleep 2
done
echo "RabbitMQ did not start; see /var/log/rabbitmq/" >&2
exit 1
