#!/usr/bin/env bash
# A peer killed with SIGKILL (no goodbye) expires at the others after three
# of its announcement intervals.
if [ "${3:-}" != --inner ]; then
  exec "$2" run --hosts 3 -- "$0" "$1" "$2" --inner
fi
set -- "$1" "$2"
. "$(dirname "$0")/common.sh"

peer 1 --interval-ms 1000 --expect-peers 2 --linger-ms 6000 --timeout-ms 20000
peer 2 --interval-ms 1000 --expect-peers 2 --linger-ms 6000 --timeout-ms 20000
peer 3 --interval-ms 1000 --expect-peers 2 --linger-ms 60000 --timeout-ms 60000
for _ in $(seq 100); do
  grep -q "expectations met" "$work/h1.log" && grep -q "expectations met" "$work/h2.log" &&
    grep -q "expectations met" "$work/h3.log" && break
  sleep 0.1
done
kill -9 "${pids[3]}"
wait "${pids[3]}" 2>/dev/null
waitpeer 1
waitpeer 2
expect 1 "^left h3 expired$"
expect 2 "^left h3 expired$"
expect_count 1 "^left h3 goodbye$" 0
finish
