#!/usr/bin/env bash
# A host's network goes away and comes back (a cable pulled, Wi-Fi lost):
# h1 writes 60 numbered texts to h2, one every 100 ms; after the tenth
# arrives h2's eth0 goes down for 4 s (h1 sees h2 expire), then up again.
# Without anything done by hand, h2 gets all 60, each once and in order,
# and h1 hears every one delivered.
if [ "${3:-}" != --inner ]; then
  exec "$2" run --hosts 2 -- "$0" "$1" "$2" --inner
fi
set -- "$1" "$2"
. "$(dirname "$0")/common.sh"

peer 1 --interval-ms 1000 --expect-peers 1 --say text --repeat 60 \
  --every-ms 100 --linger-ms 500 --timeout-ms 40000
peer 2 --interval-ms 1000 --expect-peers 1 --expect-messages 60 \
  --linger-ms 1500 --timeout-ms 40000
for _ in $(seq 200); do
  grep -q "^message from h1: text 10$" "$work/h2.log" && break
  sleep 0.05
done
ip netns exec "$NETLAB_NS_2" ip link set eth0 down
for _ in $(seq 80); do # h1 notices h2 is gone (3 intervals)
  grep -q "^left h2 expired$" "$work/h1.log" && break
  sleep 0.05
done
ip netns exec "$NETLAB_NS_2" ip link set eth0 up
waitpeer 1
waitpeer 2
expect 1 "^left h2 expired$"
expect_count 1 "^delivered " 60
expect_count 1 "^failed " 0
expect_count 2 "^message from h1: text [0-9]+$" 60
got=$(sed -nE 's/^message from h1: text ([0-9]+)$/\1/p' "$work/h2.log" | tr '\n' ' ')
want=$(seq -s ' ' 1 60)' '
if [ "$got" != "$want" ]; then
  echo "FAIL: h2 got the texts in this order: $got"
  fails=$((fails + 1))
fi
finish
