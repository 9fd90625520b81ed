#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests run
# for real (Prometheus, node exporter, Alertmanager, the prebuilt libduckdb),
# then checks formatting and lints, then runs every test in one release build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

packages=()
command -v prometheus >/dev/null || packages+=(prometheus)
command -v prometheus-node-exporter >/dev/null || packages+=(prometheus-node-exporter)
command -v prometheus-alertmanager >/dev/null || packages+=(prometheus-alertmanager)
if ((${#packages[@]})); then
  echo "installing ${packages[*]}" >&2
  sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${packages[@]}"
fi
ensure_libduckdb
# Grafana's frame parser (npm), schemathesis (PyPI venv), kubectl.
scripts/test-deps.sh

cargo fmt --check
cargo clippy --release "${CARGO_FEATURE_ARGS[@]}" --all-targets -- -D warnings
FLEETSCOPE_REQUIRE_OTEL_PYTHON=1 cargo test --release "${CARGO_FEATURE_ARGS[@]}" "$@"
