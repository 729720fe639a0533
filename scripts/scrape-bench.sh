#!/usr/bin/env bash
# Scrape benchmark: /metrics of the exporter against the same bytes served as a static file by
# nginx and by a minimal Python prometheus_client exporter, for billing answers of 100, 10,000
# and 60,000 rows, gzip off and on; plus the exporter's memory, and the same scrapes while a
# second exporter re-polls (decode, render, gzip) the same answer every POLL_EVERY.
#   scripts/scrape-bench.sh    (DURATION=10s CONNECTIONS=64 ROWS="100 10000 60000" DAYS=1 POLL_EVERY=1s)
# DAYS=1 makes every row its own series (the worst case); DAYS=30 is a month of daily rows.
# Needs wrk, nginx and curl (Debian packages) and Python's prometheus_client (pip).
# The exporter polls nginx, which serves a generated billing answer, so that the process measured
# is the exporter alone (the demo would put the simulator in the same process).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
rows_list=${ROWS:-100 10000 60000}
days=${DAYS:-1}
poll_every=${POLL_EVERY:-1s}
source scripts/bench-common.sh
require_tools "apt-get install wrk nginx curl" wrk nginx curl python3
require_python_module prometheus_client
make_work_dir
wait_for() { until curl -sf -o /dev/null "$1"; do sleep 0.1; done; }
# Ready means serving, not polled: wait for the first poll's answer to be served too.
wait_polled() { until curl -sf "$1" | grep -q '^wolkvox_up{.*} 1$'; do sleep 0.1; done; }
kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
start_nginx 4096 "sendfile on; tcp_nopush on; keepalive_requests 1000000;" \
  'location = /metrics { default_type "text/plain; version=0.0.4"; gzip_static on; }'

cat > "$work/peer.py" << 'PY'
# The usual hand-written exporter: prometheus_client's registry and HTTP server, a collector
# that yields cached families on each scrape.
import sys, time
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
families = list(text_string_to_metric_families(open(sys.argv[2]).read()))
class Cached(Collector):
    def collect(self):
        return families
registry = CollectorRegistry()
registry.register(Cached())
start_http_server(int(sys.argv[1]), addr="127.0.0.1", registry=registry)
while True:
    time.sleep(3600)
PY

# start_exporter PORT INTERVAL: an exporter polling nginx's billing answer every INTERVAL, with a
# new state directory (a shared one would carry the last exporter's hourly schedule into the next).
start_exporter() {
  WOLKVOX_TOKEN=fake-token-for-benchmarks "$exporter_binary" --wolkvox.server 0042 \
    --wolkvox.base-url "http://127.0.0.1:$nginx_port" --wolkvox.poll-interval "$2" --wolkvox.allow-fast-poll \
    --storage.path "$(mktemp -d -p "$work")" --web.listen-address "127.0.0.1:$1" --web.max-requests 0 --log.level warn &
  pids+=($!)
}

# bench NAME URL [gzip] -> "req/s p50 p99 non2xx errors"
bench() {
  local args=(-t2 "-c$connections" "-d$duration" --latency)
  [[ ${3:-} == gzip ]] && args+=(-H "Accept-Encoding: gzip")
  wrk "${args[@]}" "$2" > "$work/wrk.txt"
  awk '/Requests\/sec/ { rps = $2 } /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 } /Non-2xx/ { bad = $NF } /Socket errors/ { err = 1 }
       END { printf "%s %s %s %s %s\n", rps, p50, p99, (bad == "" ? 0 : bad), (err ? "errors" : "ok") }' "$work/wrk.txt"
}

echo "wrk -t2 -c$connections -d$duration on $(nproc) cores shared by wrk and the server"
printf '%-7s %-8s %-5s %12s %10s %10s %8s\n' rows server gzip req/s p50 p99 non-2xx
for rows in $rows_list; do
  billing_answer "$rows" "$days" > /dev/null
  port=$(free_port)
  start_exporter "$port" 1h
  exporter=$!
  wait_polled "http://127.0.0.1:$port/metrics"
  idle=$(kib "$exporter" VmRSS); peak=$(kib "$exporter" VmHWM)
  # nginx serves exactly the exporter's bytes, plain and compressed.
  curl -s "http://127.0.0.1:$port/metrics" > "$work/www/metrics"
  curl -s -H "Accept-Encoding: gzip" "http://127.0.0.1:$port/metrics" > "$work/www/metrics.gz"
  chmod a+r "$work/www/metrics" "$work/www/metrics.gz"
  peer_port=$(free_port)
  python3 "$work/peer.py" "$peer_port" "$work/www/metrics" &
  pids+=($!)
  wait_for "http://127.0.0.1:$peer_port/metrics"

  for gzip in plain gzip; do
    read -r e_rps e_p50 e_p99 e_bad e_err <<< "$(bench exporter "http://127.0.0.1:$port/metrics" "$gzip")"
    loaded=$(kib "$exporter" VmRSS)
    read -r n_rps n_p50 n_p99 n_bad n_err <<< "$(bench nginx "http://127.0.0.1:$nginx_port/metrics" "$gzip")"
    read -r p_rps p_p50 p_p99 p_bad p_err <<< "$(bench python "http://127.0.0.1:$peer_port/metrics" "$gzip")"
    printf '%-7s %-8s %-5s %12s %10s %10s %8s\n' "$rows" exporter "$gzip" "$e_rps" "$e_p50" "$e_p99" "$e_bad"
    printf '%-7s %-8s %-5s %12s %10s %10s %8s\n' "$rows" nginx "$gzip" "$n_rps" "$n_p50" "$n_p99" "$n_bad"
    printf '%-7s %-8s %-5s %12s %10s %10s %8s\n' "$rows" python "$gzip" "$p_rps" "$p_p50" "$p_p99" "$p_bad"
    python3 -c "p = $p_rps; print(f'{\"\":7} ratios {\"$gzip\":5}  exporter/nginx {$e_rps / $n_rps:.2f} x   exporter/python ' + (f'{$e_rps / p:.0f} x' if p >= 1 else 'n/a: python under 1 request/s'))"
  done
  echo "$rows rows: /metrics $(wc -c < "$work/www/metrics") bytes ($(wc -c < "$work/www/metrics.gz") gzipped); exporter memory: idle ${idle} KiB, peak ${peak} KiB, under load ${loaded} KiB"
  kill "$exporter" "${pids[-1]}"; wait "$exporter" 2> /dev/null || true

  # The same scrapes while every poll decodes, renders and compresses the answer again.
  start_exporter "$port" "$poll_every"
  exporter=$!
  wait_polled "http://127.0.0.1:$port/metrics"
  for gzip in plain gzip; do
    read -r b_rps b_p50 b_p99 b_bad b_err <<< "$(bench exporter "http://127.0.0.1:$port/metrics" "$gzip")"
    polls=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^wolkvox_api_requests_total/ { print $2 }')
    printf '%-7s %-8s %-5s %12s %10s %10s %8s   (polling every %s, %s polls so far)\n' "$rows" polling "$gzip" "$b_rps" "$b_p50" "$b_p99" "$b_bad" "$poll_every" "$polls"
  done
  echo "$rows rows: peak memory while polling every $poll_every: $(kib "$exporter" VmHWM) KiB"
  kill "$exporter"; wait "$exporter" 2> /dev/null || true
done
