#!/usr/bin/env bash
# Runs every test against a local broker: installs the dependencies if needed, starts the broker, builds with
# warnings treated as failures (for this package's own sources), and runs the unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-dependencies.sh
scripts/start-broker.sh
scripts/setup-tls.sh
scripts/validate-compose.sh

log=$(mktemp)
swift build --build-tests 2>&1 | tee "$log"
if grep -E "^$PWD/(Sources|Tests)/.*: warning:" "$log"; then
    echo "the build has warnings (above); the package must build without any" >&2
    exit 1
fi
rm -f "$log"

swift test
