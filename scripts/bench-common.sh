# Shared by the benchmark scripts (sourced, not run): tool checks, the release build, a free port,
# the exporter binary, a work directory cleaned up on exit, nginx serving it, and a generated
# billing answer.

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

# make_work_dir: $work, a temporary directory removed on exit with every pid in $pids killed.
make_work_dir() {
  work=$(mktemp -d)
  chmod 755 "$work"   # nginx's workers run unprivileged
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; rm -rf "$work"' EXIT
}

# start_nginx CONNECTIONS [HTTP-DIRECTIVES [LOCATIONS]]: nginx serving $work/www on $nginx_port
# (its pid in $nginx and $pids), the billing answer at /api/v2/billing.php; returns once it answers.
start_nginx() {
  nginx_port=$(free_port)
  mkdir -p "$work/www/api/v2" "$work/nginx"
  cat > "$work/nginx/nginx.conf" << CONF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections $1; }
http {
  access_log off;
  ${2:-}
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/www;
    ${3:-}
    location = /api/v2/billing.php { default_type application/json; }
  }
}
CONF
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
  nginx=$!
  pids+=("$nginx")
  until curl -s -o /dev/null "http://127.0.0.1:$nginx_port/"; do sleep 0.1; done
}

# billing_answer ROWS DAYS: writes a billing answer of ROWS rows over DAYS days (every row its own
# series with DAYS=1) to nginx's billing.php, and prints the series its last row makes.
billing_answer() {
  python3 - "$1" "$2" "$work/www/api/v2/billing.php" << 'PY'
import json, sys
n, days, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
series = -(-n // days)
products = ["Gamification", "Gamification Premium"]
data = [{"operation": f"operación_{i % series // 2:05d}", "description": products[i % series % 2],
         "items": str(i % 97), "date": f"2026-11-{1 + i // series:02d} 09:00:00"} for i in range(n)]
with open(path, "w") as out:
    json.dump({"code": 200, "error": None, "msg": "Information found for the current month", "data": data}, out)
last = series - 1
print(f'wolkvox_gamification_licenses{{server="0042",operation="operación_{last // 2:05d}",description="{products[last % 2]}"}}')
PY
  chmod -R a+rX "$work/www"
}
