#!/usr/bin/env bash
# daemon_faults.sh LANCHATD LANCHAT: what lanchatd and lanchat do with what
# they cannot use: a history that is damaged, another program's or from a
# newer lanchat; an identity that others can read or that is damaged; a
# data folder that others may change, that belongs to another user or that
# cannot be written; a port in use; a bad settings file.  Each time: the
# documented exit status (never a crash), a message that says what is
# wrong and what to do, and the bad file left byte for byte.  Loopback
# only: every daemon binds 127.0.0.1, uses interface lo and broadcasts to
# 127.255.255.255 on a discovery port nobody else uses.
set -euo pipefail

LANCHATD=$1
LANCHAT=$2
work=$(mktemp -d)
holders=()
nobody_dir=

cleanup() {
  local pidf pid h
  for pidf in "$work"/*/lanchatd.pid; do
    [ -f "$pidf" ] || continue
    pid=$(cat "$pidf" 2>/dev/null || true)
    # only a daemon that still holds its folder's lock
    if [ -n "$pid" ] && ! flock -n "$pidf" true 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for h in "${holders[@]}"; do kill "$h" 2>/dev/null || true; done
  sleep 0.2
  chmod -R u+rwx "$work" 2>/dev/null || true
  rm -rf "$work"
  [ -z "$nobody_dir" ] || rm -rf "$nobody_dir"
}
trap cleanup EXIT

fail() {
  printf 'FAIL: %s\n' "$*" >&2
  [ -f "$work/out" ] && { printf -- '--- output\n' >&2; cat "$work/out" >&2; }
  exit 1
}

# shellcheck source-path=SCRIPTDIR source=daemon_lib.sh
. "$(dirname "$0")/daemon_lib.sh"

port=$(free_port)
common=(--bind 127.0.0.1 --interfaces lo --broadcast 127.255.255.255
  --discovery-port "$port" --announce-interval 1)

# expect STATUS PHRASE... -- COMMAND...: COMMAND exits with STATUS (not
# killed by a signal, not hanging), and its output holds every PHRASE.
# "run_fg NAME ARGS..." as COMMAND: lanchatd on NAME's data folder in the
# foreground, as a child of this script.
expect() {
  local want=$1 rc=0
  shift
  local phrases=()
  while [ "$1" != -- ]; do
    phrases+=("$1")
    shift
  done
  shift
  if [ "$1" = run_fg ]; then
    local n=$2
    shift 2
    set -- "$LANCHATD" --data-dir "$work/$n" "${common[@]}" --foreground "$@"
  fi
  timeout 20 "$@" >"$work/out" 2>&1 </dev/null || rc=$?
  [ "$rc" -lt 124 ] || fail "$*: exit $rc (a crash, or it hung)"
  [ "$rc" -eq "$want" ] || fail "$*: exit $rc, expected $want"
  local p
  for p in "${phrases[@]}"; do
    grep -qF -- "$p" "$work/out" || fail "$*: no '$p' in the message"
  done
}

# keep FILE... / unchanged FILE...: the files are left byte for byte (and
# with their modes).
keep() {
  local f
  for f; do
    cp -p "$f" "$f.orig"
    stat -c %a "$f" >"$f.mode"
  done
}
unchanged() {
  local f
  for f; do
    cmp -s "$f" "$f.orig" || fail "$f was changed"
    [ "$(stat -c %a "$f")" = "$(cat "$f.mode")" ] || fail "$f's mode was changed"
  done
}

new_dir() { # new_dir NAME: a data folder with an identity
  "$LANCHAT" --data-dir "$work/$1" init --nick "$1" >/dev/null || fail "init $1"
}

# a history made by this lanchatd: started in the background (the command
# returns once it serves), then stopped
made_history() {
  new_dir "$1"
  "$LANCHATD" --data-dir "$work/$1" "${common[@]}" >"$work/out" 2>&1 ||
    fail "start $1"
  "$LANCHAT" --data-dir "$work/$1" stop >/dev/null || fail "stop $1"
  rm -f "$work/$1/history.db-wal" "$work/$1/history.db-shm"
  [ -s "$work/$1/history.db" ] || fail "$1: no history made"
}

sql() { # sql FILE STATEMENTS: through Python's sqlite3, not lanchat
  python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript(sys.argv[2])
db.commit()
db.close()' "$1" "$2"
}
sql_value() {
  python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$1" "$2"
}

# ---- the history ----------------------------------------------------------

# random bytes: not a database
new_dir junk
head -c 8192 /dev/urandom >"$work/junk/history.db"
keep "$work/junk/history.db"
expect 1 "not an SQLite database" "Restore it from a backup" \
  "mv $work/junk/history.db $work/junk/history.db.bad" -- run_fg junk
unchanged "$work/junk/history.db"
[ ! -e "$work/junk/control.sock" ] || fail "junk: a control socket was left"
# the same in the background: the starting command reports it
expect 1 "not an SQLite database" -- \
  "$LANCHATD" --data-dir "$work/junk" "${common[@]}"
unchanged "$work/junk/history.db"
echo "ok: a history of random bytes is refused, untouched"

# a history cut short
made_history cut
truncate -s 3000 "$work/cut/history.db"
keep "$work/cut/history.db"
expect 1 "damaged" "mv $work/cut/history.db $work/cut/history.db.bad" -- \
  run_fg cut
unchanged "$work/cut/history.db"
echo "ok: a truncated history is refused, untouched"

# another program's database: never migrated into
new_dir foreign
sql "$work/foreign/history.db" "create table x(a); insert into x values (42);"
keep "$work/foreign/history.db"
expect 1 "another program's database" \
  "mv $work/foreign/history.db $work/foreign/history.db.other" -- \
  run_fg foreign
unchanged "$work/foreign/history.db"
[ "$(sql_value "$work/foreign/history.db" \
  "select group_concat(name) from sqlite_master")" = x ] ||
  fail "foreign: tables were added"
echo "ok: another program's database is refused, untouched"

# a history from a newer lanchat
made_history newer
sql "$work/newer/history.db" "pragma user_version = 99;"
keep "$work/newer/history.db"
expect 1 "made by a newer lanchat" "history version 99" \
  "mv $work/newer/history.db $work/newer/history.db.v99" -- run_fg newer
unchanged "$work/newer/history.db"
echo "ok: a history from a newer lanchat is refused, untouched"

# a history made before lanchat marked its files (no application_id):
# recognised by its tables, used, and marked
made_history older
[ "$(sql_value "$work/older/history.db" "pragma application_id")" != 0 ] ||
  fail "a new history is not marked as lanchat's"
sql "$work/older/history.db" "pragma application_id = 0;"
"$LANCHATD" --data-dir "$work/older" "${common[@]}" >"$work/out" 2>&1 ||
  fail "older: refused"
"$LANCHAT" --data-dir "$work/older" stop >/dev/null || fail "older: stop"
[ "$(sql_value "$work/older/history.db" "pragma application_id")" != 0 ] ||
  fail "older: not marked"
echo "ok: a history from before the mark is used"

# ---- the identity ---------------------------------------------------------

# readable by others: refused like ssh does, the fix given
new_dir open
chmod 644 "$work/open/identity.key"
keep "$work/open/identity.key"
expect 1 "can be read or changed by other users (mode 0644)" \
  "chmod 600 $work/open/identity.key" -- run_fg open
expect 1 "chmod 600 $work/open/identity.key" -- \
  "$LANCHAT" --data-dir "$work/open" whoami
expect 1 "chmod 600 $work/open/identity.key" -- \
  "$LANCHAT" --data-dir "$work/open" peers
expect 1 "chmod 600 $work/open/identity.key" -- \
  "$LANCHAT" --data-dir "$work/open" init --nick again
unchanged "$work/open/identity.key"
echo "ok: an identity others can read is refused, untouched"

# damaged: never replaced, not even by init
new_dir badkey
printf 'not a key\n' >"$work/badkey/identity.key"
chmod 600 "$work/badkey/identity.key"
keep "$work/badkey/identity.key"
expect 1 "damaged or not a lanchat key file" "Restore it from a backup" \
  "mv $work/badkey/identity.key $work/badkey/identity.key.bad" -- \
  run_fg badkey
# not "no identity yet" (exit 4), which would send the user to init
expect 1 "damaged or not a lanchat key file" -- \
  "$LANCHAT" --data-dir "$work/badkey" whoami
expect 1 "damaged or not a lanchat key file" -- \
  "$LANCHAT" --data-dir "$work/badkey" peers
expect 1 "damaged or not a lanchat key file" -- \
  "$LANCHAT" --data-dir "$work/badkey" init --nick again
unchanged "$work/badkey/identity.key"
echo "ok: a damaged identity is refused, untouched"

# ---- the data folder ------------------------------------------------------

# others may change it: refused, for the daemon and for init
new_dir shared
chmod 777 "$work/shared"
expect 1 "can be changed by other users (mode 0777)" \
  "chmod 700 $work/shared" -- run_fg shared
[ "$(stat -c %a "$work/shared")" = 777 ] || fail "shared: mode changed"
mkdir -m 777 "$work/shared2"
expect 1 "chmod 700 $work/shared2" -- \
  "$LANCHAT" --data-dir "$work/shared2" init --nick x
[ ! -e "$work/shared2/identity.key" ] || fail "shared2: an identity was made"
echo "ok: a data folder others may change is refused"

# others may list it: a warning, and it runs
new_dir listed
chmod 755 "$work/listed"
"$LANCHATD" --data-dir "$work/listed" "${common[@]}" >"$work/out" 2>&1 ||
  fail "listed: refused"
grep -qF "other users can list the data folder $work/listed (mode 0755)" \
  "$work/out" || fail "listed: no warning"
"$LANCHAT" --data-dir "$work/listed" stop >/dev/null || fail "listed: stop"
echo "ok: a data folder others can list runs, with a warning"

if [ "$(id -u)" -eq 0 ]; then
  # another user's folder (root could write there; it must not)
  new_dir theirs
  chown -R nobody "$work/theirs"
  expect 1 "belongs to another user (nobody" -- run_fg theirs
  [ ! -e "$work/theirs/lanchatd.pid" ] || fail "theirs: a file was made there"
  chown -R root "$work/theirs"
  echo "ok: another user's data folder is refused"
  # a file left by lanchat run as another user (the mistake of sudo)
  made_history sudo
  chown nobody "$work/sudo/history.db"
  keep "$work/sudo/history.db"
  expect 1 "$work/sudo/history.db belongs to another user (nobody" \
    "sudo chown -R root $work/sudo" -- run_fg sudo
  unchanged "$work/sudo/history.db"
  [ "$(stat -c %U "$work/sudo/history.db")" = nobody ] || fail "sudo: chowned"
  echo "ok: a data folder holding another user's file is refused"
else
  echo "skip: another user's data folder (needs root to make one)"
fi

# a folder this user cannot write in.  root writes anywhere: the case runs
# as nobody then, if nobody can run the programs
if [ "$(id -u)" -ne 0 ]; then
  mkdir -m 500 "$work/ro"
  expect 1 "cannot write in the data folder $work/ro" "chmod u+rwx $work/ro" \
    -- "$LANCHATD" --data-dir "$work/ro" "${common[@]}" --foreground
  echo "ok: a data folder that cannot be written is refused"
elif setpriv --reuid=nobody --regid=nogroup --clear-groups \
  test -x "$LANCHATD" 2>/dev/null; then
  nobody_dir=$(mktemp -d)
  chmod 755 "$nobody_dir"
  mkdir -m 500 "$nobody_dir/ro"
  chown nobody "$nobody_dir/ro"
  expect 1 "cannot write in the data folder $nobody_dir/ro" \
    "chmod u+rwx $nobody_dir/ro" -- \
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$LANCHATD" --data-dir "$nobody_dir/ro" "${common[@]}" --foreground
  echo "ok: a data folder that cannot be written is refused (as nobody)"
else
  echo "skip: an unwritable data folder (root, and nobody cannot run $LANCHATD)"
fi

# ---- ports ----------------------------------------------------------------

hold() { # hold PORT: a program that binds 127.0.0.1:PORT without sharing it
  python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("bound", flush=True)
time.sleep(120)' "$1" >"$work/hold.$1" &
  holders+=($!)
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q bound "$work/hold.$1" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "could not hold port $1"
}

new_dir ports
uport=$(free_port)
hold "$uport"
expect 1 "UDP port $uport, lanchatd's unicast port" "--port N" \
  "ss -ulpn 'sport = :$uport'" -- run_fg ports --port "$uport"
dport=$(free_port)
hold "$dport"
expect 1 "UDP port $dport, the discovery port" \
  "every peer needs the same --discovery-port" -- \
  run_fg ports --discovery-port "$dport"
echo "ok: a port in use is named, with what to do"

# ---- the settings file ----------------------------------------------------

new_dir conf
conf=$work/conf/lanchatd.conf
check_conf() { # check_conf PHRASE...: refused with exit 2, file untouched
  keep "$conf"
  expect 2 "$conf: line" "fix or remove that line" "$@" -- run_fg conf
  unchanged "$conf"
}
printf 'foo = 1\n' >"$conf"
check_conf "unknown setting 'foo'"
printf 'nick = a\nport = 70000\n' >"$conf"
check_conf "line 2: port: expected 0..65535, not '70000'"
{ head -c 1024 /dev/urandom; printf '\0'; head -c 1024 /dev/urandom; } >"$conf"
check_conf "a NUL byte (not a text file?)"
printf 'nick = a\n\033[2J\033]0;pwned\007 = 1\n' >"$conf"
check_conf "line 2: unknown setting '?[2J?]0;pwned?'"
! grep -q $'\033' "$work/out" || fail "an escape sequence reached the terminal"
rm "$conf"
expect 2 "$work/none.conf" "No such file" -- run_fg conf --config "$work/none.conf"
echo "ok: a bad settings file is refused with its line, untouched"

echo "all faults handled"
