#!/usr/bin/env bash
# fleetscope binaries against one simulated fleet, taking turns, to judge a
# change by its ratio: this VM's speed drifts by more than most changes are
# worth between runs minutes apart, so each round runs every binary once.
#
#   benches/ab.sh BASELINE_BINARY OTHER_BINARY...
#   ROUNDS=2 DURATION=300 STEADY_FROM=120 CLUSTERS=20 NODES=10 benches/ab.sh a b c
#
# Per run it prints CPU seconds per 1 M samples from STEADY_FROM to the end
# (the start-up, in which every series is new, excluded), peak RSS (VmHWM)
# over the whole run and from STEADY_FROM on (the high-water mark is reset
# then through /proc/PID/clear_refs), and RSS at the end, per 1 M active
# series, and each figure's ratio to the baseline's in the same round.
# With PYTHON set to a python that has the duckdb package (same version as
# the store), it also prints the bytes per stored 1m row of each run's store
# (benches/stored_bytes.py); the directory's growth over a few minutes says
# little, since DuckDB reuses freed blocks and the WAL comes and goes.
# The load generator is the one built next to fleetscope (scripts/env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 ]] || { sed -n '2,13p' "$0" >&2; exit 2; }
BINS=()
for b in "$@"; do BINS+=("$(realpath "$b")"); done
CLUSTERS=${CLUSTERS:-20}
NODES=${NODES:-10}
INTERVAL=${INTERVAL:-15}
DURATION=${DURATION:-300}
STEADY_FROM=${STEADY_FROM:-120}
ROUNDS=${ROUNDS:-2}
# shellcheck source=../scripts/env.sh
source scripts/env.sh
# shellcheck source=common.sh
source benches/common.sh
PORT=$(free_port)
WORK=$(mktemp -d /tmp/ab.XXXXXX)
PIDS=()
trap cleanup_run EXIT
status_mb() { awk -v k="$2:" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

start_ab_fleet "$PORT" "$WORK/data" || exit 1

# One run: prints "cpu_per_1M_samples peak_rss_per_1M_series
# steady_peak_rss_per_1M_series end_rss_per_1M_series disk_bytes_per_1m_row".
run() {
  local bin=$1 pid metrics cpu0 s0 cpu1 s1 series hwm0 hwm rss disk=nan
  rm -rf "$WORK/data"
  RUST_LOG=warn "$bin" serve --config "$WORK/cfg/fleetscope.toml" --data-dir "$WORK/data" \
    --listen "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  metrics="http://127.0.0.1:$PORT/metrics"
  sleep "$STEADY_FROM"
  kill -0 "$pid" 2>/dev/null || { echo "$bin exited:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
  cpu0=$(cpu_s "$pid"); s0=$(metric "$metrics" fleetscope_samples_ingested_total)
  hwm0=$(status_mb "$pid" VmHWM)
  echo 5 >"/proc/$pid/clear_refs"
  sleep $((DURATION - STEADY_FROM))
  cpu1=$(cpu_s "$pid"); s1=$(metric "$metrics" fleetscope_samples_ingested_total)
  series=$(metric "$metrics" fleetscope_active_series)
  hwm=$(status_mb "$pid" VmHWM); rss=$(status_mb "$pid" VmRSS)
  kill -TERM "$pid"; wait "$pid" || true
  if [[ -n ${PYTHON:-} ]]; then
    disk=$("$PYTHON" benches/stored_bytes.py --no-columns "$WORK/data/fleetscope.duckdb" rollup_1m_rows |
      sed -n 's/.* rows, \([0-9.]*\) B\/row.*/\1/p')
  fi
  awk -v c="$cpu1" -v c0="$cpu0" -v s="$s1" -v s0="$s0" -v n="$series" -v h0="$hwm0" -v h="$hwm" -v r="$rss" \
    -v d="${disk:-nan}" \
    'BEGIN { printf "%.3f %.0f %.0f %.0f %s\n", (c - c0) / (s - s0) * 1e6, (h0 > h ? h0 : h) / n * 1e6,
      h / n * 1e6, r / n * 1e6, d }'
}

printf '%-5s %-40s %18s %18s %18s %18s %18s\n' round binary "CPU s/1M samples" "peak MB/1M series" \
  "steady peak" "end MB/1M series" "stored B/1m row"
for round in $(seq 1 "$ROUNDS"); do
  base=()
  for bin in "${BINS[@]}"; do
    read -r cpu peak steady end disk < <(run "$bin")
    ((${#base[@]})) || base=("$cpu" "$peak" "$steady" "$end" "$disk")
    awk -v r="$round" -v b="$bin" -v c="$cpu" -v p="$peak" -v q="$steady" -v e="$end" -v d="$disk" \
      -v c0="${base[0]}" -v p0="${base[1]}" -v q0="${base[2]}" -v e0="${base[3]}" -v d0="${base[4]}" 'BEGIN {
        stored = (d0 + 0 > 0 && d + 0 > 0) ? sprintf("%11.2f (%4.2f)", d, d / d0) : sprintf("%18s", "-")
        printf "%-5s %-40s %9.3f (%5.2f) %11.0f (%4.2f) %11.0f (%4.2f) %11.0f (%4.2f) %s\n",
          r, substr(b, length(b) - 39), c, c / c0, p, p / p0, q, q / q0, e, e / e0, stored }'
  done
done
