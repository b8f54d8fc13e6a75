#!/usr/bin/env bash
# Runs every test against a local broker: installs the dependencies if needed, starts the broker, builds with
# warnings treated as failures (for this package's own sources, and the benchmarks package's), smoke-runs
# amqp-bench, and runs the unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-dependencies.sh
scripts/start-broker.sh
# A three-node cluster on loopback (ports 5681-5683) for the failover tests: 20 to 30 s from cold.
scripts/start-cluster.sh
scripts/setup-tls.sh
scripts/validate-compose.sh

log=$(mktemp)
swift build --build-tests 2>&1 | tee "$log"
if grep -E "^$PWD/(Sources|Tests)/.*: warning:" "$log"; then
    echo "the build has warnings (above); the package must build without any" >&2
    exit 1
fi

# Every public function of the library and the test support documents its parameters, errors and results.
if ! python3 scripts/check-docs.py Sources Tests/RabbitMQTestSupport; then
    echo "public declarations lack documentation (above); the rule is in scripts/check-docs.py's header" >&2
    exit 1
fi

# The benchmarks are a package of their own (Benchmarks/): build them under the same rule, and run amqp-bench on 1%
# of its message counts (under a second), so that neither rots. Built in this package's .build, which already holds
# the library and the dependencies just built: only the benchmarks compile. On 2 cores that adds about 15 s, and
# about 12 s more when `swift test` then rebuilds swift-argument-parser's plugin tools, instead of 75 s or more for a
# build folder of their own.
swift build --package-path Benchmarks --scratch-path .build 2>&1 | tee "$log"
if grep -E "^$PWD/Benchmarks/Sources/.*: warning:" "$log"; then
    echo "the benchmarks' build has warnings (above); they must build without any" >&2
    exit 1
fi
rm -f "$log"
swift run --package-path Benchmarks --scratch-path .build amqp-bench --scale 0.01
# Both modes of the Swift side: its tasks on the global executor (above) and on the connections' own threads.
swift run --package-path Benchmarks --scratch-path .build amqp-bench --scale 0.01 --executor connection

swift test
