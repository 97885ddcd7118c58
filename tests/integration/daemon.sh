#!/usr/bin/env bash
# daemon.sh LANCHATD LANCHAT: three daemons (alice, bob, carol) on loopback,
# driven only through the lanchat command line and the control socket.
# They find each other, exchange messages; bob is stopped, receives while
# away, comes back (in the background this time) and every history is
# complete, each message exactly once.  Bad control requests get clear
# errors while the daemon keeps serving; the CLI's errors have their exit
# statuses.  Loopback only: every daemon binds 127.0.0.1, uses interface
# lo and broadcasts to 127.255.255.255 on a discovery port nobody else
# uses.
set -euo pipefail

LANCHATD=$1
LANCHAT=$2
work=$(mktemp -d)
declare -A fg_pid=()

cleanup() {
  local n pid
  for n in alice bob carol dave mallory; do
    if [ -f "$work/$n/lanchatd.pid" ]; then
      pid=$(cat "$work/$n/lanchatd.pid" 2>/dev/null || true)
      [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  sleep 0.3
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  printf 'FAIL: %s\n' "$*" >&2
  for n in alice bob carol dave mallory; do
    [ -f "$work/$n.log" ] && { printf -- '--- %s.log\n' "$n" >&2; tail -20 "$work/$n.log" >&2; }
    [ -f "$work/$n/lanchatd.log" ] && { printf -- '--- %s/lanchatd.log\n' "$n" >&2; tail -20 "$work/$n/lanchatd.log" >&2; }
  done
  exit 1
}

# shellcheck source-path=SCRIPTDIR source=daemon_lib.sh
. "$(dirname "$0")/daemon_lib.sh"

port=$(free_port)
common=(--bind 127.0.0.1 --interfaces lo --broadcast 127.255.255.255
  --discovery-port "$port" --announce-interval 1 --log-level notice)

start_fg() { # in the foreground, as a child of this script (exit status seen)
  local n=$1
  "$LANCHATD" --data-dir "$work/$n" "${common[@]}" --foreground \
    >>"$work/$n.log" 2>&1 &
  fg_pid[$n]=$!
  wait_for "$n's control socket" test -S "$work/$n/control.sock"
}

peers_online() { # peers_online NAME COUNT
  [ "$(lc "$1" --json peers | grep -c '"online":true')" -eq "$2" ]
}

# ---- no identity, no daemon ----
rc=0
lc alice peers 2>"$work/err" || rc=$?
[ "$rc" -eq 4 ] || fail "no identity: exit $rc, expected 4"
grep -q 'lanchat --data-dir .* init --nick NAME' "$work/err" || fail "no identity: no hint"

for n in alice bob carol; do
  lc "$n" init --nick "$n" >/dev/null || fail "init $n"
done
rc=0
lc alice init --nick again 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'already holds an identity' "$work/err" || fail "second init: exit $rc"

rc=0
lc alice peers 2>"$work/err" || rc=$?
[ "$rc" -eq 3 ] || fail "no daemon: exit $rc, expected 3"
grep -q "lanchatd --data-dir $work/alice" "$work/err" || fail "no daemon: no hint"
lc alice whoami | grep -q 'lanchatd is not running' || fail "whoami without daemon"

# ---- three daemons find each other ----
for n in alice bob carol; do start_fg "$n"; done
rc=0
"$LANCHATD" --data-dir "$work/alice" "${common[@]}" --foreground 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "another lanchatd (pid ${fg_pid[alice]})" "$work/err" ||
  fail "second daemon on one folder: exit $rc: $(cat "$work/err")"

for n in alice bob carol; do wait_for "$n to see 2 peers" peers_online "$n" 2; done
[ "$(stat -c %a "$work/alice/control.sock")" = 600 ] || fail "socket mode"
lc alice --json whoami | grep -q '"nick":"alice"' || fail "whoami alice"

# ---- messages ----
sent=0
for from in alice bob carol; do
  for to in alice bob carol; do
    [ "$from" = "$to" ] && continue
    for k in 1 2; do
      id=$(lc "$from" send "$to" "from $from to $to number $k")
      [[ $id =~ ^[0-9a-f]{32}$ ]] || fail "send printed '$id'"
      sent=$((sent + 1))
    done
  done
done
echo "multi-line text" | lc alice send carol - >/dev/null
bob_id=$(lc bob --json whoami | python3 -c 'import json,sys; print(json.load(sys.stdin)["peer"]["id"])')
lc alice send "${bob_id:0:10}" "to bob by id prefix" >/dev/null

delivered() { # delivered NAME PEER COUNT: COUNT outgoing, all delivered
  local out
  out=$(lc "$1" --json history "$2" --limit 1000)
  [ "$(grep -c '"outgoing":true' <<<"$out")" -eq "$3" ] &&
    ! grep '"outgoing":true' <<<"$out" | grep -vq '"state":"delivered"'
}
wait_for "alice's messages to bob" delivered alice bob 3
wait_for "alice's messages to carol" delivered alice carol 3
wait_for "bob's messages" delivered bob carol 2

# ---- bob stops; alice and carol write to him while he is away ----
lc bob stop >/dev/null || fail "lanchat stop"
wait "${fg_pid[bob]}" || fail "bob's daemon exited with $?"
[ ! -e "$work/bob/control.sock" ] || fail "socket left behind"
wait_for "bob to be gone" peers_online alice 1
lc alice --json peers --all | grep '"nick":"bob"' | grep -q '"presence":"offline"' ||
  fail "bob not listed offline"
for k in 1 2 3; do
  lc alice send bob "while away $k" >/dev/null
  lc carol send bob "carol while away $k" >/dev/null
done
lc alice --json history bob --limit 3 | grep -q '"state":"queued"' || fail "not queued"

# bob comes back, in the background (lanchatd returns once it serves)
"$LANCHATD" --data-dir "$work/bob" "${common[@]}" || fail "background start"
lc bob whoami >/dev/null || fail "whoami after background start"
wait_for "alice's messages to reach bob" delivered alice bob 6
wait_for "carol's messages to reach bob" delivered carol bob 5

# ---- every history is complete, each message once, in both copies ----
python3 - "$LANCHAT" "$work" <<'EOF' || fail "histories"
import json, subprocess, sys
lanchat, work = sys.argv[1], sys.argv[2]
names = ["alice", "bob", "carol"]
def hist(me, peer):
    out = subprocess.run([lanchat, "--data-dir", f"{work}/{me}", "--json",
                          "history", peer, "--limit", "1000"],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines()]
expect = {("alice", "bob"): 6, ("alice", "carol"): 3, ("bob", "alice"): 2,
          ("bob", "carol"): 2, ("carol", "alice"): 2, ("carol", "bob"): 5}
for a in names:
    for b in names:
        if a == b:
            continue
        mine, theirs = hist(a, b), hist(b, a)
        ids = [m["id"] for m in mine]
        assert len(ids) == len(set(ids)), f"{a}/{b}: duplicates"
        assert sorted(ids) == sorted(m["id"] for m in theirs), \
            f"{a}/{b}: the two copies differ"
        out = [m for m in mine if m["outgoing"]]
        assert len(out) == expect[(a, b)], f"{a}->{b}: {len(out)} sent"
        for m in mine:
            for f in ("id", "from", "to", "sent_at", "kind", "text", "state"):
                assert f in m, f"{a}/{b}: message without {f}"
            assert m["sent_at"].endswith("Z"), m["sent_at"]
        # oldest first
        seqs = [m["seq"] for m in mine]
        assert seqs == sorted(seqs), f"{a}/{b}: not oldest first"
print("histories complete")
EOF

# ---- unread, read, search, export ----
lc bob --json unread | grep -q '"total":' || fail "unread"
[ "$(lc bob --json unread | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')" -ge 7 ] ||
  fail "bob's unread count"
lc bob read alice | grep -q 'marked read' || fail "read"
wait_for "read receipts at alice" sh -c "'$LANCHAT' --data-dir '$work/alice' --json history bob | grep -q '\"state\":\"read\"'"
lc bob --json search "away" | grep -q 'carol while away 2' || fail "search"
[ "$(lc bob --json search away --with carol | grep -c '"text"')" -eq 3 ] || fail "search --with"
lc carol export alice --format text | grep -q 'from alice to carol number 2' || fail "export text"
lc carol export alice --output "$work/carol-alice.jsonl" >/dev/null
[ "$(wc -l <"$work/carol-alice.jsonl")" -eq 5 ] || fail "export file"

# ---- lanchat chat without a terminal: lines from stdin are sent ----
printf 'first line from chat\nsecond line from chat\n' | lc carol chat bob >"$work/chat.out" ||
  fail "chat exited with $?"
grep -q 'chat with bob' "$work/chat.out" || fail "chat header: $(cat "$work/chat.out")"
grep -q 'carol while away 3' "$work/chat.out" || fail "chat shows no history"
wait_for "chat lines at bob" sh -c "'$LANCHAT' --data-dir '$work/bob' --json history carol | grep -q 'second line from chat'"

# ---- unknown and ambiguous peers ----
rc=0
lc alice send zed "hello" 2>"$work/err" || rc=$?
[ "$rc" -eq 5 ] && grep -q 'candidates' "$work/err" && grep -q carol "$work/err" ||
  fail "unknown peer: exit $rc: $(cat "$work/err")"

# ---- bad control requests: clear errors, the daemon keeps serving ----
python3 - "$work/alice/control.sock" <<'EOF' || fail "bad requests"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rb")
def ask(raw):
    s.sendall(raw if isinstance(raw, bytes) else raw.encode())
    return json.loads(f.readline())
cases = [
    ("not json at all\n", "parse_error"),
    ('{"id":1,"cmd":\n', "parse_error"),
    ("[1,2,3]\n", "invalid_request"),
    ('{"id":2}\n', "invalid_request"),
    ('{"id":3,"cmd":42}\n', "invalid_request"),
    ('{"id":{"x":1},"cmd":"peers"}\n', "invalid_request"),
    ('{"id":4,"cmd":"launch"}\n', "unknown_command"),
    ('{"id":5,"cmd":"send","to":"bob"}\n', "bad_argument"),
    ('{"id":6,"cmd":"send","to":7,"text":"x"}\n', "bad_argument"),
    ('{"id":7,"cmd":"history","with":"bob","limit":"ten"}\n', "bad_argument"),
    ('{"id":8,"cmd":"history","with":"bob","limit":0}\n', "bad_argument"),
    ('{"id":9,"cmd":"status","presence":"asleep"}\n', "bad_argument"),
    ('{"id":10,"cmd":"get","msg":"xyz"}\n', "bad_argument"),
    ('{"id":11,"cmd":"get","msg":"00000000000000000000000000000000"}\n', "not_found"),
    ('{"id":12,"cmd":"subscribe","events":["nonsense"]}\n', "bad_argument"),
    ('{"id":13,"cmd":"send","to":"bob","text":"\\ud800"}\n', "parse_error"),
    (b'{"id":14,"cmd":"send","to":"bob","text":"\xff\xfe"}\n', "parse_error"),
    ('{"id":15,"cmd":"export","with":"bob","path":"relative"}\n', "bad_argument"),
    ('{"id":16,"cmd":"edit","msg":"00000000000000000000000000000000","text":"x"}\n', "not_found"),
    ('{"id":17,"cmd":"edit","msg":"00000000000000000000000000000000","text":""}\n', "bad_argument"),
    ('{"id":18,"cmd":"retract","msg":"00000000000000000000000000000000"}\n', "not_found"),
]
for raw, code in cases:
    r = ask(raw)
    assert r["ok"] is False, (raw, r)
    assert r["error"]["code"] == code, (raw, r)
    assert r["error"]["message"], (raw, r)
# paging: "more" says whether older messages remain
r = ask('{"id":30,"cmd":"history","with":"bob","limit":1}\n')
assert r["ok"] and len(r["result"]["messages"]) == 1 and r["result"]["more"] is True, r
r = ask('{"id":31,"cmd":"history","with":"bob","limit":1000}\n')
n = len(r["result"]["messages"])
assert r["result"]["more"] is False and n >= 6, r
r = ask('{"id":32,"cmd":"history","with":"bob","limit":%d}\n' % n)
assert len(r["result"]["messages"]) == n and r["result"]["more"] is False, r
# a null id is no id
r = ask('{"id":null,"cmd":"whoami"}\n')
assert r["ok"] is True and r["id"] is None, r
# an oversized line (9 MiB) is refused and skipped, then the same
# connection still works
r = ask(b'{"id":20,"cmd":"send","to":"bob","text":"' + b"a" * (9 << 20) + b'"}\n')
assert r["error"]["code"] == "too_large", r
r = ask('{"id":"after","cmd":"whoami"}\n')
assert r["ok"] is True and r["id"] == "after", r
# a blank line is not a request; an id is echoed as given
s.sendall(b"\n   \n")
r = ask('{"id":"x-1","cmd":"stats"}\n')
assert r["id"] == "x-1" and r["result"]["control"]["bad_requests"] >= len(cases) + 1, r
print("bad requests answered:", len(cases) + 1)
EOF
lc alice peers >/dev/null || fail "alice stopped serving after bad requests"

# ---- a subscriber that never reads does not block the daemon ----
python3 - "$work/alice/control.sock" "$LANCHAT" "$work" <<'EOF' || fail "slow subscriber"
import socket, subprocess, sys, time
sock, lanchat, work = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sock)
s.sendall(b'{"id":1,"cmd":"subscribe"}\n')
# it never reads; alice keeps sending (each send is an event for it)
t0 = time.time()
big = "x" * 60000
for i in range(40):
    subprocess.run([lanchat, "--data-dir", f"{work}/alice", "send", "carol",
                    big], check=True, capture_output=True)
