#!/usr/bin/env bash
# A cold start: fleetscope on an empty data directory against a loadgen
# fleet, where every series is new. Every 10 s it prints late scrapes so
# far, series stored, the writer's queue, RSS, fleetscope's cores (and the
# store writer's and the scrape workers' among them) and the box's idle
# share; with the writer's debug
# log kept, it sums the time the writer spent per new series at the end.
#
#   benches/cold_start.sh [CLUSTERS] [NODES] [SECONDS]     # default 100 50 420
#   FLEETSCOPE=path/to/fleetscope INTERVAL=30 KEEP=1 benches/cold_start.sh 20 10 180
#
# The generator runs at nice 19, so fleetscope gets the cores first.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTERS=${1:-100}
NODES=${2:-50}
SECONDS_TO_RUN=${3:-420}
INTERVAL=${INTERVAL:-30}
# shellcheck source=../scripts/env.sh
source scripts/env.sh
# shellcheck source=common.sh
source benches/common.sh
FLEETSCOPE=${FLEETSCOPE:-$CARGO_TARGET_DIR/release/fleetscope}
LOADGEN=${LOADGEN:-$CARGO_TARGET_DIR/release/fleetscope-loadgen}
PORT=$(free_port)
WORK=$(mktemp -d /tmp/cold.XXXXXX)
PIDS=()
trap cleanup_run EXIT
nice -n 19 "$LOADGEN" --clusters "$CLUSTERS" --nodes "$NODES" --interval "${INTERVAL}s" --port 0 \
  --write-configs "$WORK/cfg" --fleetscope-listen "127.0.0.1:$PORT" \
  --fleetscope-data-dir "$WORK/data" > "$WORK/loadgen.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 1200); do grep -q '^serving' "$WORK/loadgen.log" && break; sleep 0.5; done
head -5 "$WORK/loadgen.log"
RUST_LOG=fleetscope::store::writer=debug,info "$FLEETSCOPE" serve --config "$WORK/cfg/fleetscope.toml" \
  > "$WORK/fleetscope.log" 2>&1 &
FS=$!
PIDS+=("$FS")
START=$(date +%s)
# CPU over each 10 s: fleetscope's (cores) and the whole box's idle share.
ticks() { awk '{ print $14 + $15 }' "/proc/$FS/stat"; }
# The same for the threads named $1 (the store writer, the tokio workers).
thread_ticks() {
  local sum=0 t
  for t in /proc/$FS/task/*; do
    [[ $(cat "$t/comm" 2>/dev/null) == "$1" ]] || continue
    sum=$(( sum + $(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null || echo 0) ))
  done
  echo "$sum"
}
idle() { awk '/^cpu / { print $5, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
HZ=$(getconf CLK_TCK)
prev_ticks=$(ticks); read -r prev_idle prev_all < <(idle)
prev_writer=$(thread_ticks store-writer); prev_workers=$(thread_ticks tokio-rt-worker)
while (( $(date +%s) - START < SECONDS_TO_RUN )); do
  sleep 10
  now_ticks=$(ticks); read -r now_idle now_all < <(idle)
  cores=$(awk -v t=$(( now_ticks - prev_ticks )) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz / 10 }')
  idle_pct=$(awk -v i=$(( now_idle - prev_idle )) -v a=$(( now_all - prev_all )) 'BEGIN { printf "%.0f", a ? 100 * i / a : 0 }')
  now_writer=$(thread_ticks store-writer); now_workers=$(thread_ticks tokio-rt-worker)
  writer=$(awk -v t=$(( now_writer - prev_writer )) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz / 10 }')
  workers=$(awk -v t=$(( now_workers - prev_workers )) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz / 10 }')
  prev_ticks=$now_ticks; prev_idle=$now_idle; prev_all=$now_all
  prev_writer=$now_writer; prev_workers=$now_workers
  late=$(curl -sf "127.0.0.1:$PORT/api/v1/targets" | jq '[.data.targets[].late_scrapes] | add' || echo '?')
  page=$(curl -sf "127.0.0.1:$PORT/metrics" || true)
  value() { awk -v m="$1" '$1 == m { print $2 }' <<< "$page"; }
  printf '%4d s  late %-7s  series stored %-10s  queued rows %-9s  RSS %5d MB  cores %s (writer %s, workers %s)  box idle %s %%\n' \
    "$(( $(date +%s) - START ))" "$late" "$(value fleetscope_store_series_written_total)" \
    "$(value fleetscope_store_queued_rows)" "$(( $(awk '/VmRSS/ { print $2 }' "/proc/$FS/status") / 1024 ))" \
    "$cores" "$writer" "$workers" "$idle_pct"
done
sed 's/\x1b\[[0-9;]*m//g' "$WORK/fleetscope.log" | awk '/ committed / {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    if (v["series"] > 10000) { n++; series += v["series"]; ms += v["total_ms"]; if (v["series"] == 122880) whole++ }
  } END { if (series) printf "transactions with >10k new series: %d (%d a whole row group), %d series, %.1f s, %.2f us per series\n", n, whole, series, ms / 1000, ms * 1000 / series }'
[[ ${KEEP:-0} != 1 ]] || echo "kept: $WORK"
