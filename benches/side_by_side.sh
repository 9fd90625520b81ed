#!/usr/bin/env bash
# fleetscope and Prometheus, one after the other, against the same simulated
# fleet (fleetscope-loadgen) at the same interval for the same duration.
#
#   benches/side_by_side.sh                         # defaults below
#   CLUSTERS=10 NODES=10 DURATION=180 benches/side_by_side.sh
#
# Env: CLUSTERS NODES PODS_PER_NODE CONTAINERS_PER_POD GPUS_PER_NODE CHURN
#      INTERVAL (s) DURATION (s per system) QUERY_RUNS SEED SKIP_BUILD=1
#      STEADY_FROM (s after start; CPU per sample is also reported from here on,
#      past the start-up in which every series is new)
#      SYSTEMS="fleetscope prometheus" PROMETHEUS=/usr/bin/prometheus KEEP=1
#      ROUNDS (default 1: each system once; with more, the systems take turns
#      in ABBA order, round 2 reversed, so a drift of this VM's speed over
#      the run falls on both alike; CPU per sample is then printed per round
#      and pooled; the main table is each system's last run)
#      LOADGEN_NICE (nice value of the generator, default 0: with 19 the system
#      under test gets the CPU first, as if the fleet ran on other machines)
#      PYTHON (a python with the duckdb package, same version as the store:
#      also prints the bytes each system needs to hold 1-400 days of history,
#      from fleetscope's stored bytes per row at its retention,
#      RETAIN_1M_DAYS RETAIN_5M_DAYS RETAIN_1H_DAYS, default 2 30 400 as in
#      fleetscope's defaults, and Prometheus' compacted bytes per series per day)
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTERS=${CLUSTERS:-20}
NODES=${NODES:-10}
PODS_PER_NODE=${PODS_PER_NODE:-30}
CONTAINERS_PER_POD=${CONTAINERS_PER_POD:-2}
GPUS_PER_NODE=${GPUS_PER_NODE:-0}
CHURN=${CHURN:-2}
INTERVAL=${INTERVAL:-15}
DURATION=${DURATION:-300}
STEADY_FROM=${STEADY_FROM:-180}
QUERY_RUNS=${QUERY_RUNS:-20}
SEED=${SEED:-1}
SYSTEMS=${SYSTEMS:-"fleetscope prometheus"}
PROMETHEUS=${PROMETHEUS:-prometheus}
LOADGEN_NICE=${LOADGEN_NICE:-0}
# shellcheck source=common.sh
source benches/common.sh
FS_PORT=${FS_PORT:-$(free_port)}
PROM_PORT=${PROM_PORT:-$(free_port)}

# shellcheck source=../scripts/env.sh
source scripts/env.sh
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  ensure_libduckdb
  cargo build --release "${CARGO_FEATURE_ARGS[@]}" >&2
fi
BIN="$CARGO_TARGET_DIR/release"
command -v "$PROMETHEUS" >/dev/null || {
  echo "prometheus not found (apt-get install prometheus)" >&2
  exit 1
}
for tool in curl jq python3; do
  command -v $tool >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/side-by-side.XXXXXX)
PIDS=()
trap cleanup_run EXIT

hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
wait_http() {
  for _ in $(seq 1 600); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "timed out waiting for $1" >&2
  return 1
}
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# --- the fleet -------------------------------------------------------------
nice -n "$LOADGEN_NICE" "$BIN/fleetscope-loadgen" --clusters "$CLUSTERS" --nodes "$NODES" \
  --pods-per-node "$PODS_PER_NODE" --containers-per-pod "$CONTAINERS_PER_POD" \
  --gpus-per-node "$GPUS_PER_NODE" --churn-per-min "$CHURN" --seed "$SEED" --port 0 \
  --interval "${INTERVAL}s" --write-configs "$WORK/cfg" \
  --fleetscope-listen "127.0.0.1:$FS_PORT" --fleetscope-data-dir "$WORK/fs-data" \
  >"$WORK/loadgen.log" 2>&1 &
