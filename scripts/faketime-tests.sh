#!/usr/bin/env bash
# Runs the tests that read the wall clock again at the worst times of day: 23:59:52 in
# America/Bogota on the last day of a month (2026-11-30) and of a year (2026-12-31), with the wall
# clock running on from there, so that they cross midnight, a month's end and a year's while they
# run. Such a test must assert something true at any time.
#
# Which tests: those under the `wall_clock` module of the integration tests (tests/suite/wall_clock/),
# selected by the libtest filter `wall_clock::` and no other way. They run code that takes the date
# from the system clock: the exporter and the backfill as real processes. Every other test runs on
# an injected clock (wolkvox_exporter::clock::Clock, started at a fixed date) and gains nothing from
# a fake one; the tests that drive real Prometheus and Alertmanager servers over the present must
# not get it (those programs would get the fake clock too). A test that reads the system clock
# belongs under wall_clock. The run fails if the filter selects no test.
#
# Only the test binary runs under faketime, never cargo (it would see source files dated in the
# future).
#
#   scripts/faketime-tests.sh [TEST-ARGS...]   e.g. --skip NAME, or --nocapture (a name filter would
#                                              add to the selection: libtest runs what any filter names)
#
# Needs faketime (apt-get install faketime, or scripts/install-test-tools.sh) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v faketime > /dev/null || { echo "faketime is not installed: apt-get install faketime" >&2; exit 1; }

selection=wall_clock::
starts=('2026-11-30 23:59:52' '2026-12-31 23:59:52')
zone=America/Bogota

# Build once, on the real clock; cargo's JSON names the test executable.
binary=$(cargo test --no-run --message-format=json --test suite | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-message":
        print(message["message"]["rendered"], end="", file=sys.stderr)
    elif message.get("reason") == "compiler-artifact" and message["profile"]["test"] and message.get("executable"):
        print(message["executable"])
')
[[ -n $binary ]] || { echo "cargo built no test binary" >&2; exit 1; }
selected=$("$binary" --list "$selection" | grep -c ': test$' || true)
((selected > 0)) || { echo "the filter $selection selects no test in $binary: nothing would run on the fake clock" >&2; exit 1; }
echo "faketime: $selected tests under $selection" >&2
# The clock: libfaketime's relative format, -f "+SECONDS", with the offset from now to the start
# taken just before the binary starts, so it starts at 23:59:52 and its clock keeps
# running. Not the start-at format '@2026-11-30 23:59:52': it starts the clock again in every process,
# so an exporter process a test starts (tests/suite/wall_clock/restarts.rs kills and restarts them) would go back to
# 23:59:52 while its test runs on; an offset is one clock for the binary and all its children. Not
# the absolute format without @ either: it freezes the clock.
# FAKETIME_DONT_FAKE_MONOTONIC=1: only the wall clock is faked. Rust's std waits with absolute
# CLOCK_MONOTONIC deadlines passed straight to futex(2) (Condvar::wait_timeout, park_timeout, used
# by tokio's blocking pool and libtest), which libfaketime cannot translate: a faked monotonic clock
# turns those waits into hangs. Durations need the real monotonic clock; dates need the fake one.
export FAKETIME_DONT_FAKE_MONOTONIC=1
offset_to() {
  local seconds=$(($(TZ=$zone date -d "$1" +%s) - $(date +%s)))
  if ((seconds >= 0)); then echo "+$seconds"; else echo "$seconds"; fi
}
summary=()
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for start in "${starts[@]}"; do
  # A libfaketime that does not take would make every run pass on the real clock.
  seen=$(TZ=$zone faketime -f "$(offset_to "$start")" date '+%Y-%m-%d %H:%M')
  [[ $seen == "${start:0:16}" ]] || { echo "faketime gives $seen, not $start" >&2; exit 1; }
  status=0
  # A hang fails the run (exit 124) rather than CI.
  TZ=$zone timeout 900 faketime -f "$(offset_to "$start")" "$binary" "$selection" "$@" > "$log" 2>&1 || status=$?
  result=$(grep -E '^test result:' "$log" | tail -n 1 | sed -E 's/^test result: //' || true)
  # A run that passed nothing tested nothing.
  [[ $status != 0 || $result != "ok. 0 passed;"* ]] || status=1
  if ((status != 0)); then
    failed=1
    echo "=== $selection at $start $zone failed (exit $status):" >&2
    # The failure messages; the passing tests' lines are noise here.
    grep -vE '^test .* \.\.\. ok$' "$log" >&2 || true
  fi
  summary+=("faketime $start $zone tests/suite[$selection]: ${result:-no result, exit $status}")
done
printf '%s\n' "${summary[@]}"
exit "$failed"
