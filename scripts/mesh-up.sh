#!/usr/bin/env bash
# Starts a mesh of N meshbusd brokers on this machine, on loopback, and waits
# until every broker sees all N alive. Then prints one line per node:
#   NAME CLIENT_ENDPOINT
# Stop it with scripts/mesh-down.sh (same --dir).
#
# Node i is named ni, listens on tcp://127.0.0.1:$((BASE_PORT+i)), serves
# clients on ipc://DIR/ni.ipc, logs to DIR/ni.log and writes DIR/ni.pid.
# Every node but n1 uses n1 as a seed, and n3.. also use n2.
#
# The name registry: every node gets --voters with the first five nodes
# (n1,...,n5; the others follow without voting) and keeps its registry state
# in DIR/ni.raft (--data-dir), which mesh-down.sh removes. MESHBUSD_FLAGS that
# give their own --voters or --data-dir replace these.
set -euo pipefail

usage() {
  echo "usage: $(basename "$0") N [--dir DIR] [--base-port P] [-- MESHBUSD_FLAGS...]" >&2
  exit 2
}

# shellcheck source=scripts/mesh-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/mesh-lib.sh"

WAIT_SECONDS=15

# ---- arguments ----
count=""
dir="$MESH_REPO/.mesh"
base_port=17100
extra_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || usage; dir="$2"; shift 2 ;;
    --base-port) [ $# -ge 2 ] || usage; base_port="$2"; shift 2 ;;
    --) shift; extra_flags=("$@"); break ;;
    -h|--help) usage ;;
    -*) echo "$(basename "$0"): unknown flag $1" >&2; usage ;;
    *) [ -z "$count" ] || usage; count="$1"; shift ;;
  esac
done
[[ "$count" =~ ^[1-9][0-9]*$ ]] || usage
if ! [[ "$base_port" =~ ^[1-9][0-9]*$ ]] || [ $((base_port + count)) -gt 65535 ]; then
  mesh_die "bad --base-port $base_port for $count nodes"
fi

mesh_require_binaries
dir="$(mesh_abs_dir "$dir")"
mesh_check_ipc_path "$dir/n$count.ipc"

# A mesh already running from this directory is not ours to replace.
for ((i = 1; i <= count; i++)); do
  if [ -n "$(mesh_broker_pid "$dir/n$i.pid")" ]; then
    mesh_die "n$i is already running (pid file $dir/n$i.pid): run mesh-down.sh --dir $dir first"
  fi
  # Stale: a previous mesh's pid file and registry state (this is a new mesh).
  rm -f "$dir/n$i.pid"
  rm -rf "$dir/n$i.raft"
done

# ---- start ----
started=()  # pids of the brokers this run started
succeeded=0
on_exit() {
  if [ "$succeeded" -ne 1 ] && [ ${#started[@]} -gt 0 ]; then
    mesh_log "stopping the ${#started[@]} broker(s) started"
    mesh_stop_pids "${started[@]}"
    for ((i = 1; i <= count; i++)); do rm -rf "$dir/n$i.pid" "$dir/n$i.raft"; done
  fi
}
trap on_exit EXIT

listen_of() { echo "tcp://127.0.0.1:$((base_port + $1))"; }
client_of() { echo "ipc://$dir/n$1.ipc"; }

for ((i = 1; i <= count; i++)); do
  flags=(--node "n$i" --listen "$(listen_of "$i")" --client "$(client_of "$i")")
  if [ "$i" -gt 1 ]; then flags+=(--seed "$(listen_of 1)"); fi
  if [ "$i" -gt 2 ]; then flags+=(--seed "$(listen_of 2)"); fi
  mesh_registry_flags "n$i" "$count" "$dir" "${extra_flags[@]}"
  flags+=("${MESH_REGISTRY_FLAGS[@]}")
  "$MESH_BIN_DIR/meshbusd" "${flags[@]}" "${extra_flags[@]}" </dev/null >"$dir/n$i.log" 2>&1 &
  started+=("$!")
  echo "$!" >"$dir/n$i.pid"
done
mesh_log "started $count broker(s) in $dir; waiting up to ${WAIT_SECONDS} s for the mesh"

# ---- wait until every broker sees all N alive (one shared deadline) ----

# Names the brokers that already exited, with the end of their logs.
report_exited_brokers() {
  local j
  for ((j = 1; j <= count; j++)); do
    if ! mesh_is_running "${started[$((j - 1))]}"; then
      mesh_log "n$j (pid ${started[$((j - 1))]}) exited during start-up"
      mesh_show_log "$dir/n$j.log"
    fi
  done
}

any_exited() {
  local j
  for ((j = 1; j <= count; j++)); do
    mesh_is_running "${started[$((j - 1))]}" || return 0
  done
  return 1
}

# Waits in slices of a second, so that a broker exiting (a port taken, say)
# ends the wait at once rather than at the deadline.
deadline=$((SECONDS + WAIT_SECONDS))
for ((i = 1; i <= count; i++)); do
  pid="${started[$((i - 1))]}"
  while true; do
    if any_exited; then
      report_exited_brokers
      exit 1
    fi
    if message="$("$MESH_BIN_DIR/meshbus" -b "$(client_of "$i")" \
                    wait --nodes "$count" --timeout 1 2>&1)"; then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      mesh_log "n$i does not see all $count nodes alive: $message"
      report_exited_brokers
      mesh_is_running "$pid" && mesh_show_log "$dir/n$i.log"
      exit 1
    fi
  done
done

succeeded=1
for ((i = 1; i <= count; i++)); do
  echo "n$i $(client_of "$i")"
done
