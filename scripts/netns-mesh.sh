#!/usr/bin/env bash
# A mesh of N brokers, each in its own network namespace, as if each ran on
# a host of its own. Requires root.
#
#   up N [--dir DIR] [-- MESHBUSD_FLAGS...]   create the namespaces, start the brokers
#   down [--dir DIR]                          stop the brokers, delete everything (idempotent)
#   exec NAME CMD...                          run CMD inside node NAME's namespace
#   cut A B                                   drop all traffic between nodes A and B
#   heal A B                                  undo `cut A B`
#
# Layout: node ni lives in namespace mb-ni, with eth0 = 10.77.0.(10+i)/24,
# joined by a veth pair (mb-ni in the root namespace) to the bridge mb-br0.
# The bridge has no address and the namespaces have no default route, so
# 10.77.0.0/24 reaches nothing but these namespaces. Broker ni listens on
# tcp://10.77.0.(10+i):7100; its clients connect to ipc://DIR/ni.ipc from
# any namespace (ipc endpoints are filesystem paths). As with mesh-up.sh,
# every broker gets --voters with the first five nodes and --data-dir
# DIR/ni.raft (removed by `down`), unless MESHBUSD_FLAGS give their own.
set -euo pipefail

usage() {
  cat >&2 <<EOF
usage: $(basename "$0") up N [--dir DIR] [-- MESHBUSD_FLAGS...]
       $(basename "$0") down [--dir DIR]
       $(basename "$0") exec NAME CMD...
       $(basename "$0") cut A B
       $(basename "$0") heal A B
EOF
  exit 2
}

# shellcheck source=scripts/mesh-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/mesh-lib.sh"

BRIDGE=mb-br0
SUBNET_PREFIX=10.77.0     # a /24 that exists only on our bridge
PORT=7100
MAX_NODES=200             # addresses .11 to .210
WAIT_SECONDS=15

ns_of() { echo "mb-$1"; }                          # n3 -> mb-n3
index_of() { echo "${1#n}"; }                      # n3 -> 3
addr_of() { echo "$SUBNET_PREFIX.$((10 + $(index_of "$1")))"; }

# "n3" or "mb-n3" -> "n3", checking that such a namespace exists.
node_arg() {
  local name="${1#mb-}"
  [[ "$name" =~ ^n[1-9][0-9]*$ ]] || mesh_die "bad node name '$1' (expected n1, n2, ...)"
  grep -qx "$(ns_of "$name")" <<<"$(our_namespaces)" ||
    mesh_die "no namespace $(ns_of "$name"): is the mesh up?"
  echo "$name"
}

require_root() {
  [ "$(id -u)" -eq 0 ] || mesh_die "needs root (network namespaces, veths and a bridge): run with sudo"
  command -v ip >/dev/null || mesh_die "needs ip (iproute2): scripts/install-deps.sh"
}

# Our namespaces, by name (mb-n1 ...).
our_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^mb-n[0-9]+$' || true
}

# ---- up ----------------------------------------------------------------------

UP_SUCCEEDED=0
UP_DIR=""
on_up_exit() {
  if [ "$UP_SUCCEEDED" -ne 1 ]; then
    mesh_log "up failed: tearing down what it made"
    cmd_down --dir "$UP_DIR"
  fi
}

create_node_network() {
  local node="$1" ns veth
  ns="$(ns_of "$node")"
  veth="mb-$node"  # the root-namespace end; the other end is eth0 inside
  ip netns add "$ns"
  ip link add "$veth" type veth peer name "$veth-ns"
  ip link set "$veth-ns" netns "$ns"
  ip -n "$ns" link set "$veth-ns" name eth0
  ip -n "$ns" addr add "$(addr_of "$node")/24" dev eth0
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip link set "$veth" master "$BRIDGE"
  ip link set "$veth" up
}