assert time.time() - t0 < 60, "sends slowed down by a stuck subscriber"
s.close()
EOF

# ---- contacts: requests, answers, removal notices, blocking, key change ----
lc alice --json watch >"$work/alice-events" 2>&1 &
watch_pid=$!
lc bob --json watch >"$work/bob-events" 2>&1 &
watch_bob=$!
sleep 0.3
lc alice friend add bob "lunch buddy?" | grep -q 'request sent' || fail "friend add"
wait_for "bob sees alice's request" grep -q '"change":"requested"' "$work/bob-events"
grep '"change":"requested"' "$work/bob-events" | grep -q '"note":"lunch buddy?"' || fail "request note"
lc bob friend list | grep alice | grep -q 'asks to be a friend' || fail "bob's list"
lc bob friend accept alice >/dev/null || fail "friend accept"
wait_for "alice learns bob accepted" grep -q '"change":"accepted"' "$work/alice-events"
[ "$(lc alice --json friend list | grep -c '"state":"friend"')" -eq 1 ] || fail "alice's list"
rc=0
lc alice friend add bob 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'friends already' "$work/err" || fail "second friend add: exit $rc"
rc=0
lc carol friend accept alice 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'no request' "$work/err" || fail "accept without a request: exit $rc"
# bob removes alice: she is told
lc bob friend remove alice >/dev/null || fail "friend remove"
wait_for "alice learns she was removed" grep -q '"change":"removed"' "$work/alice-events"
[ "$(lc alice --json friend list | grep -c '"state":"friend"')" -eq 0 ] || fail "still friends"
# carol is blocked by alice: her messages are dropped, and counted
lc alice block carol | grep -q blocked || fail "block"
before=$(lc alice --json history carol --limit 1000 | grep -c '"text"')
lc carol send alice "are you ignoring me?" >/dev/null
wait_for "the blocked message acknowledged" delivered carol alice 3
sleep 0.3
[ "$(lc alice --json history carol --limit 1000 | grep -c '"text"')" -eq "$before" ] ||
  fail "a blocked peer's message was stored"
