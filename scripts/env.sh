# Sourced by the scripts: one persistent target dir and DuckDB's official
# prebuilt library, so DuckDB is never compiled during development or CI.
# The shipped binary (`cargo build --release`, feature "bundled") does not
# use any of this.
DUCKDB_VERSION=1.5.6
DUCKDB_NPM_PACKAGE="@duckdb/node-bindings-linux-x64@1.5.6-r.1"
FLEETSCOPE_CACHE="${FLEETSCOPE_CACHE:-$HOME/.cache/fleetscope}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FLEETSCOPE_CACHE/target}"
export DUCKDB_LIB_DIR="$FLEETSCOPE_CACHE/libduckdb-$DUCKDB_VERSION"
export LD_LIBRARY_PATH="$DUCKDB_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
CARGO_FEATURE_ARGS=(--no-default-features)

ensure_libduckdb() {
  [[ -f "$DUCKDB_LIB_DIR/libduckdb.so" ]] && return 0
  if ! command -v npm >/dev/null; then
    local sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq npm
  fi
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$DUCKDB_NPM_PACKAGE" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$DUCKDB_LIB_DIR"
  mv "$tmp/package/libduckdb.so" "$DUCKDB_LIB_DIR/"
  rm -rf "$tmp"
}
