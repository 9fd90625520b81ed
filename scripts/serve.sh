#!/usr/bin/env bash
# Runs `fleetscope serve` from source with the same build the tests use
# (prebuilt libduckdb, so the first build takes minutes, not most of an hour).
# Arguments go to `fleetscope serve`, e.g. --config deploy/fleetscope.example.toml
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_libduckdb
exec cargo run --release "${CARGO_FEATURE_ARGS[@]}" -- serve "$@"