lc alice stats | grep -q '"blocked_dropped":[1-9]' || fail "blocked_dropped not counted"
lc alice unblock carol >/dev/null
# contacts only: carol is no friend of alice's
lc alice policy contacts | grep -q contacts || fail "policy"
lc carol send alice "and now?" >/dev/null
wait_for "carol's message acknowledged" delivered carol alice 4
sleep 0.3
lc alice stats | grep -q '"policy_dropped":1' || fail "policy_dropped not counted"
lc alice policy anyone >/dev/null
# a new identity calls itself bob: alice is warned, and nothing she sends
# to it goes until she trusts it
lc mallory init --nick bob >/dev/null
"$LANCHATD" --data-dir "$work/mallory" "${common[@]}" || fail "start mallory"
wait_for "alice is warned of a new key for bob" grep -q '"change":"key_changed"' "$work/alice-events"
mallory_id=$(lc mallory --json whoami | python3 -c 'import json,sys; print(json.load(sys.stdin)["peer"]["id"])')
grep '"change":"key_changed"' "$work/alice-events" | grep -q "\"previous_key\":\"$bob_id\"" ||
  fail "the warning does not name bob's key"
lc alice --json friend list | grep "$mallory_id" | grep -q '"held":true' || fail "not held"
alice_id=$(lc alice --json whoami | python3 -c 'import json,sys; print(json.load(sys.stdin)["peer"]["id"])')
lc alice send "$mallory_id" "are you really bob?" >/dev/null
sleep 1
if lc mallory --json history "$alice_id" | grep -q 'really bob'; then
  fail "a message went to a held key"
