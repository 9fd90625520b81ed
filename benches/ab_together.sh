#!/usr/bin/env bash
# Two fleetscope binaries scraping one simulated fleet AT THE SAME TIME, each
# with its own port and data directory, so this VM's drift (up to ~18 %
# between runs minutes apart) falls on both alike. At 30 s the fleet costs
# fleetscope a few hundredths of a core, so two of them barely compete.
# Between WARM and WARM+WINDOW seconds it reads every thread's CPU time and
# voluntary context switches from /proc and prints, per binary and thread
# name, CPU seconds and wakeups per second, then CPU s per 1 M samples and
# the ratio B/A. Run it twice with the binaries swapped.
#
#   benches/ab_together.sh BINARY_A BINARY_B
#   WARM=240 WINDOW=300 CLUSTERS=20 NODES=10 INTERVAL=30 benches/ab_together.sh a b
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 2 ]] || { sed -n '2,12p' "$0" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2")
CLUSTERS=${CLUSTERS:-20}
NODES=${NODES:-10}
INTERVAL=${INTERVAL:-30}
WARM=${WARM:-240}
WINDOW=${WINDOW:-300}
# shellcheck source=common.sh
source benches/common.sh
# shellcheck source=../scripts/env.sh
source scripts/env.sh
WORK=$(mktemp -d /tmp/ab-together.XXXXXX)
PIDS=()
trap cleanup_run EXIT
PORT_A=$(free_port); PORT_B=$(free_port)
start_ab_fleet "$PORT_A" "$WORK/data-a"
sed -e "s/127.0.0.1:$PORT_A/127.0.0.1:$PORT_B/" -e "s#$WORK/data-a#$WORK/data-b#" \
  "$WORK/cfg/fleetscope.toml" >"$WORK/cfg/fleetscope-b.toml"
"$A" serve --config "$WORK/cfg/fleetscope.toml" >"$WORK/a.log" 2>&1 &
PA=$!; PIDS+=("$PA")
"$B" serve --config "$WORK/cfg/fleetscope-b.toml" >"$WORK/b.log" 2>&1 &
PB=$!; PIDS+=("$PB")

# name, utime+stime ticks, voluntary switches: summed per thread name.
threads() {
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s\n' "$(tr ' ' _ <"$t/comm")" "$(awk '{ print $14 + $15 }' "$t/stat")" \
      "$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$t/status")"
  done | awk '{ c[$1] += $2; v[$1] += $3 } END { for (k in c) print k, c[k], v[k] }' | sort
}
samples() { metric "http://127.0.0.1:$1/metrics" fleetscope_samples_ingested_total; }
sleep "$WARM"
threads "$PA" >"$WORK/a0"; threads "$PB" >"$WORK/b0"; SA0=$(samples "$PORT_A"); SB0=$(samples "$PORT_B")
sleep "$WINDOW"
threads "$PA" >"$WORK/a1"; threads "$PB" >"$WORK/b1"; SA1=$(samples "$PORT_A"); SB1=$(samples "$PORT_B")
report() { # label, before, after, samples
  echo "$1: $4 samples in ${WINDOW}s"
  join "$2" "$3" | awk -v t="$TICK" -v w="$WINDOW" -v n="$4" '
    { printf "  %-18s CPU %6.2f s  wakeups %6.1f/s\n", $1, ($4 - $2) / t, ($5 - $3) / w; s += $4 - $2 }
    END { printf "  total CPU %.2f s = %.3f s per 1 M samples\n", s / t, s / t / (n / 1e6) }'
}
report "A $A" "$WORK/a0" "$WORK/a1" $((SA1 - SA0)) | tee "$WORK/ra"
report "B $B" "$WORK/b0" "$WORK/b1" $((SB1 - SB0)) | tee "$WORK/rb"
per_sample() { awk '/per 1 M samples/ { print $(NF - 5) }' "$1"; }
awk -v a="$(per_sample "$WORK/ra")" -v b="$(per_sample "$WORK/rb")" \
  'BEGIN { printf "B/A CPU per sample: %.3f\n", b / a }'
