# Helpers shared by the benchmark scripts that run fleetscope (and its
# peers) against a loadgen fleet; sourced, not run.

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TICK=$(getconf CLK_TCK)
# utime + stime of a PID, in seconds.
cpu_s() { awk -v t="$TICK" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }
# Sum of a metric's samples (all label sets) in a /metrics page.
metric() { curl -sf "$1" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f\n", s }'; }
# Waits (up to 60 s) until the loadgen started in the background
# writes "ready" to its log $1.
wait_loadgen() {
  for _ in $(seq 1 300); do grep -q '^ready' "$1" && return 0; sleep 0.2; done
  cat "$1" >&2
  return 1
}
# Exit trap of a run: stops the processes in PIDS and removes WORK unless
# KEEP=1. Callers set WORK and PIDS=() first, then `trap cleanup_run EXIT`.
cleanup_run() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$WORK"
}
# Starts the loadgen fleet the A/B scripts share (CLUSTERS x NODES at
# INTERVAL s, seed 1; LOADGEN overrides the binary) in the background, its
# configs in $WORK/cfg for a fleetscope listening on 127.0.0.1:$1 with its
# data in $2; adds it to PIDS and waits until it serves.
start_ab_fleet() {
  "${LOADGEN:-$CARGO_TARGET_DIR/release/fleetscope-loadgen}" --clusters "$CLUSTERS" \
    --nodes "$NODES" --seed 1 --port 0 --interval "${INTERVAL}s" --write-configs "$WORK/cfg" \
    --fleetscope-listen "127.0.0.1:$1" --fleetscope-data-dir "$2" >"$WORK/loadgen.log" 2>&1 &
  PIDS+=($!)
  wait_loadgen "$WORK/loadgen.log"
}
