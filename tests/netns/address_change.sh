#!/usr/bin/env bash
# A host's address changes while it runs (a new DHCP lease): it notices
# within its interface poll, re-announces, and the message it sends then is
# delivered; the other host sees the new address.
if [ "${3:-}" != --inner ]; then
  exec "$2" run --hosts 2 -- "$0" "$1" "$2" --inner
fi
set -- "$1" "$2"
. "$(dirname "$0")/common.sh"

# both bind the wildcard address: an address bound explicitly would vanish
# with the change
peer 1 --bind-v4 0.0.0.0 --interval-ms 1000 --expect-peers 1 \
  --expect-messages 1 --linger-ms 1000 --timeout-ms 30000
peer 2 --bind-v4 0.0.0.0 --interval-ms 1000 --expect-peers 1 \
  --say-on-network-change "after the move" --linger-ms 500 --timeout-ms 30000
for _ in $(seq 100); do
  grep -q "^peer appeared" "$work/h1.log" && grep -q "^peer appeared" "$work/h2.log" && break
  sleep 0.1
done
# (removing the primary address first: a secondary in the same subnet would
# go with it)
ip netns exec "$NETLAB_NS_2" ip addr del "$NETLAB_IP_2/24" dev eth0
ip netns exec "$NETLAB_NS_2" ip addr add 10.201.1.102/24 broadcast 10.201.1.255 dev eth0
waitpeer 1
waitpeer 2
expect 2 "^network changed$"
expect 1 "^message from h2: after the move$"
expect 1 "^address h2 10\.201\.1\.102:[0-9]+$"
expect_count 1 "^left h2 expired" 0
finish
