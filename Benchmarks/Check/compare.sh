#!/usr/bin/env bash
# Runs the obvious rabbitmq-c program (obvious.c) and amqp-bench's C side alternately on the local broker, ROUNDS
# times, so that their publish and consume figures come from the same session and can be compared: amqp-bench's C
# side must be as fast as the obvious program (issue 12). Build amqp-bench first (release, see the README).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
obvious=$(mktemp)
cc -O2 -Wall -o "$obvious" Benchmarks/Check/obvious.c -lrabbitmq
queue="obvious-check-$$"
for round in $(seq "$rounds"); do
    echo "== round $round: obvious program"
    "$obvious" publish "$queue" 200000
    "$obvious" consume "$queue" 200000
    "$obvious" publish "$queue" 200000
    "$obvious" consume-multiple "$queue" 200000
    echo "== round $round: amqp-bench"
    Benchmarks/.build/release/amqp-bench --measures publish,consume,consume-multiple-ack | grep '^\[' 
done
rm -f "$obvious"
