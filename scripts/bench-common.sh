# Shared by scripts/load.sh and scripts/scrape-bench.sh (sourced, not run): tool checks, the
# release build, a free port, and the exporter binary.

# require_tools "apt-get hint" TOOL...: stops with the hint when a tool is missing.
require_tools() {
  local hint=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" > /dev/null || { echo "$tool is missing ($hint)" >&2; exit 1; }
  done
}

# require_python_module MODULE: installs it with pip when Python lacks it.
require_python_module() {
  python3 -c "import $1" 2> /dev/null || python3 -m pip install --quiet --disable-pip-version-check "$1"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cargo build --release --locked --quiet
exporter_binary="${CARGO_TARGET_DIR:-target}/release/wolkvox_exporter"
