#!/usr/bin/env bash
# Sets up a fresh Debian or Ubuntu machine without Docker and runs the payment consumer: installs rabbitmq-c and
# RabbitMQ with apt if missing, starts the local broker, builds, and runs `consumer` in the foreground (Ctrl-C stops
# it cleanly). Extra arguments go to the consumer, e.g. scripts/run-consumer.sh --log-format json.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-dependencies.sh
scripts/start-broker.sh
swift build --product consumer
swift build --product producer
exec .build/debug/consumer "$@"
