#!/usr/bin/env bash
# Both families, announcement targets found by the node itself (the
# broadcast address of eth0 and ff02::1 on it): every peer hears every
# announcement twice, once per family, and keeps the IPv4 address.
if [ "${3:-}" != --inner ]; then
  exec "$2" run --hosts 3 -- "$0" "$1" "$2" --inner
fi
set -- "$1" "$2"
. "$(dirname "$0")/common.sh"

for i in 1 2 3; do
  ns=$(eval echo "\$NETLAB_NS_$i")
  ip netns exec "$ns" "$PEER" --dir "$work/d$i" --nick "h$i" \
    --bind-v4 0.0.0.0 --bind-v6 :: --interfaces eth0 --interval-ms 1000 \
    --expect-peers 2 --say "hello from h$i" --expect-messages 2 \
    --linger-ms 2500 --timeout-ms 30000 >"$work/h$i.log" 2>&1 &
  pids[$i]=$!
done
for i in 1 2 3; do waitpeer $i; done
for i in 1 2 3; do
  expect_count $i "^peer appeared" 2
  expect_count $i "^message from" 2
  # whichever family was heard first, each peer ends on its IPv4 address
  last=$(awk '/^peer appeared/ { a[$3] = $4 } /^address/ { a[$2] = $3 }
              END { for (k in a) print k, a[k] }' "$work/h$i.log" | sort)
  n4=$(grep -cE '^h[0-9] 10\.201\.1\.[0-9]:7781$' <<<"$last")
  if [ "$n4" != 2 ]; then
    echo "FAIL: h$i ended with these addresses: $last"
    fails=$((fails + 1))
  fi
done
finish
