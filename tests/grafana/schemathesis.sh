#!/usr/bin/env bash
# The simpod-json-datasource plugin's own OpenAPI contract, fuzzed against a
# running fleetscope with schemathesis (installed by scripts/test-deps.sh).
#
#   tests/grafana/schemathesis.sh http://127.0.0.1:9470/grafana [extra schemathesis args]
#
# Checks: not_a_server_error (no 5xx, no hang past --request-timeout) and
# response_schema_conformance (every 2xx answer matches the contract; the
# contract documents only 200, so status_code_conformance is not run).
# schemathesis_hooks.py steers generated /query and /variable bodies towards
# fleetscope's real targets and accepts exactly one known defect of the
# contract file (see its filter_failure). Examples per operation: 100, or
# SCHEMATHESIS_MAX_EXAMPLES; seed: SCHEMATHESIS_SEED (fixed by default, so a
# failure reproduces).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

url="${1:-${FLEETSCOPE_GRAFANA_URL:-}}"
if [[ ! "$url" =~ ^https?:// ]]; then
  echo "usage: tests/grafana/schemathesis.sh http://HOST:PORT/grafana [schemathesis args]" >&2
  exit 2
fi
shift || true

venv="${FLEETSCOPE_VENV:-${FLEETSCOPE_CACHE:-$HOME/.cache/fleetscope}/venv}"
st="$venv/bin/schemathesis"
if [[ ! -x "$st" ]]; then
  echo "schemathesis.sh: $st is missing; run scripts/test-deps.sh first" >&2
  exit 2
fi

# The contract lives in the shared folder beside (or inside) the checkout.
spec="${FLEETSCOPE_OPENAPI:-}"
if [[ -z "$spec" ]]; then
  for candidate in "$repo/shared/contracts/simpod-json-datasource.openapi.yaml" \
                   "$repo/../shared/contracts/simpod-json-datasource.openapi.yaml" \
                   /work/shared/contracts/simpod-json-datasource.openapi.yaml; do
    if [[ -f "$candidate" ]]; then spec="$candidate"; break; fi
  done
fi
if [[ -z "$spec" || ! -f "$spec" ]]; then
  echo "schemathesis.sh: simpod-json-datasource.openapi.yaml not found (shared/contracts/ beside the checkout); set FLEETSCOPE_OPENAPI" >&2
  exit 2
fi

# Run from a scratch dir: hypothesis and schemathesis write caches into the cwd.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "schemathesis $("$st" --version | awk '{print $NF}') against $url with $spec" >&2
SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" \
  "$st" run "$spec" \
  --url "$url" \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-100}" \
  --seed "${SCHEMATHESIS_SEED:-20261122}" \
  --workers 2 \
  --request-timeout 10 \
  --generation-database none \
  --no-color \
  --output-truncate false \
  "$@"