LG=$!
PIDS+=("$LG")
wait_loadgen "$WORK/loadgen.log" || exit 1
TARGETS=$(grep -c 'http://' "$WORK/cfg/fleetscope.toml")
FLEET_SERIES=$(awk '$1 == "total" { print $4 }' "$WORK/loadgen.log")
sed -n '1,/^serving/p' "$WORK/loadgen.log" >&2

declare -A R
run_system() {
  local sys=$1 pid data start warm end
  data="$WORK/$sys-data"
  rm -rf "$data"
  mkdir -p "$data"
  start=$(date +%s)
  if [[ $sys == fleetscope ]]; then
    RUST_LOG=warn "$BIN/fleetscope" serve --config "$WORK/cfg/fleetscope.toml" \
      --data-dir "$data" --listen "127.0.0.1:$FS_PORT" >"$WORK/$sys.log" 2>&1 &
    pid=$!
    METRICS="http://127.0.0.1:$FS_PORT/metrics"
    SAMPLES=fleetscope_samples_ingested_total
    SERIES=fleetscope_active_series
  else
    "$PROMETHEUS" --config.file="$WORK/cfg/prometheus.yml" --storage.tsdb.path="$data" \
      --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-admin-api --log.level=warn \
      >"$WORK/$sys.log" 2>&1 &
    pid=$!
    METRICS="http://127.0.0.1:$PROM_PORT/metrics"
    SAMPLES=prometheus_tsdb_head_samples_appended_total
    SERIES=prometheus_tsdb_head_series
  fi
  PIDS+=("$pid")
  wait_http "$METRICS"
  kill -0 "$pid" 2>/dev/null || { echo "$sys exited:" >&2; cat "$WORK/$sys.log" >&2; exit 1; }
  # Measure from the end of the first interval (every target scraped once,
  # start-up and the first series creation excluded) to the end.
  sleep $((INTERVAL + 5))
  # Disk growth is measured over the same window: both systems write every
  # series' labels once at the start, which a short run would otherwise
  # scale up to a day.
  local cpu0 s0 t0 lg0 d0
  cpu0=$(cpu_s "$pid"); s0=$(metric "$METRICS" "$SAMPLES"); t0=$(date +%s.%N); lg0=$(cpu_s "$LG")
  d0=$(du -sb "$data" | cut -f1)
  local late0=0
  if [[ $sys == fleetscope ]]; then
    late0=$(curl -sf "http://127.0.0.1:$FS_PORT/api/v1/targets" | jq '[.data.targets[].late_scrapes] | add')
  fi
  # Start-up (the first scrape of every series creates it) is over by
  # STEADY_FROM in the fleets measured here; CPU per sample from then on is
  # the steady cost, reported beside the figure that includes start-up.
  local cpu_steady0 s_steady0 t_steady0 late_steady0
  if ((STEADY_FROM > INTERVAL + 5 && STEADY_FROM < DURATION - 60)); then
    sleep $((STEADY_FROM - INTERVAL - 5))
    cpu_steady0=$(cpu_s "$pid"); s_steady0=$(metric "$METRICS" "$SAMPLES"); t_steady0=$(date +%s.%N)
    if [[ $sys == fleetscope ]]; then
      late_steady0=$(curl -sf "http://127.0.0.1:$FS_PORT/api/v1/targets" | jq '[.data.targets[].late_scrapes] | add')
    fi
    sleep $((DURATION - STEADY_FROM))
  else
    sleep $((DURATION - INTERVAL - 5))
  fi
  local cpu1 s1 t1 lg1 d1
  cpu1=$(cpu_s "$pid"); s1=$(metric "$METRICS" "$SAMPLES"); t1=$(date +%s.%N); lg1=$(cpu_s "$LG")
  d1=$(du -sb "$data" | cut -f1)
  R[$sys,disk_growth]=$((d1 - d0))
  end=$(date +%s)
  R[$sys,cpu]=$(echo "$cpu1 - $cpu0" | bc -l)
  R[$sys,samples]=$((s1 - s0))
  if [[ -n ${cpu_steady0:-} ]]; then
    R[$sys,cpu_steady]=$(echo "$cpu1 - $cpu_steady0" | bc -l)
    R[$sys,samples_steady]=$((s1 - s_steady0))
    R[$sys,secs_steady]=$(echo "$t1 - $t_steady0" | bc -l)
  fi
  R[$sys,secs]=$(echo "$t1 - $t0" | bc -l)
  R[$sys,lgcpu]=$(echo "$lg1 - $lg0" | bc -l)
  R[$sys,series]=$(metric "$METRICS" "$SERIES")
  R[$sys,cpu_total]=$(cpu_s "$pid")
  # Scrape punctuality.
  if [[ $sys == fleetscope ]]; then
    local t
    t=$(curl -sf "http://127.0.0.1:$FS_PORT/api/v1/targets")
    R[$sys,scrapes]=$(jq '[.data.targets[].scrapes] | add' <<<"$t")
    R[$sys,late]=$(jq '[.data.targets[].late_scrapes] | add' <<<"$t")
    R[$sys,late_warm]=$((R[$sys,late] - late0))
    [[ -n ${late_steady0:-} ]] && R[$sys,late_steady]=$((R[$sys,late] - late_steady0))
    R[$sys,missed]=$(jq '[.data.targets[].missed_scrapes] | add' <<<"$t")
    R[$sys,down]=$(jq '[.data.targets[] | select(.health != "up")] | length' <<<"$t")
  else
    # Late as fleetscope counts it (started more than a tenth of the interval
    # after its tick), from the start time each `up` sample carries.
    read -r "R[$sys,scrapes]" "R[$sys,late]" "R[$sys,late_warm]" "R[$sys,late_steady]" "R[$sys,missed]" \
      < <(python3 benches/prom_punctuality.py "http://127.0.0.1:$PROM_PORT" "$INTERVAL" \
        "$start" "$end" "$t0" "${t_steady0:-0}")
    ((${t_steady0:+1})) || unset "R[$sys,late_steady]"
    R[$sys,p99]=$(curl -sf "$METRICS" | awk -v i="${INTERVAL}s" \
      'index($1, "prometheus_target_interval_length_seconds{") == 1 && index($1, "interval=\"" i "\"") && index($1, "quantile=\"0.99\"") { print $2 }')
    R[$sys,down]=$(curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=count(up == 0) or vector(0)' | jq -r '.data.result[0].value[1]')
  fi
  R[$sys,expected]=$(echo "$TARGETS * ($end - $start) / $INTERVAL" | bc -l)
  # A 24 h range query (the run's data are its newest minutes), same
  # aggregate, step 60 s; the first call and the median of QUERY_RUNS.
  local from=$((end - 86400)) to=$end times=()
  for i in $(seq 1 "$QUERY_RUNS"); do
    if [[ $sys == fleetscope ]]; then
      times+=("$(curl -s -o "$WORK/q.json" -w '%{time_total}' -X POST \
        -H 'Content-Type: application/json' "http://127.0.0.1:$FS_PORT/grafana/query" \
        -d "{\"range\":{\"from\":\"$(iso $from)\",\"to\":\"$(iso $to)\"},\"intervalMs\":60000,\"maxDataPoints\":1000,\"targets\":[{\"refId\":\"A\",\"target\":\"timeseries\",\"payload\":{\"metric\":\"container_cpu_usage_seconds_total\",\"agg\":\"rate\",\"by\":[\"cluster\"]}}]}")")
    else
      times+=("$(curl -s -o "$WORK/q.json" -w '%{time_total}' \
        "http://127.0.0.1:$PROM_PORT/api/v1/query_range" \
        --data-urlencode 'query=sum by (cluster) (rate(container_cpu_usage_seconds_total[1m]))' \
        --data-urlencode "start=$from" --data-urlencode "end=$to" --data-urlencode step=60)")
    fi
  done
  R[$sys,q_first]=${times[0]}
  R[$sys,q_median]=$(printf '%s\n' "${times[@]}" | median)
  cp "$WORK/q.json" "$WORK/$sys-query.json"
  R[$sys,hwm]=$(hwm_kb "$pid")
  if [[ $sys == prometheus ]]; then
    # What the same samples take once compacted: a snapshot writes the head
    # out as an ordinary block (chunks + index), as the 2 h compaction would.
    # Its chunk bytes per sample, times a day's samples, approaches
    # Prometheus' steady per-day cost (the WAL, measured above, is bounded
    # and recycled) from above: a chunk holds up to 120 samples, and a short
    # run fills each with few, so per-chunk overhead weighs more.
    local snap
    snap=$(curl -sf -X POST "http://127.0.0.1:$PROM_PORT/api/v1/admin/tsdb/snapshot" |
      jq -r '.data.name // empty' || true)
    if [[ -n $snap ]]; then
      R[$sys,block_chunks]=$(find "$data/snapshots/$snap" -path '*/chunks/*' -type f -printf '%s\n' |
        awk '{ s += $1 } END { print s + 0 }')
      R[$sys,block_index]=$(find "$data/snapshots/$snap" -name index -type f -printf '%s\n' |
        awk '{ s += $1 } END { print s + 0 }')
      R[$sys,samples_all]=$(metric "$METRICS" "$SAMPLES")
      rm -rf "$data/snapshots" # not part of what Prometheus keeps
    fi
  fi
  # Clean shutdown, then the data directory's size.
  kill -TERM "$pid"
  wait "$pid" || true
  R[$sys,disk]=$(du -sb "$data" | cut -f1)
  if [[ $sys == fleetscope && -n ${PYTHON:-} ]]; then
    local table rows per_row
    while read -r table rows per_row; do
      R[$sys,rows_$table]=$rows
      R[$sys,bytes_$table]=$per_row
    done < <("$PYTHON" benches/stored_bytes.py --no-columns "$data/fleetscope.duckdb" \
      rollup_1m_rows rollup_5m_rows rollup_1h_rows series |
      sed -n 's/^\([a-z0-9_]*\): \([0-9]*\) rows, \([0-9.]*\) B\/row.*/\1 \2 \3/p')
  fi
  R[$sys,duration]=$((end - start))
}

ROUNDS=${ROUNDS:-1}
ROUND_KEYS=(cpu samples cpu_steady samples_steady hwm series)
for round in $(seq 1 "$ROUNDS"); do
  order=$SYSTEMS
  ((round % 2 == 0)) && order=$(tr ' ' '\n' <<<"$SYSTEMS" | tac | tr '\n' ' ')
  for sys in $order; do
    echo "round $round/$ROUNDS: running $sys for ${DURATION}s ($(date -u +%H:%M:%S) UTC) ..." >&2
    run_system "$sys"
    for k in "${ROUND_KEYS[@]}"; do R[$sys,r${round}_$k]=${R[$sys,$k]:-nan}; done
    R[$sys,r${round}_at]=$(date -u +%H:%M)
  done
done

# --- report ----------------------------------------------------------------
FS_VERSION=$("$BIN/fleetscope" version)
PROM_VERSION=$("$PROMETHEUS" --version 2>&1 | head -1)
echo
echo "date:     $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine:  nproc=$(nproc), $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)"
echo "versions: $FS_VERSION; $PROM_VERSION"
echo "fleet:    $CLUSTERS clusters x $NODES nodes, $PODS_PER_NODE pods/node x $CONTAINERS_PER_POD containers, $GPUS_PER_NODE GPUs/node, churn $CHURN pods/min/cluster, seed $SEED"
echo "          $TARGETS targets, $FLEET_SERIES series exposed, interval ${INTERVAL}s, ${DURATION}s per system (steady state from ${STEADY_FROM}s)"
echo "          load generator at nice $LOADGEN_NICE"
echo
for k in "${!R[@]}"; do echo "$k=${R[$k]}"; done >"$WORK/results.txt"
RETAIN_1M_DAYS=${RETAIN_1M_DAYS:-2} RETAIN_5M_DAYS=${RETAIN_5M_DAYS:-30} RETAIN_1H_DAYS=${RETAIN_1H_DAYS:-400} \
ROUNDS=$ROUNDS python3 - "$SYSTEMS" "$WORK/results.txt" "$INTERVAL" <<'EOF'
import os, sys
R = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[2]) if "=" in l)
systems = sys.argv[1].split()
def f(s, k):
    try: return float(R.get(f"{s},{k}", "nan"))
    except ValueError: return float("nan")
