#!/usr/bin/env bash
# The test suite, as the README documents it: everything a user runs to check gatehouse on a
# fresh machine. Installs what it needs (guarded), then runs, cheapest first:
#   doctests → unit + integration tests (nextest) → interop with pinus's own codec (node)
#   → loom models (+ mutants).
# .ci/run calls this after fmt and clippy. Env knobs: SKIP_LOOM=1, SKIP_INTEROP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}" RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! command -v cargo-nextest >/dev/null; then
    echo "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

step() { echo "=== test: $*"; }

step "doctests"
cargo test --doc --locked

step "unit and integration tests (nextest)"
cargo nextest run --all-targets --locked --no-fail-fast --no-tests=fail

if [ "${SKIP_INTEROP:-0}" != 1 ]; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "installing node and npm (interop test)"
        apt-get update -qq && apt-get install -y -qq nodejs npm
    fi
    step "interop: pinus-protocol and pomelo-jsclient-websocket against the example gate"
    tests/interop/run.sh
fi

if [ -x bin/loom.sh ] && [ "${SKIP_LOOM:-0}" != 1 ]; then
    step "loom models"
    bin/loom.sh
fi
