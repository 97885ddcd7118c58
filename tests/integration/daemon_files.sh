#!/usr/bin/env bash
# daemon_files.sh LANCHATD LANCHAT: files, folders and voice messages
# through lanchatd and the lanchat command line, with three daemons (alice,
# bob, carol) on loopback.  A folder with nested paths goes from alice to
# bob, who accepts it from the command line; every file arrives byte for
# byte under his downloads folder.  Offers are declined and cancelled from
# either side; a friend's small offer is accepted by itself (auto-accept);
# a group gets one transfer per member; voice messages are sent, recorded
# (with a stand-in recorder) and played (with a stand-in player).  Bad
# arguments to the new commands get clear errors, and the events carry the
# transfer.  Loopback only: every daemon binds 127.0.0.1, uses interface lo
# and broadcasts to 127.255.255.255 on a discovery port nobody else uses.
set -euo pipefail

LANCHATD=$1
LANCHAT=$2
work=$(mktemp -d)
pids=()

cleanup() {
  local n pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for n in alice bob carol; do
    if [ -f "$work/$n/lanchatd.pid" ]; then
      pid=$(cat "$work/$n/lanchatd.pid" 2>/dev/null || true)
      [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  sleep 0.3
  # KEEP=1 keeps the daemons' folders and logs to look at
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

fail() {
  printf 'FAIL: %s\n' "$*" >&2
  for n in alice bob carol; do
    [ -f "$work/$n.log" ] && { printf -- '--- %s.log\n' "$n" >&2; tail -30 "$work/$n.log" >&2; }
  done
  exit 1
}

LC_WAIT_S=30
# shellcheck source-path=SCRIPTDIR source=daemon_lib.sh
. "$(dirname "$0")/daemon_lib.sh"

json_field() { # json_field EXPR: evaluates EXPR on the JSON object "j" read from stdin
  python3 -c "import json,sys; j = json.load(sys.stdin); print($1)"
}

xfer_state() { # xfer_state NAME ID: that transfer's state at NAME
  lc "$1" --json transfers --all | python3 -c "
import json, sys
for l in sys.stdin:
    t = json.loads(l)
    if t['id'] == sys.argv[1]:
        print(t['state'])
" "$2"
}

state_is() { # state_is NAME ID STATE
  [ "$(xfer_state "$1" "$2")" = "$3" ]
}

port=$(free_port)
common=(--bind 127.0.0.1 --interfaces lo --broadcast 127.255.255.255
  --discovery-port "$port" --announce-interval 1 --log-level notice)

for n in alice bob carol; do
  lc "$n" init --nick "$n" >/dev/null || fail "init $n"
done
# the downloads folder three ways: alice's config file, bob's option,
# carol's default (<data-dir>/downloads); carol also accepts her friends'
# offers up to 1 MiB without asking
printf 'downloads = %s\n' "$work/alice-dl" >"$work/alice/lanchatd.conf"
printf 'auto-accept = 1M\n' >"$work/carol/lanchatd.conf"
"$LANCHATD" --data-dir "$work/alice" "${common[@]}" --foreground >>"$work/alice.log" 2>&1 &
pids+=($!)
"$LANCHATD" --data-dir "$work/bob" "${common[@]}" --downloads "$work/bob-dl" \
  --foreground >>"$work/bob.log" 2>&1 &
pids+=($!)
"$LANCHATD" --data-dir "$work/carol" "${common[@]}" --foreground >>"$work/carol.log" 2>&1 &
pids+=($!)
for n in alice bob carol; do wait_for "$n's control socket" test -S "$work/$n/control.sock"; done
peers_online() { [ "$(lc "$1" --json peers | grep -c '"online":true')" -eq 2 ]; }
for n in alice bob carol; do wait_for "$n to see 2 peers" peers_online "$n"; done

[ "$(lc alice --json whoami | json_field 'j["downloads"]')" = "$work/alice-dl" ] || fail "alice's downloads"
[ "$(lc bob --json whoami | json_field 'j["downloads"]')" = "$work/bob-dl" ] || fail "bob's downloads"
[ "$(lc carol --json whoami | json_field 'j["downloads"]')" = "$work/carol/downloads" ] || fail "carol's downloads"
[ "$(lc carol --json whoami | json_field 'j["auto_accept"]')" = 1048576 ] || fail "carol's auto-accept"
rc=0
"$LANCHATD" --data-dir "$work/x" --auto-accept lots 2>"$work/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q 'auto-accept' "$work/err" || fail "a bad --auto-accept: exit $rc"

# bob's events, all along
lc bob --json watch >"$work/bob-events" 2>&1 &
pids+=($!)
sleep 0.3

# ---- a folder with nested paths, accepted from the command line ----
mkdir -p "$work/src/proj/sub/deeper" "$work/src/proj/empty-not-sent"
printf 'top file\n' >"$work/src/proj/a.txt"
printf 'a name with spaces\n' >"$work/src/proj/sub/notes and ideas.txt"
head -c 300000 /dev/urandom >"$work/src/proj/sub/deeper/b.bin"
: >"$work/src/proj/sub/zero.txt"
id=$(cd "$work/src" && lc alice send-file bob proj --no-wait) || fail "send-file"
[[ $id =~ ^[0-9a-f]{32}$ ]] || fail "send-file printed '$id'"
wait_for "bob to see the offer" state_is bob "$id" offered
lc bob transfers | grep "$id" | grep -q 'proj/ (4 files, 300.0 kB)' || fail "bob's transfers: $(lc bob transfers)"
lc bob --json history alice | grep "\"transfer\":\"$id\"" | grep -q '"kind":"file"' ||
  fail "the offer is not a file message in bob's history"
lc bob history alice | grep -q 'alice: proj/ (4 files, 300.0 kB) \[offered\]$' ||
  fail "bob's history: $(lc bob history alice)"
lc bob accept "$id" --wait >"$work/accept.out" 2>"$work/accept.err" ||
  fail "accept --wait: $(cat "$work/accept.err")"
grep -q "^accepted: proj" "$work/accept.out" || fail "accept printed $(cat "$work/accept.out")"
grep -q "$work/bob-dl/proj/sub/deeper/b.bin" "$work/accept.out" || fail "accept --wait does not list the files"
diff -r "$work/src/proj" "$work/bob-dl/proj" -x empty-not-sent || fail "the folder differs"
cmp "$work/src/proj/sub/deeper/b.bin" "$work/bob-dl/proj/sub/deeper/b.bin" || fail "b.bin differs"
wait_for "alice to see it done" state_is alice "$id" "done"
lc alice --json transfers --all | grep "$id" | grep -q '"bytes":300028' || fail "alice's transfer: $(lc alice --json transfers --all)"
lc bob --json history alice | grep "\"transfer\":\"$id\"" | grep -q '"state":"done"' ||
  fail "the attachment's state in the history"
for ev in transfer_offer transfer_changed transfer_file; do
  grep "\"event\":\"$ev\"" "$work/bob-events" | grep -q "$id" || fail "no $ev event at bob"
done
python3 - "$work/bob-events" "$id" <<'EOF' || fail "transfer events"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
mine = [e for e in evs if e.get("event", "").startswith("transfer_")
        and e["transfer"]["id"] == sys.argv[2]]
for e in mine:
    t = e["transfer"]
    for k in ("id", "peer", "peer_nick", "outgoing", "kind", "state", "error",
              "by_peer", "total", "bytes", "rate", "eta_ms", "duration_ms",
              "name", "nfiles", "created_at"):
        assert k in t, (k, e)
    assert t["kind"] == "folder" and t["outgoing"] is False, t
    assert t["nfiles"] == 4 and t["total"] == 300000 + 9 + 19, t
    if e["event"] in ("transfer_offer", "transfer_changed"):
        paths = sorted(f["path"] for f in t["files"])
        assert paths == ["proj/a.txt", "proj/sub/deeper/b.bin",
                         "proj/sub/notes and ideas.txt", "proj/sub/zero.txt"], paths
    if e["event"] == "transfer_file":
        f = e["file"]
        assert f["verified"] is True and f["local"].startswith("/"), f
done = [e for e in mine if e["event"] == "transfer_changed"
        and e["transfer"]["state"] == "done"]
assert done, "no done event"
assert all(f["verified"] and f["local"] for f in done[-1]["transfer"]["files"])
assert len([e for e in mine if e["event"] == "transfer_file"]) == 1  # the folder
print("transfer events:", len(mine))
EOF

# ---- send-file follows the transfer; --json gives its events ----
printf 'one file\n' >"$work/src/one.txt"
lc alice --json send-file bob "$work/src/one.txt" >"$work/follow.out" 2>&1 &
follow=$!
wait_for "the offer in alice's output" grep -q '"state":"offered"' "$work/follow.out"
id2=$(head -1 "$work/follow.out" | json_field 'j["id"]')
wait_for "bob to see the second offer" state_is bob "$id2" offered
lc bob accept "$id2" >/dev/null || fail "accept"
wait "$follow" || fail "send-file exited with $?: $(cat "$work/follow.out")"
grep '"event":"transfer_changed"' "$work/follow.out" | grep -q '"state":"done"' ||
  fail "send-file --json: $(cat "$work/follow.out")"
cmp "$work/src/one.txt" "$work/bob-dl/one.txt" || fail "one.txt differs"

# ---- decline; cancel by the sender and by the receiver ----
printf 'not wanted\n' >"$work/src/unwanted.txt"
id3=$(lc alice send-file bob "$work/src/unwanted.txt" --no-wait)
wait_for "bob to see the offer to decline" state_is bob "$id3" offered
lc bob decline "$id3" | grep -q '^declined: unwanted.txt' || fail "decline"
wait_for "alice to see it declined" state_is alice "$id3" declined
lc alice --json transfers --all | grep "$id3" | grep -q '"by_peer":true' || fail "declined by_peer"
[ ! -e "$work/bob-dl/unwanted.txt" ] || fail "a declined file arrived"
# a sender that waits is told
lc alice send-file bob "$work/src/unwanted.txt" >"$work/follow2.out" 2>"$work/follow2.err" &
follow=$!
wait_for "the second offer to decline" sh -c "'$LANCHAT' --data-dir '$work/bob' transfers | grep -q unwanted"
id4=$(lc bob --json transfers | json_field 'j["id"]')
lc bob decline "$id4" >/dev/null
rc=0
wait "$follow" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'declined by the peer' "$work/follow2.err" ||
  fail "send-file of a declined offer: exit $rc: $(cat "$work/follow2.err")"

head -c 2000000 /dev/urandom >"$work/src/big.bin"
id5=$(lc alice send-file bob "$work/src/big.bin" --no-wait)
wait_for "bob to see the offer to cancel" state_is bob "$id5" offered
lc alice cancel "$id5" | grep -q '^cancelled: big.bin' || fail "cancel"
wait_for "bob to see it cancelled" state_is bob "$id5" cancelled
lc bob --json transfers --all | grep "$id5" | grep -q '"by_peer":true' || fail "cancelled by_peer"
lc bob history alice | grep -q 'alice: big.bin (2.0 MB) \[cancelled by the peer\]$' ||
  fail "a cancelled offer in bob's history: $(lc bob history alice)"
rc=0
lc alice cancel "$id5" 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'over already' "$work/err" || fail "second cancel: exit $rc"
id6=$(lc alice send-file bob "$work/src/big.bin" --no-wait)
wait_for "bob to see the offer he cancels" state_is bob "$id6" offered
lc bob cancel "$id6" >/dev/null || fail "the receiver cancels"
wait_for "alice to see it cancelled" state_is alice "$id6" cancelled
[ -z "$(lc bob --json transfers)" ] || fail "transfers under way remain: $(lc bob transfers)"

# ---- auto-accept: a friend's small offer, not a stranger's ----
printf 'for carol\n' >"$work/src/carol1.txt"
id7=$(lc alice send-file carol "$work/src/carol1.txt" --no-wait)
wait_for "carol to see the offer" state_is carol "$id7" offered
sleep 0.5
state_is carol "$id7" offered || fail "a stranger's offer was accepted by itself"
lc alice friend add carol >/dev/null
wait_for "carol to see alice's request" sh -c "'$LANCHAT' --data-dir '$work/carol' friend list | grep -q 'asks to be'"
lc carol friend accept alice >/dev/null
wait_for "alice to see carol's answer" sh -c "'$LANCHAT' --data-dir '$work/alice' --json friend list | grep -q '\"state\":\"friend\"'"
id8=$(lc alice send-file carol "$work/src/one.txt" --no-wait)
wait_for "carol to have it by herself" state_is carol "$id8" "done"
cmp "$work/src/one.txt" "$work/carol/downloads/one.txt" || fail "auto-accepted file differs"
id9=$(lc alice send-file carol "$work/src/big.bin" --no-wait)
wait_for "carol to see the big offer" state_is carol "$id9" offered
sleep 0.5
state_is carol "$id9" offered || fail "an offer over auto-accept was accepted"
lc carol decline "$id9" >/dev/null

# ---- a group: one transfer per member ----
lc alice group create team bob carol >/dev/null
wait_for "bob knows the group" sh -c "'$LANCHAT' --data-dir '$work/bob' group list | grep -q '#team'"
lc alice send-file team "$work/src/one.txt" --no-wait >"$work/group.ids"
[ "$(grep -cE '^[0-9a-f]{32}$' "$work/group.ids")" -eq 2 ] || fail "group send: $(cat "$work/group.ids")"
for g in $(cat "$work/group.ids"); do
  wait_for "the group's offers" sh -c "'$LANCHAT' --data-dir '$work/bob' --json transfers --all | grep -q $g || '$LANCHAT' --data-dir '$work/carol' --json transfers --all | grep -q $g"
done

# ---- voice messages: sent, played; recorded ----
python3 - "$work/voice.wav" <<'EOF'
import math, struct, sys, wave
w = wave.open(sys.argv[1], "wb")
w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 10)))
                       for i in range(16000 * 7)))
