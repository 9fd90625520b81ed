#!/usr/bin/env bash
# Runs the criterion benches with the figures' settings (see benches/README.md).
#   benches/run_benches.sh            # parse + ingest
#   benches/run_benches.sh ingest     # one bench
# Extra criterion arguments: BENCH_ARGS="--warm-up-time 1 --measurement-time 3"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=../scripts/env.sh
source scripts/env.sh
ensure_libduckdb

read -r -a ARGS <<<"${BENCH_ARGS:---warm-up-time 2 --measurement-time 5}"
echo "machine: $(nproc) CPUs, $(lscpu | awk -F': +' '/Model name/ {print $2}'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for bench in "${@:-parse ingest}"; do
  for b in $bench; do
    cargo bench "${CARGO_FEATURE_ARGS[@]}" --bench "$b" -- "${ARGS[@]}"
    echo "load after $b: $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
