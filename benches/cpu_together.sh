#!/usr/bin/env bash
# fleetscope and Prometheus scraping one simulated fleet AT THE SAME TIME,
# for the CPU-per-sample ratio alone. side_by_side.sh runs them one after
# the other, as the issue asks, and this VM's speed drifts by up to ~37 %
# between runs minutes apart (2026-12-03); run at once, both see the same
# machine. At 30 s the fleet costs each a fraction of one core, so on two
# cores they barely compete. Between WARM and WARM+WINDOW seconds it reads
# each process's CPU time from /proc and its ingested-samples counter, and
# prints CPU s per 1 M samples and fleetscope / Prometheus. The one that
# asks a target second is served second, so with ORDERS=2 (the default) it
# runs again with the other started first and pools the two ratios
# (geometric mean).
#
#   benches/cpu_together.sh
#   WARM=300 WINDOW=600 CLUSTERS=20 NODES=10 INTERVAL=30 ORDERS=2 PROMETHEUS=prometheus \
#     FLEETSCOPE=target/release/fleetscope benches/cpu_together.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTERS=${CLUSTERS:-20}
NODES=${NODES:-10}
INTERVAL=${INTERVAL:-30}
WARM=${WARM:-300}
WINDOW=${WINDOW:-600}
ORDERS=${ORDERS:-2}
PROMETHEUS=${PROMETHEUS:-prometheus}
# shellcheck source=common.sh
source benches/common.sh
# shellcheck source=../scripts/env.sh
source scripts/env.sh
FLEETSCOPE=${FLEETSCOPE:-$CARGO_TARGET_DIR/release/fleetscope}
for tool in "$PROMETHEUS" "$FLEETSCOPE" curl jq bc; do
  command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/cpu-together.XXXXXX)
PIDS=()
trap cleanup_run EXIT

late_scrapes() { curl -sf "http://127.0.0.1:$1/api/v1/targets" | jq '[.data.targets[].late_scrapes] | add'; }
start_fleetscope() {
  RUST_LOG=warn "$FLEETSCOPE" serve --config "$WORK/cfg/fleetscope.toml" >"$WORK/fleetscope.log" 2>&1 &
  FS=$!; PIDS+=("$FS")
}
start_prometheus() { # port
  "$PROMETHEUS" --config.file="$WORK/cfg/prometheus.yml" --storage.tsdb.path="$WORK/prom-data" \
    --web.listen-address="127.0.0.1:$1" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
  PROM=$!; PIDS+=("$PROM")
}

# One run, FIRST ("fleetscope" or "prometheus") started first; appends
# fleetscope/Prometheus to $WORK/ratios.
one_run() {
  local first=$1 run=$2 fs_port prom_port
  rm -rf "$WORK/fs-data" "$WORK/prom-data"
  fs_port=$(free_port); prom_port=$(free_port)
  start_ab_fleet "$fs_port" "$WORK/fs-data"
  if [[ $first == fleetscope ]]; then
    start_fleetscope; start_prometheus "$prom_port"
  else
    start_prometheus "$prom_port"; start_fleetscope
  fi
  local fs_metrics="http://127.0.0.1:$fs_port/metrics" prom_metrics="http://127.0.0.1:$prom_port/metrics"
  sleep "$WARM"
  for p in "$FS" "$PROM"; do
    kill -0 "$p" 2>/dev/null || { cat "$WORK"/*.log >&2; exit 1; }
  done
  local fs_cpu0 prom_cpu0 fs_s0 prom_s0 fs_late0 fs_cpu1 prom_cpu1 fs_s1 prom_s1 fs_late1
  fs_cpu0=$(cpu_s "$FS"); prom_cpu0=$(cpu_s "$PROM")
  fs_s0=$(metric "$fs_metrics" fleetscope_samples_ingested_total)
  prom_s0=$(metric "$prom_metrics" prometheus_tsdb_head_samples_appended_total)
  fs_late0=$(late_scrapes "$fs_port")
  sleep "$WINDOW"
  fs_cpu1=$(cpu_s "$FS"); prom_cpu1=$(cpu_s "$PROM")
  fs_s1=$(metric "$fs_metrics" fleetscope_samples_ingested_total)
  prom_s1=$(metric "$prom_metrics" prometheus_tsdb_head_samples_appended_total)
  fs_late1=$(late_scrapes "$fs_port")
  echo "== run $run ($(date -u +%H:%M) UTC, ${WINDOW} s from ${WARM} s): $first started first"
  awk -v fc="$(echo "$fs_cpu1 - $fs_cpu0" | bc -l)" -v fs="$((fs_s1 - fs_s0))" \
    -v pc="$(echo "$prom_cpu1 - $prom_cpu0" | bc -l)" -v ps="$((prom_s1 - prom_s0))" \
    -v late="$((fs_late1 - fs_late0))" -v out="$WORK/ratios" 'BEGIN {
      f = fc / (fs / 1e6); p = pc / (ps / 1e6)
      printf "  fleetscope  CPU %7.2f s for %10d samples = %.3f s per 1 M (late scrapes: %d)\n", fc, fs, f, late
      printf "  prometheus  CPU %7.2f s for %10d samples = %.3f s per 1 M\n", pc, ps, p
      printf "  fleetscope / Prometheus CPU per sample: %.3f\n", f / p
      print f / p >> out
    }'
  kill "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  PIDS=()
}

one_run fleetscope 1
for ((run = 2; run <= ORDERS; run++)); do
  if ((run % 2 == 0)); then one_run prometheus "$run"; else one_run fleetscope "$run"; fi
done
if ((ORDERS > 1)); then
  awk '{ l += log($1); n++ } END { printf "fleetscope / Prometheus pooled over %d runs (geometric mean): %.3f\n", n, exp(l / n) }' \
    "$WORK/ratios"
fi
