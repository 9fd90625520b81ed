#!/usr/bin/env bash
# Two fleetscope binaries scraping one simulated fleet AT THE SAME TIME, each
# with its own port and data directory, so this VM's drift (up to ~18 %
# between runs minutes apart) falls on both alike. At 30 s the fleet costs
# fleetscope a few hundredths of a core, so two of them barely compete.
# Between WARM and WARM+WINDOW seconds it reads every thread's CPU time and
# voluntary context switches from /proc and prints, per binary and thread
# name, CPU seconds and wakeups per second, then CPU s per 1 M samples and
# the ratio B/A. The binary started second pays more for the same scrapes
# (6-9 % more on its workers, 2026-12-03), so with ORDERS=2 (the default)
# it runs again with B started first and pools the two ratios.
#
#   benches/ab_together.sh BINARY_A BINARY_B
#   WARM=240 WINDOW=300 CLUSTERS=20 NODES=10 INTERVAL=30 ORDERS=2 benches/ab_together.sh a b
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 2 ]] || { sed -n '2,14p' "$0" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2")
CLUSTERS=${CLUSTERS:-20}
NODES=${NODES:-10}
INTERVAL=${INTERVAL:-30}
WARM=${WARM:-240}
WINDOW=${WINDOW:-300}
ORDERS=${ORDERS:-2}
# shellcheck source=common.sh
source benches/common.sh
# shellcheck source=../scripts/env.sh
source scripts/env.sh
WORK=$(mktemp -d /tmp/ab-together.XXXXXX)
PIDS=()
trap cleanup_run EXIT

# name, utime+stime ticks, voluntary switches: summed per thread name.
threads() {
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s\n' "$(tr ' ' _ <"$t/comm")" "$(awk '{ print $14 + $15 }' "$t/stat")" \
      "$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$t/status")"
  done | awk '{ c[$1] += $2; v[$1] += $3 } END { for (k in c) print k, c[k], v[k] }' | sort
}
report() { # label, before, after, samples
  echo "$1: $4 samples in ${WINDOW}s"
  join "$2" "$3" | awk -v t="$TICK" -v w="$WINDOW" -v n="$4" '
    { printf "  %-18s CPU %6.2f s  wakeups %6.1f/s\n", $1, ($4 - $2) / t, ($5 - $3) / w; s += $4 - $2 }
    END { printf "  total CPU %.2f s = %.3f s per 1 M samples\n", s / t, s / t / (n / 1e6) }'
}
per_sample() { awk '/per 1 M samples/ { print $(NF - 5) }' "$1"; }

# One run: FIRST and SECOND started in that order, each on its own port;
# prints both reports and appends B/A to $WORK/ratios.
one_run() {
  local first=$1 second=$2 run=$3 dir="$WORK/run$3"
  mkdir -p "$dir"
  local port1 port2 p1 p2 s10 s20 s11 s21
  port1=$(free_port); port2=$(free_port)
  start_ab_fleet "$port1" "$dir/data-1"
  sed -e "s/127.0.0.1:$port1/127.0.0.1:$port2/" -e "s#$dir/data-1#$dir/data-2#" \
    "$WORK/cfg/fleetscope.toml" >"$WORK/cfg/fleetscope-2.toml"
  "$first" serve --config "$WORK/cfg/fleetscope.toml" >"$dir/1.log" 2>&1 &
  p1=$!; PIDS+=("$p1")
  "$second" serve --config "$WORK/cfg/fleetscope-2.toml" >"$dir/2.log" 2>&1 &
  p2=$!; PIDS+=("$p2")
  samples() { metric "http://127.0.0.1:$1/metrics" fleetscope_samples_ingested_total; }
  sleep "$WARM"
  threads "$p1" >"$dir/t10"; threads "$p2" >"$dir/t20"; s10=$(samples "$port1"); s20=$(samples "$port2")
  sleep "$WINDOW"
  threads "$p1" >"$dir/t11"; threads "$p2" >"$dir/t21"; s11=$(samples "$port1"); s21=$(samples "$port2")
  echo "== run $run ($(date -u +%H:%M) UTC): $(basename "$first") started first"
  report "first  $first" "$dir/t10" "$dir/t11" $((s11 - s10)) | tee "$dir/r1"
  report "second $second" "$dir/t20" "$dir/t21" $((s21 - s20)) | tee "$dir/r2"
  kill "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  PIDS=()
  local a b
  if [[ $first == "$A" ]]; then a="$dir/r1"; b="$dir/r2"; else a="$dir/r2"; b="$dir/r1"; fi
  awk -v a="$(per_sample "$a")" -v b="$(per_sample "$b")" \
    'BEGIN { r = b / a; printf "B/A CPU per sample: %.3f\n", r; print r >> "'"$WORK/ratios"'" }'
}

one_run "$A" "$B" 1
for ((run = 2; run <= ORDERS; run++)); do
  if ((run % 2 == 0)); then one_run "$B" "$A" "$run"; else one_run "$A" "$B" "$run"; fi
done
if ((ORDERS > 1)); then
  awk '{ l += log($1); n++ } END { printf "B/A pooled over %d runs (geometric mean): %.3f\n", n, exp(l / n) }' \
    "$WORK/ratios"
fi
