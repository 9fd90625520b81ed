#!/usr/bin/env bash
# pods_heatmap over 5,000 pods x 24 h answered from rollups, as 10 Grafana
# panels refreshing at once (wrk, 10 connections). Prints wrk's latency
# distribution and the data size. Usage: benches/heatmap_load.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_libduckdb
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release "${CARGO_FEATURE_ARGS[@]}" >&2
bin=$CARGO_TARGET_DIR/release/fleetscope
dir=${BENCH_DIR:-/tmp/fleetscope-heatmap-bench}
duration=${1:-30}
# 10 clusters x 10 namespaces x 50 pods = 5,000 pods, 10 nodes per cluster.
if [[ ! -f $dir/fleetscope.duckdb ]]; then
  /usr/bin/time -f "seed: %e s wall, %M KiB peak RSS" \
    "$bin" seed --data-dir "$dir" --clusters 10 --namespaces 10 --pods 50 --nodes 10 --hours 24
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --data-dir "$dir" --listen "127.0.0.1:$port" > /tmp/heatmap-bench-serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

to=$(date -u +%Y-%m-%dT%H:%M:%SZ)
from=$(date -u -d '-24 hours' +%Y-%m-%dT%H:%M:%SZ)
body=$(printf '{"app":"dashboard","range":{"from":"%s","to":"%s","raw":{"from":"now-24h","to":"now"}},"interval":"1m","intervalMs":60000,"maxDataPoints":1200,"targets":[{"refId":"A","target":"pods_heatmap","payload":{"mode":"cpu_request","limit":200}}]}' "$from" "$to")
lua=$(mktemp --suffix=.lua)
cat > "$lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$body'
LUA
curl -s -XPOST -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$port/grafana/query" > /tmp/heatmap-answer.json
python3 - /tmp/heatmap-answer.json <<'PY'
import json, os, sys
frames = json.load(open(sys.argv[1]))
f = frames[0]
print(f"answer: {len(f['fields']) - 1} pod rows x {len(f['fields'][0]['values'])} time buckets, "
      f"{f['meta']['custom']['total']} pods in scope, resolution {f['meta']['custom']['resolution']}, "
      f"{os.path.getsize(sys.argv[1]) / 1024:.0f} KiB of JSON")
PY
echo "data: $(du -sh "$dir" | cut -f1) on disk"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^fleetscope_store_bytes' || true
# Cold: every request a different question (limit varies), so nothing is
# cached and each answer is computed from the rollups.
cold=()
for i in $(seq 0 9); do
  b=${body/\"limit\":200/\"limit\":$((200 + i))}
  cold+=("$(curl -s -o /dev/null -w '%{time_total}' -XPOST -H 'Content-Type: application/json' -d "$b" "http://127.0.0.1:$port/grafana/query")")
done
printf '%s\n' "${cold[@]}" | sort -n | awk '{a[NR]=$1} END {printf "cold (uncached, sequential, 10 distinct queries): median %.0f ms, max %.0f ms\n", a[int((NR+1)/2)]*1000, a[NR]*1000}'
# Warm: 10 panels refreshing the same question at once, as a dashboard
# does; answers are exact for the store's data generation (see api/cache.rs).
wrk -t2 -c10 -d"${duration}s" --latency --timeout 10s -s "$lua" "http://127.0.0.1:$port/grafana/query"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
