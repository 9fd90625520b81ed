#!/usr/bin/env bash
# Prints, once a minute while fleetscope runs: samples/s ingested, CPU cores
# of fleetscope and of the load generator, scrapes that started late in that
# minute, and 5 m rows derived so far. Run it beside side_by_side.sh to see
# when in a run late scrapes happen (start-up, a derivation, ...).
#
#   benches/per_minute.sh [FS_PORT] [SECONDS]     # FS_PORT default 19999, as set with FS_PORT=
set -euo pipefail
PORT=${1:-19999}
EVERY=${2:-60}
TICKS=$(getconf CLK_TCK)
pid_of() { pgrep -f "$1" | head -1; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
metric() { curl -sf "127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
late() { curl -sf "127.0.0.1:$PORT/api/v1/targets" | jq '[.data.targets[].late_scrapes] | add'; }

FS=$(pid_of "fleetscope serve") || { echo "no fleetscope serve running" >&2; exit 1; }
LG=$(pid_of "fleetscope-loadgen" || true)
while kill -0 "$FS" 2>/dev/null; do
  s0=$(metric fleetscope_samples_ingested_total) l0=$(late)
  c0=$(cpu_ticks "$FS") g0=$(cpu_ticks "${LG:-0}")
  sleep "$EVERY"
  kill -0 "$FS" 2>/dev/null || break
  s1=$(metric fleetscope_samples_ingested_total) l1=$(late)
  c1=$(cpu_ticks "$FS") g1=$(cpu_ticks "${LG:-0}")
  derived=$(metric 'fleetscope_store_rows_written_total{resolution="5m"}')
  awk -v t="$(date -u +%T)" -v s="$((s1 - s0))" -v c="$((c1 - c0))" -v g="$((g1 - g0))" \
      -v l="$((l1 - l0))" -v d="${derived:-0}" -v e="$EVERY" -v k="$TICKS" \
      'BEGIN { printf "%s samples/s %d  fleetscope cores %.2f  loadgen cores %.2f  late +%d  5m rows %s\n", t, s / e, c / k / e, g / k / e, l, d }'
done