w.close()
EOF
vid=$(lc alice voice bob "$work/voice.wav") || fail "voice"
wait_for "the voice message at bob (voice messages need no accept)" state_is bob "$vid" "done"
lc bob history alice | grep -q 'alice: voice message, 0:07$' || fail "bob's history: $(lc bob history alice)"
LANCHAT_PLAYER="cp FILE $work/played.wav" lc bob play "$vid" 2>/dev/null || fail "play"
cmp "$work/voice.wav" "$work/played.wav" || fail "played a different file"
lc alice play "$vid" --player "cp FILE '$work/played again.wav'" 2>/dev/null || fail "play our own"
cmp "$work/voice.wav" "$work/played again.wav" || fail "played a different file (sender)"
rc=0
lc bob play "$id" 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'not a voice message' "$work/err" || fail "play of a folder: exit $rc"
rc=0
lc bob play "$vid" --player "/nonexistent/player" 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'cannot run /nonexistent/player' "$work/err" || fail "a missing player: exit $rc"
# a recorder that copies a file, then waits to be stopped (Enter)
(sleep 1; echo) | LANCHAT_RECORD="sh -c 'cp \"\$0\" \"\$1\" && exec sleep 30' $work/voice.wav FILE" \
  lc alice voice --record bob >"$work/rec.out" 2>"$work/rec.err" || fail "voice --record: $(cat "$work/rec.err")"
