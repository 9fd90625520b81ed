#!/usr/bin/env bash
# A fleet without a cluster: fleetscope-loadgen serves realistic exporters
# on loopback (node exporter, cAdvisor, kube-state-metrics, pod churn) and
# sends a shop's traces; fleetscope scrapes them into a fresh data directory
# and serves the heatmaps and the service map on 127.0.0.1:9470.
#   scripts/demo.sh                      # 2 clusters x 5 nodes
#   CLUSTERS=5 NODES=10 scripts/demo.sh
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_libduckdb
cargo build --release "${CARGO_FEATURE_ARGS[@]}" --bins
dir=$(mktemp -d /tmp/fleetscope-demo.XXXXXX)
"$CARGO_TARGET_DIR/release/fleetscope-loadgen" --clusters "${CLUSTERS:-2}" --nodes "${NODES:-5}" \
  --port 0 --write-configs "$dir" --fleetscope-data-dir "$dir/data" \
  --otlp-endpoint http://127.0.0.1:9470/v1/traces > "$dir/loadgen.log" 2>&1 &
loadgen=$!
trap 'kill "$loadgen" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  grep -q '^serving' "$dir/loadgen.log" 2>/dev/null && break
  kill -0 "$loadgen" 2>/dev/null || { cat "$dir/loadgen.log" >&2; exit 1; }
  sleep 0.5
done
grep -q '^serving' "$dir/loadgen.log" || { echo "loadgen did not start: $dir/loadgen.log" >&2; exit 1; }
echo "fleet: $(grep -c 'http://' "$dir/fleetscope.toml") targets; configs and data in $dir" >&2
"$CARGO_TARGET_DIR/release/fleetscope" serve --config "$dir/fleetscope.toml"