fi
lc alice --json history "$mallory_id" | grep -q '"state":"queued"' || fail "not queued"
lc alice trust "$mallory_id" | grep -q trusted || fail "trust"
wait_for "the held message delivered" sh -c "'$LANCHAT' --data-dir '$work/mallory' --json history '$alice_id' | grep -q 'really bob'"
lc mallory stop >/dev/null
kill "$watch_pid" "$watch_bob" 2>/dev/null || true

# ---- a three-member group ----
lc alice group create lunch bob carol | grep -q '3 members' || fail "group create"
wait_for "bob knows the group" sh -c "'$LANCHAT' --data-dir '$work/bob' group list | grep -q '#lunch'"
wait_for "carol knows the group" sh -c "'$LANCHAT' --data-dir '$work/carol' group list | grep -q '#lunch'"
lc alice send lunch "noon at the usual place?" >/dev/null
lc carol send lunch "yes" >/dev/null
group_has() { # group_has NAME COUNT: NAME's history of lunch has COUNT messages
  [ "$(lc "$1" --json history lunch | grep -c '"group":')" -eq "$2" ]
}
for n in alice bob carol; do wait_for "$n has both group messages" group_has "$n" 2; done
# every member shows the same history, in the same order
a_hist=$(lc alice --json history lunch | python3 -c 'import json,sys; print([json.loads(l)["id"] for l in sys.stdin])')
for n in bob carol; do
  [ "$(lc "$n" --json history lunch | python3 -c 'import json,sys; print([json.loads(l)["id"] for l in sys.stdin])')" = "$a_hist" ] ||
    fail "$n's group history differs from alice's"