grep -q 'recorded 0:07' "$work/rec.err" || fail "voice --record said $(cat "$work/rec.err")"
rid=$(cat "$work/rec.out")
wait_for "the recorded voice message at bob" state_is bob "$rid" "done"
ls "$work/alice/recordings/"voice-*.wav >/dev/null || fail "no recording kept"
rc=0
(sleep 1; echo) | LANCHAT_RECORD="false" lc alice voice --record bob 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'recorder false failed' "$work/err" || fail "a failing recorder: exit $rc"

# ---- bad input: clear errors, counted ----
alice_id=$(lc alice --json whoami | json_field 'j["peer"]["id"]')
python3 - "$work/alice/control.sock" "$work" "$id" "$alice_id" <<'EOF' || fail "bad requests"
import json, socket, sys
sock, work, done_id, self_id = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
f = s.makefile("rb")
def ask(req):
    s.sendall((json.dumps(req) + "\n").encode())
    while True:
        r = json.loads(f.readline())
        if "event" not in r:
            return r
before = ask({"id": 0, "cmd": "stats"})["result"]["control"]["bad_requests"]
zero = "0" * 32
cases = [
    ({"cmd": "send_files", "paths": [work + "/src/one.txt"]}, "bad_argument", "'to'"),
    ({"cmd": "send_files", "to": "bob"}, "bad_argument", "'paths'"),
    ({"cmd": "send_files", "to": "bob", "paths": "/etc/hostname"}, "bad_argument", "array"),
    ({"cmd": "send_files", "to": "bob", "paths": []}, "bad_argument", "empty"),
    ({"cmd": "send_files", "to": "bob", "paths": [7]}, "bad_argument", "paths[0]"),
    ({"cmd": "send_files", "to": "bob", "paths": ["src/one.txt"]}, "bad_argument", "absolute"),
    ({"cmd": "send_files", "to": "bob", "paths": [work + "/nothing/here"]}, "not_found", "nothing/here"),
    ({"cmd": "send_files", "to": "bob", "paths": ["/dev/null"]}, "bad_argument", "not a file"),
    ({"cmd": "send_files", "to": "zed", "paths": [work + "/src/one.txt"]}, "unknown_peer", "zed"),
    ({"cmd": "send_files", "to": self_id, "paths": [work + "/src/one.txt"]}, "bad_argument", "us"),
    ({"cmd": "send_voice", "to": "bob"}, "bad_argument", "'path'"),
    ({"cmd": "send_voice", "to": "bob", "path": work + "/src/one.txt"}, "bad_argument", "WAV"),
    ({"cmd": "send_voice", "to": "bob", "path": work + "/src"}, "bad_argument", "not a file"),
    ({"cmd": "send_voice", "to": "bob", "path": work + "/none.wav"}, "not_found", "none.wav"),
    ({"cmd": "send_voice", "to": "bob", "path": work + "/voice.wav", "duration_ms": -1}, "bad_argument", "duration_ms"),
    ({"cmd": "transfers", "active": "yes"}, "bad_argument", "active"),
    ({"cmd": "transfer"}, "bad_argument", "'transfer'"),
    ({"cmd": "transfer", "transfer": "xyz"}, "bad_argument", "32 hex digits"),
    ({"cmd": "transfer", "transfer": zero}, "not_found", "no such transfer"),
    ({"cmd": "accept", "transfer": zero}, "not_found", "no such transfer"),
    ({"cmd": "accept", "transfer": 12}, "bad_argument", "string"),
    ({"cmd": "accept", "transfer": done_id}, "wrong_state", "not an offer to us"),
    ({"cmd": "decline", "transfer": done_id}, "wrong_state", "not an offer to us"),
    ({"cmd": "cancel", "transfer": done_id}, "wrong_state", "over already"),
    ({"cmd": "cancel", "transfer": zero + "0"}, "bad_argument", "32 hex digits"),
    ({"cmd": "subscribe", "events": ["transfers"]}, "bad_argument", "transfer"),
]
for i, (req, code, words) in enumerate(cases):
    req["id"] = i + 1
    r = ask(req)
    assert r["ok"] is False and r["id"] == i + 1, (req, r)
    assert r["error"]["code"] == code, (req, r)
    assert words in r["error"]["message"], (req, r)
