#!/usr/bin/env bash
# fleetscope check-metrics vs `promtool check metrics` on one large, valid
# Prometheus text exposition payload (~100 MB by default).
#
#   benches/compare_promtool.sh            # build, generate if missing, time
#   SIZE_MB=200 RUNS=3 REGEN=1 benches/compare_promtool.sh
#   GEN_ONLY=1 benches/compare_promtool.sh   # only write the payload
#
# The payload is built from tests/fixtures/exposition/{node_exporter,
# kube_state_metrics,cadvisor}.prom: every family keeps a single HELP/TYPE
# block, and each copy of a sample carries an extra label
# fleetscope_copy="<fixture>-<n>" so that no series repeats. Families stay
# contiguous (all copies of a family follow its TYPE line) so the result is
# valid text format 0.0.4 for both parsers.
#
# Needs: promtool (Debian package `prometheus`), hyperfine (optional; falls
# back to a loop of /usr/bin/time), /usr/bin/time (peak RSS), python3.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=../scripts/env.sh
source scripts/env.sh
ensure_libduckdb

SIZE_MB="${SIZE_MB:-100}"
RUNS="${RUNS:-5}"
FILE="${FILE:-/tmp/fleetscope-bench-${SIZE_MB}mb.prom}"
WORK="${WORK:-/tmp/fleetscope-compare-promtool}"
PROMTOOL="${PROMTOOL:-$(command -v promtool || true)}"
mkdir -p "$WORK"

[[ -x "$PROMTOOL" ]] || { echo "promtool not found (apt-get install -y prometheus)" >&2; exit 1; }


if [[ ! -s "$FILE" || "${REGEN:-0}" == 1 ]]; then
  echo "== generating $FILE (~${SIZE_MB} MB)"
  python3 - "$FILE" "$SIZE_MB" tests/fixtures/exposition/{node_exporter,kube_state_metrics,cadvisor}.prom <<'PY'
import re, sys
out_path, size_mb, fixtures = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created", "_info")
name_re = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

# family name -> {"help": line, "type": line, "lines": {fixture: [sample lines]}}
families, order = {}, []
def fam(name):
    if name not in families:
        families[name] = {"help": None, "type": None, "samples": []}
        order.append(name)
    return families[name]

for fx in fixtures:
    tag = fx.rsplit("/", 1)[-1].split(".")[0]
    cur = None
    for line in open(fx, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                cur = parts[2]
                f = fam(cur)
                key = parts[1].lower()
                if f[key] is None:          # keep the first HELP/TYPE seen
                    f[key] = line
            continue
        m = name_re.match(line)
        name = m.group(0)
        if cur is not None and (name == cur or any(name == cur + s for s in SUFFIXES)):
            family = cur
        else:
            family, cur = name, None
        rest = line[m.end():]
        fam(family)["samples"].append((tag, name, rest))

base = sum(len(n) + len(r) + 40 for f in families.values() for _, n, r in f["samples"])
copies = max(1, round(size_mb * 1_000_000 / base))
with open(out_path, "w", encoding="utf-8") as out:
    for name in order:
        f = families[name]
        if f["help"]: out.write(f["help"] + "\n")
        if f["type"]: out.write(f["type"] + "\n")
        for c in range(copies):
            for tag, n, rest in f["samples"]:
                label = f'fleetscope_copy="{tag}-{c}"'
                if rest.startswith("{"):
                    inner = rest[1:]
                    sep = "" if inner.lstrip().startswith("}") else ","
                    out.write(f"{n}{{{label}{sep}{inner}\n")
                else:
                    out.write(f"{n}{{{label}}}{rest}\n")
print(f"copies={copies} families={len(order)}", file=sys.stderr)
PY
fi

[[ "${GEN_ONLY:-0}" == 1 ]] && exit 0

echo "== building fleetscope (release, ${CARGO_FEATURE_ARGS[*]})"
cargo build --release "${CARGO_FEATURE_ARGS[@]}" --bin fleetscope
BIN="$CARGO_TARGET_DIR/release/fleetscope"

BYTES=$(stat -c %s "$FILE")
SAMPLES=$(grep -vc '^#' "$FILE" || true)
echo "== payload: $FILE  $((BYTES / 1000000)) MB, $SAMPLES samples"

echo "== single runs (exit codes, output, peak RSS via /usr/bin/time -v)"
set +e
/usr/bin/time -v "$BIN" check-metrics "$FILE" >"$WORK/fleetscope.out" 2>"$WORK/fleetscope.time"
FS_RC=$?
/usr/bin/time -v "$PROMTOOL" check metrics <"$FILE" >"$WORK/promtool.out" 2>"$WORK/promtool.time"
PT_RC=$?
set -e
# /usr/bin/time appends its report to stderr; split what the tool printed.
strip_time() { sed -n '/^\tCommand being timed:/q;p' "$1"; }
rss_kb() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }
FS_RSS=$(rss_kb "$WORK/fleetscope.time"); PT_RSS=$(rss_kb "$WORK/promtool.time")
echo "fleetscope check-metrics exit=$FS_RC; printed:"
{ cat "$WORK/fleetscope.out"; strip_time "$WORK/fleetscope.time"; } | sed -n 1,20p
echo "promtool check metrics exit=$PT_RC; printed ($( { cat "$WORK/promtool.out"; strip_time "$WORK/promtool.time"; } | wc -l) lines, first 20):"
{ cat "$WORK/promtool.out"; strip_time "$WORK/promtool.time"; } | sed -n 1,20p

