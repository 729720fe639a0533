#!/usr/bin/env bash
# Load test of /metrics with wrk: 256 connections for 30 s against the demo data, over plain HTTP,
# TLS, and TLS with basic auth. Prints requests/s, latency percentiles, errors and non-2xx answers.
#   scripts/load.sh                      (DURATION=10s CONNECTIONS=64 scripts/load.sh for a quick look)
# Needs wrk and openssl (Debian packages) and Python's bcrypt (pip) for the password hash.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-30s}
connections=${CONNECTIONS:-256}
source scripts/bench-common.sh
require_tools "apt-get install wrk openssl curl" wrk openssl python3 curl
require_python_module bcrypt
work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2> /dev/null; rm -rf "$work"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2> /dev/null
password=load-test-password
hash=$(python3 -c "import bcrypt; print(bcrypt.hashpw(b'$password', bcrypt.gensalt(10)).decode())")
tls="tls_server_config: {cert_file: $work/cert.pem, key_file: $work/key.pem}"
printf '%s\n' "$tls" > "$work/tls.yml"
printf '%s\nbasic_auth_users:\n  prometheus: %s\n' "$tls" "$hash" > "$work/tls-auth.yml"
auth_header="Authorization: Basic $(printf 'prometheus:%s' "$password" | base64)"

port=$(free_port)

# run NAME SCHEME WEB_CONFIG [HEADER]
run() {
  local name=$1 scheme=$2 web=$3 header=${4:-}
  local args=(--demo --web.listen-address "127.0.0.1:$port" --log.level warn)
  [[ -n $web ]] && args+=(--web.config.file "$web")
  "$exporter_binary" "${args[@]}" &
  pid=$!
  local curl_args=(-ksf -o /dev/null)
  [[ -n $header ]] && curl_args+=(-H "$header")
  until curl "${curl_args[@]}" "$scheme://127.0.0.1:$port/-/ready"; do sleep 0.1; done
  local wrk_args=(-t2 "-c$connections" "-d$duration" --latency)
  [[ -n $header ]] && wrk_args+=(-H "$header")
  wrk "${wrk_args[@]}" "$scheme://127.0.0.1:$port/metrics" > "$work/$name.txt"
  kill "$pid"; wait "$pid" 2> /dev/null || true; pid=
  awk -v name="$name" '
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
    /Socket errors/ { errors = $0 } /Non-2xx/ { non2xx = $NF }
    / requests in / { total = $1 }
    END { printf "%-12s %10s req/s  p50 %-9s p99 %-9s  %s requests, non-2xx: %s, %s\n", name, rps, p50, p99, total, (non2xx == "" ? 0 : non2xx), (errors == "" ? "no socket errors" : errors) }
  ' "$work/$name.txt"
}

echo "wrk: $connections connections for $duration against /metrics (demo data, $(nproc) cores shared with wrk)"
run plain http ""
run tls https "$work/tls.yml"
run tls+auth https "$work/tls-auth.yml" "$auth_header"