after = ask({"id": 99, "cmd": "stats"})["result"]
assert after["control"]["bad_requests"] == before + len(cases), (before, after)
for k in ("transfers_refused", "transfer_bad_data", "transfer_hash_fails",
          "bytes_sent_files", "bytes_received_files", "store_failures",
          "handshakes_limited"):
    assert k in after["node"], k
assert after["node"]["store_failures"] == 0, after["node"]
assert after["node"]["bytes_sent_files"] > 300000, after["node"]
r = ask({"id": 100, "cmd": "transfer", "transfer": done_id.upper()})
assert r["ok"] and r["result"]["transfer"]["state"] == "done", r
assert len(r["result"]["transfer"]["files"]) == 4, r
r = ask({"id": 101, "cmd": "subscribe", "events": ["transfer"]})
assert r["result"]["events"] == ["daemon", "transfer"], r
names = [c["cmd"] for c in ask({"id": 102, "cmd": "help"})["result"]["commands"]]
for c in ("send_files", "send_voice", "transfers", "transfer", "accept", "decline", "cancel"):
    assert c in names, c
print("bad requests answered:", len(cases))
EOF
rc=0
lc alice accept 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "accept without an id: exit $rc"
rc=0
lc alice accept xyz 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q '32 hex digits' "$work/err" || fail "accept xyz: exit $rc"
rc=0
lc alice send-file bob "$work/nothing" 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "no such file or folder: $work/nothing" "$work/err" || fail "send-file of nothing: exit $rc"
rc=0
lc alice send-file zed "$work/src/one.txt" 2>/dev/null || rc=$?
[ "$rc" -eq 5 ] || fail "send-file to an unknown peer: exit $rc"
rc=0
lc alice send-file bob 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "send-file without a path: exit $rc"
rc=0
lc alice voice bob "$work/src/one.txt" 2>"$work/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'WAV or Ogg' "$work/err" || fail "voice of a text file: exit $rc"

for n in alice bob carol; do lc "$n" stop >/dev/null || fail "stop $n"; done
for n in alice bob carol; do
  if grep -q 'Sanitizer' "$work/$n.log" 2>/dev/null; then fail "$n: sanitizer report"; fi
done
echo "daemon files test passed"