echo "== timing ($RUNS runs each)"
if command -v hyperfine >/dev/null; then
  # -i: promtool exits 3 on lint findings alone; that is still a full parse.
  hyperfine -i --warmup 1 --runs "$RUNS" --export-json "$WORK/hyperfine.json" \
    -n promtool "$PROMTOOL check metrics < $FILE > /dev/null 2>&1" \
    -n fleetscope "$BIN check-metrics $FILE > /dev/null 2>&1"
  read -r PT_S FS_S PT_CPU FS_CPU < <(python3 -c '
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
cpu = lambda k: r[k]["user"] + r[k]["system"]
print(r["promtool"]["median"], r["fleetscope"]["median"], cpu("promtool"), cpu("fleetscope"))' "$WORK/hyperfine.json")
  STAT=median
else
  median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
  PT_S=$(for _ in $(seq "$RUNS"); do /usr/bin/time -f %e "$PROMTOOL" check metrics <"$FILE" 2>&1 >/dev/null | tail -1; done | median)
  FS_S=$(for _ in $(seq "$RUNS"); do /usr/bin/time -f %e "$BIN" check-metrics "$FILE" 2>&1 >/dev/null | tail -1; done | median)
  STAT="median (/usr/bin/time)"
  PT_CPU=nan FS_CPU=nan
fi

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
python3 - "$PT_S" "$FS_S" "$PT_RSS" "$FS_RSS" "$BYTES" "$PT_CPU" "$FS_CPU" "$PT_RC" "$FS_RC" "$STAT" <<'PY'
import sys
pt_s, fs_s, pt_rss, fs_rss, size, pt_cpu, fs_cpu = map(float, sys.argv[1:8])
pt_rc, fs_rc, stat = sys.argv[8], sys.argv[9], sys.argv[10]
mb = size / 1e6
print()
print(f"| tool | wall ({stat}) | MB/s (wall) | CPU user+sys (mean) | peak RSS | exit |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| promtool check metrics | {pt_s:.3f} s | {mb/pt_s:.0f} | {pt_cpu:.3f} s | {pt_rss/1024:.0f} MiB | {pt_rc} |")
print(f"| fleetscope check-metrics | {fs_s:.3f} s | {mb/fs_s:.0f} | {fs_cpu:.3f} s | {fs_rss/1024:.0f} MiB | {fs_rc} |")
print(f"| ratio promtool / fleetscope | {pt_s/fs_s:.1f}x | | {pt_cpu/fs_cpu:.1f}x | {pt_rss/fs_rss:.1f}x | |")
PY