m = {}
for s in systems:
    secs, samples, series, disk, dur = f(s,"secs"), f(s,"samples"), f(s,"series"), f(s,"disk"), f(s,"duration")
    m[s] = {
        "samples/s ingested": samples / secs,
        "active series": series,
        "CPU s per 1M samples": f(s,"cpu") / samples * 1e6,
        "CPU s per 1M samples, steady state": f(s,"cpu_steady") / f(s,"samples_steady") * 1e6 if f(s,"samples_steady") else float("nan"),
        "CPU cores used (avg)": f(s,"cpu") / secs,
        "samples/s, steady state": f(s,"samples_steady") / f(s,"secs_steady"),
        "CPU cores used, steady state": f(s,"cpu_steady") / f(s,"secs_steady"),
        "peak RSS MB per 1M active series": f(s,"hwm") / 1024 / series * 1e6,
        "peak RSS MB": f(s,"hwm") / 1024,
        "disk bytes per series per day (growth)": f(s,"disk_growth") / series * 86400 / secs,
        "disk bytes per series per day (whole run)": disk / series * 86400 / dur,
        "disk MB after run": disk / 1e6,
        "compacted chunk bytes per sample": f(s,"block_chunks") / f(s,"samples_all"),
        "disk bytes per series per day (compacted chunks)": f(s,"block_chunks") / f(s,"samples_all") * 86400 / float(sys.argv[3]),
        "compacted index bytes per series": f(s,"block_index") / series,
        "scrapes done / expected %": 100 * f(s,"scrapes") / f(s,"expected"),
        "late scrapes %": 100 * f(s,"late") / f(s,"scrapes"),
        "missed scrapes": f(s,"missed"),
        "late scrapes after the first interval": f(s,"late_warm"),
        "late scrapes in steady state": f(s,"late_steady"),
        "p99 scrape interval s": f(s,"p99"),
        "targets down at end": f(s,"down"),
        "range query first ms": f(s,"q_first") * 1000,
        "range query median ms": f(s,"q_median") * 1000,
        "loadgen CPU cores (avg)": f(s,"lgcpu") / secs,
    }
