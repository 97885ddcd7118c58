#!/usr/bin/env bash
# Three hosts on one subnet: discovery, chat both ways, presence, goodbye.
# Optional third argument: a loss percentage for the network.
if [ "${3:-}" != --inner ]; then
  loss=${3:-0}
  exec "$2" run --hosts 3 --loss "$loss" -- "$0" "$1" "$2" --inner "$loss"
fi
loss=${4:-0}
set -- "$1" "$2"
. "$(dirname "$0")/common.sh"

common=(--interval-ms 1000 --expect-peers 2 --expect-messages 2 --timeout-ms 30000)
# h1 goes away once it has met everyone, stays two intervals (the change is
# announced at once, repeated twice 200 ms apart, then with every periodic
# announcement), then stops (a goodbye, sent twice); h2 and h3 wait for the
# away and stay long enough to see the goodbye.
peer 1 "${common[@]}" --say "hello from h1" --presence away --status "at lunch" \
  --linger-ms 2000
peer 2 "${common[@]}" --say "hello from h2" --expect-presence h1=away --linger-ms 6000
peer 3 "${common[@]}" --say "hello from h3" --expect-presence h1=away --linger-ms 6000
for i in 1 2 3; do waitpeer $i; done

for i in 1 2 3; do
  expect_count $i "^peer appeared" 2
  expect_count $i "^message from" 2
  expect_count $i "^delivered" 2
done
expect 2 "^message from h1: hello from h1$"
expect 3 "^message from h2: hello from h2$"
expect 1 "^message from h3: hello from h3$"
expect 2 "^presence h1 away at lunch$"
expect 3 "^presence h1 away at lunch$"
if [ "$loss" = 0 ]; then
  expect 2 "^left h1 goodbye$"
  expect 3 "^left h1 goodbye$"
else
  # both copies of a goodbye can be lost (p = loss^2): expiry then tells
  expect 2 "^left h1 (goodbye|expired)$"
  expect 3 "^left h1 (goodbye|expired)$"
fi
finish
