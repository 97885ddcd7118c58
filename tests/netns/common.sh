# common.sh: shared by the tests/netns scripts.  Each script runs twice:
# first from meson (args: lanchat-peer's path, netlab's path), which re-runs
# it under `netlab run` with --inner; then inside the test network.
set -u

PEER=$1
NETLAB=$2
shift 2

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root to create network namespaces"
  exit 77
fi

work=$(mktemp -d /tmp/lc-netns-XXXXXX)
trap 'rm -rf "$work"' EXIT
pids=()

# peer I ARGS...: starts lanchat-peer as host I, logging to $work/hI.log
peer() {
  local i=$1
  shift
  local ns ip bcast
  ns=$(eval echo "\$NETLAB_NS_$i")
  ip=$(eval echo "\$NETLAB_IP_$i")
  bcast=$(eval echo "\$NETLAB_BCAST_$i")
  local net=(--bind-v6 "" --interfaces eth0)
  if [ -n "$ip" ]; then
    net+=(--bind-v4 "$ip" --broadcast "$bcast")
  else
    net=(--bind-v4 "" --bind-v6 "::" --interfaces eth0)
  fi
  ip netns exec "$ns" "$PEER" --dir "$work/d$i" --nick "h$i" \
    "${net[@]}" "$@" >"$work/h$i.log" 2>&1 &
  pids[$i]=$!
}

# waitpeer I: waits for host I's peer and fails the test if it failed
fails=0
waitpeer() {
  if ! wait "${pids[$1]}"; then
    echo "FAIL: h$1 exited non-zero"
    fails=$((fails + 1))
  fi
}

# expect I PATTERN: host I's log has a line matching PATTERN (grep -E)
expect() {
  if ! grep -qE "$2" "$work/h$1.log"; then
    echo "FAIL: h$1 never printed /$2/"
    fails=$((fails + 1))
  fi
}

# expect_count I PATTERN N: exactly N matching lines
expect_count() {
  local n
  n=$(grep -cE "$2" "$work/h$1.log")
  if [ "$n" != "$3" ]; then
    echo "FAIL: h$1 printed /$2/ $n times, expected $3"
    fails=$((fails + 1))
  fi
}

finish() {
  for f in "$work"/h*.log; do
    echo "---- $(basename "$f")"
    cat "$f"
  done
  if [ "$fails" != 0 ]; then
    echo "$fails check(s) failed"
    exit 1
  fi
  echo "all checks passed"
  exit 0
}
