#!/usr/bin/env bash
# daemon_storm.sh LANCHATD LANCHAT CONTROL_STORM: lanchatd's control socket
# under abuse from its own user (and, as root, from another uid): 10 MiB
# lines, a line written a byte at a time, clients that never read, a
# thousand connections held open, unfinished lines that stall.  Meanwhile
# and afterwards the owner's requests are answered promptly, a message to a
# second daemon arrives, memory stays bounded and every misbehaving client
# is counted (lanchat stats).  A second daemon with only 128 file
# descriptors takes a connection storm too.  A client that shut down its
# writing side gets all its replies, through an event and through the
# stop; the stop answers every request already read, and a client that
# never reads does not keep the daemon from exiting.  Loopback only: every
# daemon binds 127.0.0.1, uses interface lo and broadcasts to
# 127.255.255.255 on a discovery port nobody else uses.
set -euo pipefail

LANCHATD=$1
LANCHAT=$2
STORM=$3
work=$(mktemp -d)
jobs_started=()

cleanup() {
  local n pid
  for pid in "${jobs_started[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for n in alice bob; do
    if [ -f "$work/$n/lanchatd.pid" ]; then
      pid=$(cat "$work/$n/lanchatd.pid" 2>/dev/null || true)
      if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
    fi
  done
  sleep 0.3
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

fail() {
  printf 'FAIL: %s\n' "$*" >&2
  for f in "$work"/*.out "$work"/alice/lanchatd.log "$work"/bob/lanchatd.log; do
    [ -f "$f" ] && { printf -- '--- %s\n' "${f#"$work"/}" >&2; tail -15 "$f" >&2; }
  done
  exit 1
}

# shellcheck source-path=SCRIPTDIR source=daemon_lib.sh
. "$(dirname "$0")/daemon_lib.sh"

spawn() { # spawn NAME CMD...: runs CMD in the background, output in NAME.out
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>&1 &
  jobs_started+=($!)
  eval "job_$name=$!"
}

finish() { # finish NAME: waits for job NAME, fails if it failed
  local pid rc=0
  eval "pid=\$job_$1"
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "$1 exited $rc: $(cat "$work/$1.out")"
}

field() { # field NAME KEY: KEY=value from NAME.out
  sed -n "s/.*\\b$2=\\([-0-9.]*\\).*/\\1/p" "$work/$1.out" | head -1
}

stat_of() { # stat_of NAME KEY: control.KEY from lanchat stats
  lc "$1" --json stats | python3 -c "import json,sys; print(json.load(sys.stdin)['control']['$2'])"
}

kib() { # kib PID FIELD: VmRSS or VmHWM in KiB
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

cpu_ticks() { # cpu_ticks PID: user + system time, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

ms_now() { date +%s%3N; }

port=$(free_port)
common=(--bind 127.0.0.1 --interfaces lo --broadcast 127.255.255.255
  --discovery-port "$port" --announce-interval 1 --log-level notice)

for n in alice bob zed; do
  lc "$n" init --nick "$n" >/dev/null || fail "init $n"
done
# zed never runs: messages to it stay in alice's history (and outbox)
zed=$(lc zed --json whoami | python3 -c 'import json,sys; print(json.load(sys.stdin)["peer"]["id"])')

# alice: a soft limit of 256 descriptors, raised at startup to the hard one
prlimit --nofile=256:4096 "$LANCHATD" --data-dir "$work/alice" "${common[@]}" \
  2>>"$work/alice.out" ||
  fail "start alice"
# bob: 128 descriptors and no more: fewer control clients
prlimit --nofile=128:128 "$LANCHATD" --data-dir "$work/bob" "${common[@]}" \
  2>>"$work/bob.out" ||
  fail "start bob"
apid=$(cat "$work/alice/lanchatd.pid")
bpid=$(cat "$work/bob/lanchatd.pid")
sock=$work/alice/control.sock
peers_online() { [ "$(lc "$1" --json peers | grep -c '"online":true')" -ge 1 ]; }
wait_for "alice and bob to meet" peers_online alice
wait_for "bob and alice to meet" peers_online bob

[ "$(stat -c %a "$sock")" = 600 ] || fail "control socket mode $(stat -c %a "$sock")"
soft=$(awk '/Max open files/ { print $4 }' "/proc/$apid/limits")
[ "$soft" = 4096 ] || fail "alice's soft descriptor limit is $soft, not raised to 4096"
daemon_log() { cat "$work/$1.out" "$work/$1/lanchatd.log" 2>/dev/null || true; }
bob_max=$(daemon_log bob | sed -n 's/.*at most \([0-9]*\) clients at once.*/\1/p' | head -1)
[ -n "$bob_max" ] || fail "bob does not say he takes fewer clients"
echo "bob (128 descriptors) takes at most $bob_max clients"

# a history to page through: 12 messages of 700,000 bytes (a page of them
# is an 8.4 MiB reply)
"$STORM" fill "$sock" "$zed" 12 700000 >"$work/fill.out" || fail "fill: $(cat "$work/fill.out")"

asan=0
grep -q libasan "/proc/$apid/maps" && asan=1
{ echo 5 >"/proc/$apid/clear_refs"; } 2>/dev/null || true # resets VmHWM
rss0=$(kib "$apid" VmRSS)
hwm0=$(kib "$apid" VmHWM)

# ---- the storm ----
t_storm=$(ms_now)
# a thousand connections, held open (and never a request)
spawn hold "$STORM" hold "$sock" 1000 18 0 "$work/hold.ready"
wait_for "1000 connections" test -e "$work/hold.ready"
# the owner's own command gets through at once
t0=$(ms_now)
lc alice whoami >/dev/null || fail "whoami with 1000 connections held"
t_cli=$(($(ms_now) - t0))
# the owner's requests, timed, while the storm goes on
spawn ping "$STORM" ping "$sock" 30 100
# a 10 MiB line, then a request on the same connection; 10 MiB without a
# newline, then close; a request written a byte at a time
spawn big "$STORM" big "$sock" 10485760 newline
spawn cut "$STORM" big "$sock" 10485760 close
spawn slow "$STORM" big "$sock" 2000 slow
# clients that subscribe, ask for 20 history pages of 8.4 MiB, never read
page="{\"id\":1,\"cmd\":\"history\",\"with\":\"$zed\",\"limit\":12}"
for i in 1 2 3; do spawn "noread$i" "$STORM" noread "$sock" 1 20 "$page" 20; done
# a subscriber that never reads, flooded with events (30 x 700 kB sent)
spawn noreadev "$STORM" noread "$sock" 1 0 "" 20
sleep 0.2
spawn flood "$STORM" fill "$sock" "$zed" 30 700000
finish big
finish cut
finish flood
# 40 clients write 4 MiB of a line each and stall: 8 of them fill the
# 64 MiB for long lines, the others get too_large; all are dropped 10 s on
spawn stall "$STORM" hold "$sock" 40 16 4194304 ""
# meanwhile, the owner: timed requests again, and a message to bob
spawn ping2 "$STORM" ping "$sock" 30 100
lc alice send bob "sent during the storm" >/dev/null || fail "send during the storm"
wait_for "bob receives the message sent during the storm" \
  sh -c "'$LANCHAT' --data-dir '$work/bob' history alice | grep -q 'sent during the storm'"
# bob, with 128 descriptors, takes 300 connections at once
spawn bobhold "$STORM" hold "$work/bob/control.sock" 300 3 0 ""
sleep 0.5
lc bob whoami >/dev/null || fail "bob's whoami with 300 connections held"
finish bobhold
finish slow
finish ping
finish ping2
for i in 1 2 3; do finish "noread$i"; done
finish noreadev
hwm_storm=$(kib "$apid" VmHWM)
# all but the stalled lines are over: the daemon idles with 200-odd
# connections open
c0=$(cpu_ticks "$apid")
sleep 1
c1=$(cpu_ticks "$apid")
finish stall
finish hold
t_storm=$(($(ms_now) - t_storm))
kill -0 "$apid" 2>/dev/null || fail "alice died"
kill -0 "$bpid" 2>/dev/null || fail "bob died"

# ---- what happened ----
cat "$work"/{fill,hold,stall,big,cut,slow,noread1,noread2,noread3,noreadev,ping,ping2,bobhold}.out
[ "$(field hold connected)" -eq 1000 ] || fail "not all 1000 connected"
[ "$(field hold closed)" -ge 700 ] || fail "the held connections were not closed to make room"
[ "$(field stall closed)" -eq 40 ] || fail "stalled clients still connected"
first=$(field stall first_close_ms)
last=$(field stall last_close_ms)
if [ "${first%.*}" -lt 8000 ] || [ "${last%.*}" -gt 13000 ]; then
  fail "stalled clients dropped after $first..$last ms, not about 10 s"
fi
[ "$(field stall answered)" -ge 30 ] || fail "no too_large for the long lines beyond 64 MiB"
ping_max=$(field ping max_ms)
ping2_max=$(field ping2 max_ms)
if [ "${ping_max%.*}" -ge 2000 ] || [ "${ping2_max%.*}" -ge 2000 ]; then
  fail "an owner's request waited $ping_max / $ping2_max ms"
fi
[ "$(field bobhold closed)" -ge $((300 - bob_max)) ] || fail "bob did not make room"
idle=$((c1 - c0))
[ "$idle" -le 20 ] || fail "alice used $idle ticks of CPU in 1 s while idle (spinning?)"

lc alice --json stats >"$work/stats.json" || fail "stats after the storm"
python3 - "$work/stats.json" <<'EOF' || fail "counters: $(cat "$work/stats.json")"
import json, sys
c = json.load(open(sys.argv[1]))["control"]
print("control counters:", {k: v for k, v in c.items() if k != "events"})
assert c["clients_evicted"] >= 1000 - 256, c          # room for newer ones
assert c["clients_dropped"] >= 4, c                   # the four non-readers
assert c["clients_timed_out"] >= 40, c                # the stalled lines
assert c["oversized_lines"] >= 2 + 30, c              # 10 MiB lines, no room
assert c["clients"] <= 256 and c["subscribers"] == 0, c
EOF

rss1=$(kib "$apid" VmRSS)
echo "alice: RSS ${rss0} KiB before, peak ${hwm_storm} KiB in the storm, ${rss1} KiB after;" \
  "whoami with 1000 held: ${t_cli} ms; pings max ${ping_max} ms (then ${ping2_max} ms); storm ${t_storm} ms;" \
  "CPU while idle: ${idle} ticks/s"
# The bound: lines over 256 KiB share 64 MiB (here 8 x 4 MiB lines in
# 8 MiB buffers); each of the four non-readers holds at most 16 MiB and one
# 8.4 MiB page queued, and building a page takes about twice its size
# while it is built: 64 + 4 x 25 + 20 = 184 MiB, 16 MiB more for the heap's
# slack.  Without the limits the stalled lines alone would hold 160 MiB
# and the 1000 connections 1000 buffers.
if [ "$asan" -eq 1 ]; then
  echo "memory bound not checked: built with AddressSanitizer"
else
  [ $((hwm_storm - hwm0)) -le $((200 * 1024)) ] ||
    fail "alice grew by $(((hwm_storm - hwm0) / 1024)) MiB during the storm"
  # after: the 30 x 700 kB sent to zed wait in the outbox (21 MiB), and
  # the heap keeps what it freed in pieces (more with meson's
  # MALLOC_PERTURB_, which writes over freed memory): 35..60 MiB seen
  [ $((rss1 - rss0)) -le $((96 * 1024)) ] ||
    fail "alice kept $(((rss1 - rss0) / 1024)) MiB after the storm"
fi

# ---- another user ----
if [ "$(id -u)" -eq 0 ]; then
  mkdir "$work/bin"
  cp "$STORM" "$work/bin/control_storm"
  chmod 755 "$work/bin" "$work/bin/control_storm"
  chmod 711 "$work" "$work/alice"
  as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
  refused0=$(stat_of alice clients_refused)
  out=$(as_nobody "$work/bin/control_storm" who "$sock")
  [[ $out == denied* ]] || fail "another uid, socket 0600: $out"
  chmod 666 "$sock" # as if someone loosened it: the credentials still say no
  out=$(as_nobody "$work/bin/control_storm" who "$sock")
  chmod 600 "$sock"
  chmod 700 "$work/alice"
  [ "$out" = refused ] || fail "another uid, socket 0666: $out"
  [ "$(stat_of alice clients_refused)" -eq $((refused0 + 1)) ] || fail "refusal not counted"
  daemon_log alice | grep -q 'refused a connection (not our user)' || fail "refusal not logged"
  echo "another uid: denied by the socket's mode, refused by its credentials"
else
  echo "SKIP: the other-uid check needs root (setpriv to nobody)"
fi

# ---- the daemons still serve, and stop cleanly ----
"$STORM" ping "$sock" 3 0 >/dev/null || fail "alice after the storm"
# a subscriber sends 300 requests and shuts down its writing side, reads
# 1.5 s later; meanwhile a message sent from another connection is an
# event for it: the replies (500 kB, more than the socket buffer) must
# still all arrive
sent_note="{\"id\":\"t\",\"cmd\":\"send\",\"to\":\"$zed\",\"text\":\"while one finishes\"}"
"$STORM" halfclose "$sock" 1 300 1500 "$sent_note" >"$work/halfclose.out" ||
  fail "replies lost after an event: $(cat "$work/halfclose.out")"
lc alice send bob "after the storm" >/dev/null || fail "send after the storm"
wait_for "bob receives the message sent after the storm" \
  sh -c "'$LANCHAT' --data-dir '$work/bob' history alice | grep -q 'after the storm'"

# alice stops with, open: a client that never reads an 8.4 MiB reply, one
# that shut down its writing side and reads 1 s after the stop, and
# the one that sends stop followed by 100 requests in one write
spawn noreadstop "$STORM" noread "$sock" 0 1 "$page" 12
spawn halfstop "$STORM" halfclose "$sock" 0 300 1500 ""
sleep 0.5
t_stop=$(ms_now)
"$STORM" stopflood "$sock" 100 >"$work/stopflood.out" ||
  fail "requests unanswered at the stop: $(cat "$work/stopflood.out")"
finish halfstop
finish noreadstop
# (an exited daemon may stay a zombie for a while: nobody waits for it)
running() { [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || echo Z)" != Z ]; }
for ((i = 0; i < 100; i++)); do
  running "$apid" || break
  sleep 0.1
done
t_stop=$(($(ms_now) - t_stop))
running "$apid" && fail "alice still running ${t_stop} ms after stop"
cat "$work"/{halfclose,halfstop,stopflood,noreadstop}.out
dropped=$(field noreadstop dropped_after_ms)
[ "${dropped%.*}" -ge 3000 ] || fail "a client that does not read was closed ${dropped} ms after it wrote, before 3 s of grace"
[ "$t_stop" -le 6000 ] || fail "alice took ${t_stop} ms to exit"
echo "alice exited ${t_stop} ms after stop"
lc bob stop >/dev/null || fail "stop bob"
echo "daemon_storm: ok"
