#!/usr/bin/env bash
# The size of /metrics and the exporter's resident memory for ROWS distinct usage series, dated
# this month: a release binary polls a billing answer served by Python's http.server, all on
# 127.0.0.1. Lighter than scrape-bench.sh (no nginx, no wrk), for comparing two binaries.
#
#   scripts/metrics-size.sh BINARY [ROWS=60000]
set -euo pipefail
binary=$1
rows=${2:-60000}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

mkdir -p "$work/www/api/v2"
python3 - "$rows" "$work/www/api/v2/billing.php" << 'PY'
import datetime, json, sys
rows, path = int(sys.argv[1]), sys.argv[2]
month = datetime.date.today().strftime("%Y-%m")
data = [{"operation": f"operación_{i // 2:05d}", "description": ["Gamification", "Gamification Premium"][i % 2],
         "items": str(i % 97), "date": f"{month}-01 09:00:00"} for i in range(rows)]
json.dump({"code": 200, "error": None, "msg": "Information found for the current month", "data": data}, open(path, "w"))
PY
api_port=$(free_port)
(cd "$work/www" && exec python3 -m http.server "$api_port" --bind 127.0.0.1 > /dev/null 2>&1) &
pids+=($!)
port=$(free_port)
WOLKVOX_TOKEN=fake-token-for-benchmarks "$binary" --wolkvox.server 0042 --wolkvox.base-url "http://127.0.0.1:$api_port" \
  --wolkvox.poll-interval 1h --wolkvox.max-response-bytes 256MiB --web.listen-address "127.0.0.1:$port" \
  --storage.path "$work/state" > /dev/null 2>&1 &
exporter=$!
pids+=("$exporter")
for _ in $(seq 150); do
  curl -sf "127.0.0.1:$port/metrics" | grep -q '^wolkvox_gamification_licenses{' && break
  sleep 0.2
done
sleep 2
body=$(curl -sf "127.0.0.1:$port/metrics")
series=$(grep -c '^wolkvox_gamification_licenses{' <<< "$body")
memory=$(awk '/VmRSS|VmHWM/ { printf "%s %.1f MiB  ", $1, $2 / 1024 }' "/proc/$exporter/status")
echo "$series series: /metrics $(wc -c <<< "$body") bytes, $memory"