keys = list(next(iter(m.values())).keys())
w = max(len(k) for k in keys)
hdr = f"| {'metric':<{w}} | " + " | ".join(f"{s:>12}" for s in systems) + (" | ours/Prometheus |" if len(systems) == 2 else " |")
print(hdr)
print("|" + "-" * (w + 2) + "|" + "|".join("-" * 14 for _ in systems) + ("|-----------------:|" if len(systems) == 2 else "|"))
for k in keys:
    vals = [m[s][k] for s in systems]
    cells = " | ".join(f"{v:>12.3g}" if abs(v) < 1e4 else f"{v:>12.0f}" for v in vals)
    ratio = ""
    if len(systems) == 2:
        a, b = vals
        ratio = f" | {a / b:>15.3g} |" if b and b == b and a == a else " |               - |"
    else:
        ratio = " |"
    print(f"| {k:<{w}} | {cells}{ratio}")
rounds = int(os.environ.get("ROUNDS", "1"))
if rounds > 1 and len(systems) == 2:
    a, b = systems
    print(f"\nCPU s per 1 M samples, round by round (ABBA order; ended at, UTC)")
    print(f"| round | {a} | {b} | {a}/{b} | {a}, steady | {b}, steady | {a}/{b}, steady |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    tot = {s: [0.0, 0.0, 0.0, 0.0] for s in systems}
    for r in range(1, rounds + 1):
        row = []
        for key, skey in (("cpu", "samples"), ("cpu_steady", "samples_steady")):
            v = [f(s, f"r{r}_{key}") / f(s, f"r{r}_{skey}") * 1e6 for s in systems]
            row.append(v)
        for s in systems:
            t = tot[s]
            t[0] += f(s, f"r{r}_cpu"); t[1] += f(s, f"r{r}_samples")
            t[2] += f(s, f"r{r}_cpu_steady"); t[3] += f(s, f"r{r}_samples_steady")
        at = " / ".join(R.get(f"{s},r{r}_at", "?") for s in systems)
        (wa, wb), (sa, sb) = row
        print(f"| {r} ({at}) | {wa:.3f} | {wb:.3f} | **{wa / wb:.3f}** | {sa:.3f} | {sb:.3f} | **{sa / sb:.3f}** |")
    pa, pb = (tot[s][0] / tot[s][1] * 1e6 for s in systems)
    qa, qb = (tot[s][2] / tot[s][3] * 1e6 if tot[s][3] else float("nan") for s in systems)
    print(f"| pooled | {pa:.3f} | {pb:.3f} | **{pa / pb:.3f}** | {qa:.3f} | {qb:.3f} | **{qa / qb:.3f}** |")
if len(systems) == 2 and "prometheus" in systems and "fleetscope" in systems:
    ours = m["fleetscope"]["disk bytes per series per day (growth)"]
    blocks = m["prometheus"]["disk bytes per series per day (compacted chunks)"]
    print(f"\nfleetscope's directory growth / Prometheus' compacted chunks, per series per day: {ours / blocks:.3g}")
    b1m, b5m, b1h = (f("fleetscope", f"bytes_rollup_{r}_rows") for r in ("1m", "5m", "1h"))
    if b1m == b1m and blocks == blocks:
        # A run shorter than an hour stores no 1 h row: take a 5 m row's
        # size, a little more than one (its count and sum are larger).
        b1h = b1h if b1h == b1h else b5m
        keep = [float(os.environ[f"RETAIN_{r}_DAYS"]) for r in ("1M", "5M", "1H")]
        per_day = [86400 / max(60, float(sys.argv[3])), 288, 24]
        print(f"\nHistory held, bytes per series (fleetscope: stored rows at retention "
              f"1m {keep[0]:g} d, 5m {keep[1]:g} d, 1h {keep[2]:g} d, from {b1m:.2f}/{b5m:.2f}/{b1h:.2f} "
              f"bytes per stored 1m/5m/1h row; Prometheus: compacted chunks; indexes and series left out)")
        print("| days held | fleetscope | Prometheus | ours/Prometheus |")
        print("|---:|---:|---:|---:|")
        for days in (1, 15, 30, 90, 400):
            ours_held = sum(min(days, k) * n * b for k, n, b in zip(keep, per_day, (b1m, b5m, b1h)))
            theirs_held = days * blocks
            print(f"| {days} | {ours_held:,.0f} | {theirs_held:,.0f} | {ours_held / theirs_held:.3g} |")
EOF
echo
echo "raw: $(sort "$WORK/results.txt" | tr '\n' ' ')"
[[ ${KEEP:-0} == 1 ]] && echo "kept $WORK" >&2
exit 0