cmd_up() {
  local count="" dir="$MESH_REPO/.mesh/netns" extra_flags=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) [ $# -ge 2 ] || usage; dir="$2"; shift 2 ;;
      --) shift; extra_flags=("$@"); break ;;
      -*) usage ;;
      *) [ -z "$count" ] || usage; count="$1"; shift ;;
    esac
  done
  if ! [[ "$count" =~ ^[1-9][0-9]*$ ]] || [ "$count" -gt $MAX_NODES ]; then usage; fi
  require_root
  mesh_require_binaries
  dir="$(mesh_abs_dir "$dir")"
  mesh_check_ipc_path "$dir/n$count.ipc"

  if [ -n "$(our_namespaces)" ] || ip link show "$BRIDGE" >/dev/null 2>&1; then
    mesh_die "a netns mesh is already up (namespaces mb-n* or bridge $BRIDGE exist): run '$0 down' first"
  fi
  # The subnet must be ours alone: refuse if the root namespace uses it.
  local addrs routes
  addrs="$(ip -4 addr show | grep "inet $SUBNET_PREFIX\." || true)"
  routes="$(ip -4 route show to match "$SUBNET_PREFIX.1" | grep -v '^default' || true)"
  if [ -n "$addrs" ] || [ -n "$routes" ]; then
    mesh_die "$SUBNET_PREFIX.0/24 is already in use on this host; not touching it"
  fi

  # From here on, a failure tears down what was made.
  UP_DIR="$dir"
  trap on_up_exit EXIT

  ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" up
  local i node
  for ((i = 1; i <= count; i++)); do create_node_network "n$i"; done

  for ((i = 1; i <= count; i++)); do
    node="n$i"
    local flags=(--node "$node" --listen "tcp://$(addr_of "$node"):$PORT" --client "ipc://$dir/$node.ipc")
    if [ "$i" -gt 1 ]; then flags+=(--seed "tcp://$(addr_of n1):$PORT"); fi
    if [ "$i" -gt 2 ]; then flags+=(--seed "tcp://$(addr_of n2):$PORT"); fi
    mesh_registry_flags "$node" "$count" "$dir" "${extra_flags[@]}"
    flags+=("${MESH_REGISTRY_FLAGS[@]}")
    rm -f "$dir/$node.ipc"
    rm -rf "$dir/$node.raft"  # a previous mesh's registry state: this is a new mesh
    # `ip netns exec` execs the command: $! is the broker's pid.
    ip netns exec "$(ns_of "$node")" "$MESH_BIN_DIR/meshbusd" "${flags[@]}" "${extra_flags[@]}" \
      </dev/null >"$dir/$node.log" 2>&1 &
    echo "$!" >"$dir/$node.pid"
  done
  mesh_log "started $count broker(s) in namespaces; waiting up to ${WAIT_SECONDS} s for the mesh"

  local deadline=$((SECONDS + WAIT_SECONDS)) left message
  for ((i = 1; i <= count; i++)); do
    left=$((deadline - SECONDS))
    [ "$left" -ge 1 ] || left=1
    if ! message="$("$MESH_BIN_DIR/meshbus" -b "ipc://$dir/n$i.ipc" \
                      wait --nodes "$count" --timeout "$left" 2>&1)"; then
      mesh_log "n$i does not see all $count nodes alive: $message"
      mesh_show_log "$dir/n$i.log"
      if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" = 1 ]; then
        mesh_log "note: bridged traffic goes through iptables here (bridge-nf-call-iptables=1);" \
                 "a FORWARD policy of DROP would block the mesh"
      fi
      exit 1
    fi
  done
  UP_SUCCEEDED=1
  for ((i = 1; i <= count; i++)); do
    echo "n$i ipc://$dir/n$i.ipc $(addr_of "n$i")"
  done
}

# ---- down --------------------------------------------------------------------

cmd_down() {
  local dir="$MESH_REPO/.mesh/netns"
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) [ $# -ge 2 ] || usage; dir="$2"; shift 2 ;;
      *) usage ;;
    esac
  done
  require_root
  if [ -d "$dir" ]; then mesh_stop_dir "$dir"; fi

  local ns pids link
  for ns in $(our_namespaces); do
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
    if [ -n "$pids" ]; then
      mesh_log "still running in $ns (not ours to kill): pids $pids; the namespace lives until they exit"
    fi
    ip netns delete "$ns" 2>/dev/null || true
  done
  # Deleting a namespace deletes its veth end and so the pair; catch leftovers.
  for link in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 |
                grep -E '^mb-n[0-9]+$' || true); do
    ip link delete "$link" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
  return 0
}

# ---- exec, cut, heal ---------------------------------------------------------

cmd_exec() {
  [ $# -ge 2 ] || usage
  require_root
  local node
  node="$(node_arg "$1")"
  shift
  exec ip netns exec "$(ns_of "$node")" "$@"
}

# Blackhole routes on both sides: A drops what it would send to B and B
# what it would send to A, so nothing passes either way. Idempotent.
cmd_cut() {
  [ $# -eq 2 ] || usage
  require_root
  local a b
  a="$(node_arg "$1")"
  b="$(node_arg "$2")"
  [ "$a" != "$b" ] || mesh_die "cannot cut $a from itself"
  ip -n "$(ns_of "$a")" route replace blackhole "$(addr_of "$b")/32"
  ip -n "$(ns_of "$b")" route replace blackhole "$(addr_of "$a")/32"
  mesh_log "cut $a <-/-> $b"
}

cmd_heal() {
  [ $# -eq 2 ] || usage
  require_root
  local a b from to pair
  a="$(node_arg "$1")"
  b="$(node_arg "$2")"
  for pair in "$a $b" "$b $a"; do
    read -r from to <<<"$pair"
    if [ -n "$(ip -n "$(ns_of "$from")" route show type blackhole "$(addr_of "$to")/32")" ]; then
      ip -n "$(ns_of "$from")" route delete blackhole "$(addr_of "$to")/32"
    fi
  done
  mesh_log "healed $a <---> $b"
}

[ $# -ge 1 ] || usage
command="$1"
shift
case "$command" in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  exec) cmd_exec "$@" ;;
  cut) cmd_cut "$@" ;;
  heal) cmd_heal "$@" ;;
  *) usage ;;
esac
