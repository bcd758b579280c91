#!/usr/bin/env bash
# What `make demo` runs: a 3-node mesh on this machine, members of one group
# on two nodes, a publish on one node reaching a subscriber on another, a
# request answered across the mesh, and what happens to the group when one node's broker is
# killed (kill -9, no goodbye): the third node purges that node's members and
# its monitor reports them as left. Then the name registry, with n1 and n3
# (two of the three voters) left: a name registered on n1 with metadata,
# looked up from n3, refused to a second holder, and released when its
# holder stops. Then the event store's coordination layer, with
# meshbus-eventstore-demo (stores, a store leader, trackers, events through
# random emitters, and the leader's node killed). Exits non-zero if any of
# that does not happen. Stops everything it started, whatever happens.
set -euo pipefail

usage() {
  echo "usage: $(basename "$0")" >&2
  exit 2
}
[ $# -eq 0 ] || usage

# shellcheck source=scripts/mesh-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/mesh-lib.sh"

DIR="$MESH_REPO/.mesh/demo"
BASE_PORT=17200   # apart from mesh-up.sh's default, so a running mesh is left alone
SCOPE=demo
GROUP=workers
NAME=demo.orders

heading() { printf '\n== %s\n' "$*"; }
fail() {
  echo "demo: FAILED: $*" >&2
  exit 1
}
MESHBUS="$MESH_BIN_DIR/meshbus"
endpoint() { echo "ipc://$DIR/$1.ipc"; }
# `on NODE ARGS...`: meshbus against NODE's broker. Run in the foreground
# only: a backgrounded function is a subshell, and its $! is not meshbus's
# pid, so background commands call "$MESHBUS" directly.
on() { local node="$1"; shift; "$MESHBUS" -b "$(endpoint "$node")" "$@"; }

# Waits up to $1 seconds for the command after it to succeed.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

mesh_require_binaries
mkdir -p "$DIR"

# ---- cleanup: everything started here, by pid ----
helpers=()  # pids of the background meshbus commands
# Drops a helper that this script has reaped (`wait`): its pid may be reused.
forget_helper() {
  local pid kept=()
  for pid in "${helpers[@]}"; do
    if [ "$pid" != "$1" ]; then kept+=("$pid"); fi
  done
  helpers=("${kept[@]}")
}
cleanup() {
  local status=$?
  if [ ${#helpers[@]} -gt 0 ]; then
    MESH_STOP_GRACE=2 mesh_stop_pids "${helpers[@]}"
    for pid in "${helpers[@]}"; do wait "$pid" 2>/dev/null || true; done
  fi
  "$MESH_REPO/scripts/mesh-down.sh" --dir "$DIR" || true
  exit $status
}
trap cleanup EXIT

heading "starting a 3-node mesh (logs in $DIR)"
"$MESH_REPO/scripts/mesh-down.sh" --dir "$DIR"  # a previous run's leftovers, if any
# A previous run's outputs too: `cmd >FILE &` truncates FILE in the child, so
# a wait on FILE could otherwise see the old run's lines first.
rm -f "$DIR"/*.out "$DIR"/*.err
"$MESH_REPO/scripts/mesh-up.sh" 3 --dir "$DIR" --base-port "$BASE_PORT"

heading "nodes, as n1 sees them"
on n1 nodes

heading "joining $SCOPE/$GROUP from n1 and from n2 (meshbus join, in the background)"
for node in n1 n2; do
  "$MESHBUS" -b "$(endpoint "$node")" join "$SCOPE" "$GROUP" >"$DIR/join-$node.out" 2>&1 &
  helpers+=("$!")
done
has_member_id() { [ -s "$1" ] && grep -q '\.' "$1"; }
for node in n1 n2; do
  wait_until 5 has_member_id "$DIR/join-$node.out" ||
    fail "meshbus join on $node printed no member id: $(cat "$DIR/join-$node.out")"
done
member_n1="$(head -n 1 "$DIR/join-n1.out")"
member_n2="$(head -n 1 "$DIR/join-n2.out")"
echo "n1's member: $member_n1"
echo "n2's member: $member_n2"

heading "members $SCOPE $GROUP, as n3 sees them"
n3_sees() {
  local members
  members="$(on n3 members "$SCOPE" "$GROUP")" && grep -qxF "$1" <<<"$members"
}
wait_until 5 n3_sees "$member_n1" || fail "n3 never saw n1's member $member_n1"
wait_until 5 n3_sees "$member_n2" || fail "n3 never saw n2's member $member_n2"
on n3 members "$SCOPE" "$GROUP"

heading "monitoring $SCOPE/$GROUP on n3 (in the background)"
"$MESHBUS" -b "$(endpoint n3)" monitor "$SCOPE" "$GROUP" --count 1 --timeout 20 \
  >"$DIR/monitor.out" 2>&1 &
monitor_pid=$!
helpers+=("$monitor_pid")
wait_until 5 grep -qs '^members' "$DIR/monitor.out" ||
  fail "the monitor did not start: $(cat "$DIR/monitor.out")"
cat "$DIR/monitor.out"

heading "publish on n1, subscribe on n3 (meshbus sub, in the background)"
"$MESHBUS" -b "$(endpoint n3)" sub orders. >"$DIR/sub.out" 2>"$DIR/sub.err" &
sub_pid=$!
helpers+=("$sub_pid")
wait_until 5 grep -qs '^subscribed' "$DIR/sub.err" || fail "sub did not start: $(cat "$DIR/sub.err")"
# A subscription reaches the other brokers a moment after it is made (as in
# ZeroMQ): probe until one arrives, then publish for real.
probe_seen() { on n1 pub orders.probe probe >/dev/null && grep -qs '^orders.probe' "$DIR/sub.out"; }
wait_until 5 probe_seen || fail "n3's subscriber never got a probe from n1"
on n1 pub orders.eu hello --count 5
got_all() { [ "$(grep -c '^orders.eu ' "$DIR/sub.out")" -ge 5 ]; }
wait_until 5 got_all || fail "the subscriber got only: $(cat "$DIR/sub.out")"
grep '^orders.eu ' "$DIR/sub.out"
[ "$(grep '^orders.eu ' "$DIR/sub.out" | tr '\n' ' ')" = \
  "orders.eu hello0 orders.eu hello1 orders.eu hello2 orders.eu hello3 orders.eu hello4 " ] ||
  fail "the messages came out of order or some are missing"

heading "request/reply: n2 serves $SCOPE/upper, n1 asks"
"$MESHBUS" -b "$(endpoint n2)" serve "$SCOPE" upper >"$DIR/serve.out" 2>"$DIR/serve.err" &
helpers+=("$!")
wait_until 5 grep -qs '^serving as' "$DIR/serve.err" || fail "serve did not start: $(cat "$DIR/serve.err")"
n1_sees_server() { [ -n "$(on n1 members "$SCOPE" upper)" ]; }
wait_until 5 n1_sees_server || fail "n1 never saw the server's membership"
echo "reply: $(on n1 req "$SCOPE" upper "hello from n1")"
echo "a request to a group with nobody in it:"
if on n1 req "$SCOPE" nobody "anyone?"; then fail "a request to nobody succeeded"; fi

heading "kill -9 the broker of n2"
n2_pid="$(mesh_broker_pid "$DIR/n2.pid")"
[ -n "$n2_pid" ] || fail "n2's broker is not running"
kill -KILL "$n2_pid"
echo "killed pid $n2_pid"

heading "waiting (at most 5 s) for n3 to purge n2's member"
start_ms="$(date +%s%3N)"
# Purged: n3 answers, and without n2's member (an error is not an answer).
n2_purged() {
  local members
  members="$(on n3 members "$SCOPE" "$GROUP")" || return 1
  ! grep -qxF "$member_n2" <<<"$members"
}
wait_until 5 n2_purged || fail "n3 still lists n2's member $member_n2 after 5 s"
echo "purged after about $(($(date +%s%3N) - start_ms)) ms; members $SCOPE $GROUP on n3 now:"
on n3 members "$SCOPE" "$GROUP"
n3_sees "$member_n1" || fail "n3 lost n1's member $member_n1 too"

heading "nodes, as n3 sees them now"
on n3 nodes

heading "what the monitor on n3 printed"
monitor_ended() { ! mesh_is_running "$monitor_pid"; }
wait_until 5 monitor_ended || fail "the monitor did not end"
monitor_status=0
wait "$monitor_pid" || monitor_status=$?
forget_helper "$monitor_pid"
cat "$DIR/monitor.out"
[ "$monitor_status" -eq 0 ] || fail "the monitor exited with status $monitor_status"
grep -E "^leave +$SCOPE $GROUP " "$DIR/monitor.out" | grep -F "$member_n2" >/dev/null ||
  fail "the monitor reported no leave of $member_n2"

heading "the name registry: voters n1,n2,n3; with n2 dead, n1 and n3 are a majority"
# The leader a node knows, if it is not the dead n2 ("" while none is known).
live_leader_on() {
  local leader
  leader="$(on "$1" leader 2>/dev/null | awk '$1 == "leader" { print $2 }')" || return 1
  [ -n "$leader" ] && [ "$leader" != n2 ] && echo "$leader"
}
# If n2 led, n1 and n3 elect a new leader within about a second of its death.
wait_until 10 live_leader_on n1 >/dev/null ||
  fail "n1 knows no live registry leader after 10 s: $(on n1 leader 2>&1)"
echo "n1 knows a live leader"

heading "register $NAME on n1 with metadata (meshbus register --hold, in the background)"
"$MESHBUS" -b "$(endpoint n1)" register "$NAME" --meta '{"role": "orders", "shard": 1}' \
  --hold 60 >"$DIR/register.out" 2>"$DIR/register.err" &
holder_pid=$!
helpers+=("$holder_pid")
registered() {
  grep -qs '^registered ' "$DIR/register.out" && return 0
  # An exit (taken, no leader) ends the wait at once.
  mesh_is_running "$holder_pid" || fail "meshbus register exited: $(cat "$DIR/register.err")"
  return 1
}
wait_until 10 registered || fail "meshbus register did not register: $(cat "$DIR/register.err")"
cat "$DIR/register.out"

heading "whereis $NAME, as n3 sees it (its local copy, then the leader's answer)"
# The local copy lags the leader by a replication round trip.
n3_knows_name() { on n3 whereis "$NAME" >/dev/null 2>&1; }
wait_until 5 n3_knows_name || fail "n3 never saw $NAME: $(on n3 whereis "$NAME" 2>&1)"
on n3 whereis "$NAME"
on n3 whereis "$NAME" --consistent --json

heading "names, as n3 sees them"
on n3 names

heading "the registry leader, as n3 sees it"
on n3 leader

heading "register $NAME again, from n3: taken (exit 5)"
taken_status=0
on n3 register "$NAME" --hold 0 || taken_status=$?
[ "$taken_status" -eq 5 ] || fail "a second register of $NAME exited with $taken_status, not 5 (taken)"

heading "stop the holder (pid $holder_pid): its session ends and the name is released"
MESH_STOP_GRACE=5 mesh_stop_pids "$holder_pid"
holder_status=0
wait "$holder_pid" || holder_status=$?
forget_helper "$holder_pid"
[ "$holder_status" -eq 0 ] ||
  fail "meshbus register exited with $holder_status: $(cat "$DIR/register.err")"
start_ms="$(date +%s%3N)"
# Released: n3 answers not_registered (exit 5); any other error is no answer.
n3_released() {
  local status=0
  on n3 whereis "$NAME" >/dev/null 2>&1 || status=$?
  [ "$status" -eq 5 ]
}
wait_until 5 n3_released || fail "n3 still lists $NAME 5 s after its holder stopped"
echo "released on n3 after about $(($(date +%s%3N) - start_ms)) ms:"
on n3 whereis "$NAME" || true
echo "names on n3 now:"
on n3 names

heading "the event store's coordination layer: meshbus-eventstore-demo (a 3-node mesh of its own)"
"$MESH_BIN_DIR/meshbus-eventstore-demo" || fail "meshbus-eventstore-demo failed"

heading "demo: ok (stopping everything)"
