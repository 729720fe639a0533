#!/usr/bin/env bash
# Restart benchmark: the time from starting the exporter on a state directory (`--storage.path`)
# that holds the last good answer of ROWS billing rows, to its first successful /metrics response
# that holds the restored series. Prints the min, median and max of RUNS restarts.
#   scripts/restart-bench.sh    (ROWS=60000 DAYS=30 RUNS=10)
# DAYS=30 is a month of daily rows as the API sends them; DAYS=1 makes every row its own series
# (the worst case). Needs nginx and curl (Debian packages).
# The state directory is written by a first exporter that polls nginx serving a generated billing
# answer (as scripts/scrape-bench.sh does) and is stopped with SIGTERM once ready; nginx is then
# stopped, so that the restarted exporters can only serve what they restored. Time is taken with
# bash's EPOCHREALTIME (no fork) just before each start, and after each curl; curl retries in a
# tight loop, so the figures include up to one curl start-up (a few ms) of polling granularity.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-60000}
days=${DAYS:-30}
runs=${RUNS:-10}
source scripts/bench-common.sh
require_tools "apt-get install nginx curl" nginx curl python3
make_work_dir
now_ns() { echo "${EPOCHREALTIME/./}000"; }
start_nginx 64
marker=$(billing_answer "$rows" "$days")

state="$work/state"
port=$(free_port)
# start_exporter: polls nginx once an hour, keeping its state in $state.
start_exporter() {
  WOLKVOX_TOKEN=fake-token-for-benchmarks "$exporter_binary" --wolkvox.server 0042 \
    --wolkvox.base-url "http://127.0.0.1:$nginx_port" --wolkvox.poll-interval 1h --wolkvox.apis gamification \
    --storage.path "$state" --web.listen-address "127.0.0.1:$port" --log.level "${LOG_LEVEL:-warn}" "$@" &
  exporter=$!
  pids+=("$exporter")
}
# stop_exporter: SIGTERM, as systemd or Kubernetes would; the lock is released when it exits.
stop_exporter() { kill -TERM "$exporter"; wait "$exporter" 2> /dev/null || true; }

# The state directory: one successful poll of $rows rows.
start_exporter
# Ready means serving, not polled: wait (at most 60 s) for the first poll's series.
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$port/metrics" -o "$work/metrics" && grep -qF "$marker" "$work/metrics" && break
  sleep 0.1
done
grep -qF "$marker" "$work/metrics" || { echo "the first exporter never served $marker" >&2; exit 1; }
stop_exporter
kill "$nginx"; wait "$nginx" 2> /dev/null || true
echo "$rows rows over $days day(s): state directory $(du -sb "$state" | cut -f1) bytes, answers file $(stat -c %s "$state"/token-*.answers.json) bytes; nginx stopped"

# Restarts: process start to the first /metrics response that holds the restored series.
times=()
for run in $(seq "$runs"); do
  started=$(now_ns)
  start_exporter
  served=
  # At most 10 s: curl waits on the listener until the server answers.
  for _ in $(seq 2000); do
    if curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" -o "$work/metrics" 2> /dev/null && grep -qF "$marker" "$work/metrics"; then
      served=$(now_ns)
      break
    fi
    (( $(now_ns) - started > 10000000000 )) && break
  done
  [[ -n $served ]] || { echo "restart $run: no restored series within 10 s" >&2; exit 1; }
  times+=("$(( (served - started) / 1000 ))")
  stop_exporter
done
printf '%s\n' "${times[@]}" | sort -n | awk -v runs="$runs" -v rows="$rows" -v days="$days" '
  { t[NR] = $1 / 1000 }
  END { median = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
        printf "restart to first scrape with restored state, %s rows over %s day(s), %s runs: min %.1f ms, median %.1f ms, max %.1f ms\n", rows, days, runs, t[1], median, t[NR] }'
