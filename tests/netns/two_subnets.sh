#!/usr/bin/env bash
# Two subnets joined by a router; only h1 knows one host of the other
# subnet (h3, a static peer).  Peer lists make all four meet, and chat.
if [ "${3:-}" != --inner ]; then
  exec "$2" run --hosts 4 --subnets 2 -- "$0" "$1" "$2" --inner
fi
set -- "$1" "$2"
. "$(dirname "$0")/common.sh"

common=(--port 7781 --interval-ms 1000 --expect-peers 3 --expect-messages 3
  --linger-ms 1500 --timeout-ms 30000)
peer 1 "${common[@]}" --say "hi from h1" --static "$NETLAB_IP_3:7781"
for i in 2 3 4; do peer $i "${common[@]}" --say "hi from h$i"; done
for i in 1 2 3 4; do waitpeer $i; done
for i in 1 2 3 4; do
  expect_count $i "^peer appeared" 3
  expect_count $i "^message from" 3
done
# the other subnet is remote, the own one is not
expect 1 "^peer appeared h3 10\.201\.2\.3:7781 remote$"
expect 1 "^peer appeared h2 10\.201\.1\.2:7781$"
expect 4 "^peer appeared h2 10\.201\.1\.2:7781 remote$"
expect 4 "^peer appeared h3 10\.201\.2\.3:7781$"
finish