done
lc bob history lunch | grep -q 'carol: yes' || fail "group message author"
lc bob read lunch | grep -q '2 marked read' || fail "group read"
# bob is away while alice writes; he catches up when back
lc bob stop >/dev/null
lc alice send lunch "see you there" >/dev/null
"$LANCHATD" --data-dir "$work/bob" "${common[@]}" || fail "bob back"
wait_for "bob catches up on the group" group_has bob 3
# only owners remove others; a rename reaches everyone; carol leaves
rc=0
lc bob group remove lunch alice 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'only owners' "$work/err" || fail "a non-owner removed someone: exit $rc"
lc bob group rename lunch "lunch crew" >/dev/null || fail "group rename"
wait_for "alice sees the new name" sh -c "'$LANCHAT' --data-dir '$work/alice' group list | grep -q '#lunch crew'"
lc carol group leave "lunch crew" | grep -q 'not a member' || fail "group leave"
wait_for "alice sees carol gone" sh -c "'$LANCHAT' --data-dir '$work/alice' group members 'lunch crew' | grep -vq carol && [ \$('$LANCHAT' --data-dir '$work/alice' --json group members 'lunch crew' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"members\"]))') -eq 2 ]"
rc=0
lc carol send "lunch crew" "still here?" 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'not a member' "$work/err" || fail "a former member sent: exit $rc"

# ---- an identity sealed by a passphrase ----
printf 'correct horse battery staple\n' >"$work/pass"
chmod 600 "$work/pass"
lc dave init --nick dave --passphrase-file "$work/pass" >/dev/null || fail "sealed init"
lc dave whoami | grep -q 'protected by a passphrase' || fail "whoami of a sealed identity"
rc=0
"$LANCHATD" --data-dir "$work/dave" "${common[@]}" 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'protected by a passphrase' "$work/err" ||
  fail "no passphrase: exit $rc: $(cat "$work/err")"
rc=0
LANCHAT_PASSPHRASE=wrong "$LANCHATD" --data-dir "$work/dave" "${common[@]}" 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'wrong or missing passphrase' "$work/err" ||
  fail "wrong passphrase: exit $rc: $(cat "$work/err")"
"$LANCHATD" --data-dir "$work/dave" "${common[@]}" --passphrase-file "$work/pass" ||
  fail "the right passphrase"
wait_for "dave to see alice" sh -c "'$LANCHAT' --data-dir '$work/dave' peers | grep -q alice"
lc dave stop >/dev/null
# lanchat stop returns once the daemon has let go of its folder (its lock):
# a new one starts right away
"$LANCHATD" --data-dir "$work/dave" "${common[@]}" --passphrase-file "$work/pass" ||
  fail "restart right after stop"
lc dave stop >/dev/null

# ---- SIGTERM: goodbye and exit 0 ----
kill -TERM "${fg_pid[carol]}"
wait "${fg_pid[carol]}" || fail "carol's daemon exited with $? on SIGTERM"
wait_for "carol to be gone" peers_online alice 1
lc alice stop >/dev/null
wait "${fg_pid[alice]}" || fail "alice's daemon exited with $?"
bob_pid=$(cat "$work/bob/lanchatd.pid")
lc bob stop >/dev/null
wait_for "bob's daemon to exit" sh -c "! kill -0 $bob_pid"
for n in alice bob carol; do
  if grep -q 'Sanitizer' "$work/$n.log" "$work/$n/lanchatd.log" 2>/dev/null; then
    fail "$n: sanitizer report"
  fi
done
echo "daemon test passed"
