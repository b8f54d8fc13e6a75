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
$sudo rabbitmqctl -q await_startup --timeout 120
echo "RabbitMQ is ready on 127.0.0.1:5672"
