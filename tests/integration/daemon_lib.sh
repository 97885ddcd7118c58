# shellcheck shell=bash disable=SC2154 # LANCHAT and work: the sourcing script's
# daemon_lib.sh: what the daemon test scripts (daemon*.sh) share.  Sourced
# after the script has set LANCHAT and work and defined fail (wait_for
# calls it).  LC_WAIT_S: how long wait_for waits (default 20 s).

lc() { # lc NAME ARGS...: lanchat as NAME
  local n=$1
  shift
  "$LANCHAT" --data-dir "$work/$n" "$@"
}

wait_for() { # wait_for WHAT CMD...: up to LC_WAIT_S seconds
  local what=$1 i
  shift
  for ((i = 0; i < ${LC_WAIT_S:-20} * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "timed out waiting for $what"
}

free_port() { # a UDP port free on 127.0.0.1 now
  python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
