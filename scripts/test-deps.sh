#!/usr/bin/env bash
# Installs what the Grafana contract test (tests/grafana_contract.rs) and the
# deploy checks run, on a fresh Debian machine; does nothing that is already
# done, so scripts/test.sh can call it every time.
#   - Node + npm (Debian's nodejs/npm when node is missing)
#   - tests/grafana/node_modules from the committed package-lock.json
#     (@grafana/data, Grafana's own frame parser), when missing or stale
#   - schemathesis, the OpenTelemetry SDK and prometheus_client in a venv at
#     ~/.cache/fleetscope/venv
#   - kubectl (Debian's kubernetes-client) for `kubectl kustomize deploy/kubernetes`
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
cache="${FLEETSCOPE_CACHE:-$HOME/.cache/fleetscope}"
venv="${FLEETSCOPE_VENV:-$cache/venv}"

sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
apt_updated=0
apt_install() {
  if ((apt_updated == 0)); then
    "${sudo_cmd[@]}" apt-get update -qq
    apt_updated=1
  fi
  echo "test-deps: apt-get install $*" >&2
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "$@"
}

packages=()
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
command -v python3 >/dev/null || packages+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
command -v kubectl >/dev/null || packages+=(kubernetes-client)
if ((${#packages[@]})); then apt_install "${packages[@]}"; fi

# Debian 12's own packages are too old for two of these: its nodejs (18)
# cannot load @grafana/data (which requires an ESM-only markdown parser
# needing Node 20), and its kubernetes-client (1.20) predates kustomize's
# `labels:` field. Say so instead of failing in the middle of the tests.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "test-deps: Node >= 20 is needed, found $(node --version): install it from nodejs.org or NodeSource" >&2
  exit 1
fi
kubectl_minor=$(kubectl version --client -o json 2>/dev/null |
  python3 -c 'import json, sys; v = json.load(sys.stdin)["clientVersion"]; print(int(v["major"]) * 1000 + int(v["minor"].rstrip("+")))')
if ((kubectl_minor < 1021)); then
  echo "test-deps: kubectl >= 1.21 is needed (kustomize labels:), found $(kubectl version --client 2>/dev/null | head -1)" >&2
  exit 1
fi

# node_modules is current when npm's own record of the install
# (node_modules/.package-lock.json) is newer than the committed lock file.
lock=tests/grafana/package-lock.json
installed=tests/grafana/node_modules/.package-lock.json
if [[ ! -f "$installed" || "$lock" -nt "$installed" || ! -d tests/grafana/node_modules/@grafana/data ]]; then
  echo "test-deps: npm ci --prefix tests/grafana" >&2
  npm ci --prefix tests/grafana --no-audit --no-fund --loglevel=error
fi

if [[ "$("$venv/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]]; then
  echo "test-deps: schemathesis==$SCHEMATHESIS_VERSION into $venv" >&2
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

echo "test-deps: node $(node --version), @grafana/data $(node -p "require('./tests/grafana/node_modules/@grafana/data/package.json').version"), schemathesis $("$venv/bin/schemathesis" --version | awk '{print $NF}'), $(kubectl version --client 2>/dev/null | head -1)" >&2

# OpenTelemetry Python SDK + its OTLP/HTTP and OTLP/gRPC exporters, in the
# same venv, for tests/otel/emit_topology.py (run by tests/span_decode.rs and
# tests/servicemap.rs). They pin every other opentelemetry-* package they
# pull in.
OTEL_PYTHON_VERSION=1.45.2
otel_installed() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(*(m.version("opentelemetry-" + p) for p in ("sdk", "exporter-otlp-proto-http", "exporter-otlp-proto-grpc")))' 2>/dev/null
}
if [[ "$(otel_installed)" != "$OTEL_PYTHON_VERSION $OTEL_PYTHON_VERSION $OTEL_PYTHON_VERSION" ]]; then
  echo "test-deps: opentelemetry-sdk, -exporter-otlp-proto-http, -exporter-otlp-proto-grpc ==$OTEL_PYTHON_VERSION into $venv" >&2
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "opentelemetry-sdk==$OTEL_PYTHON_VERSION" "opentelemetry-exporter-otlp-proto-http==$OTEL_PYTHON_VERSION" \
    "opentelemetry-exporter-otlp-proto-grpc==$OTEL_PYTHON_VERSION"
fi
echo "test-deps: opentelemetry-sdk $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("opentelemetry-sdk"))')" >&2

# The Prometheus Python client, in the same venv, for tests/python/utf8_exporter.py
# (run by tests/utf8_names.rs): a real exporter that negotiates quoted names.
PROMETHEUS_CLIENT_VERSION=0.26.0
if [[ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("prometheus_client"))' 2>/dev/null)" != "$PROMETHEUS_CLIENT_VERSION" ]]; then
  echo "test-deps: prometheus_client==$PROMETHEUS_CLIENT_VERSION into $venv" >&2
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "prometheus_client==$PROMETHEUS_CLIENT_VERSION"
fi
