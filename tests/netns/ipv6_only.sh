#!/usr/bin/env bash
# Hosts with IPv6 link-local addresses only: discovery over ff02::1, chat.
if [ "${3:-}" != --inner ]; then
  exec "$2" run --hosts 3 --ipv6-only -- "$0" "$1" "$2" --inner
fi
set -- "$1" "$2"
. "$(dirname "$0")/common.sh"

for i in 1 2 3; do
  peer $i --interval-ms 1000 --expect-peers 2 --say "v6 hello from h$i" \
    --expect-messages 2 --linger-ms 1000 --timeout-ms 30000
done
for i in 1 2 3; do waitpeer $i; done
for i in 1 2 3; do
  expect_count $i "^peer appeared h[0-9] \[fe80::[0-9a-f:]+%eth0\]:[0-9]+$" 2
  expect_count $i "^message from h[0-9]: v6 hello from h[0-9]$" 2
done
finish
