# shellcheck shell=bash
# Shared helpers of the mesh scripts (mesh-up.sh, mesh-down.sh,
# netns-mesh.sh, demo.sh). Sourced, not run. Every process is handled by its
# pid, and every wait is bounded.

# The repository root and the directory holding meshbusd and meshbus.
MESH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MESH_BIN_DIR="${MESHBUS_BIN_DIR:-$MESH_REPO/build/bin}"

mesh_die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

mesh_log() {
  echo "$(basename "$0"): $*" >&2
}

# Fails unless meshbusd and meshbus are built.
mesh_require_binaries() {
  local b
  for b in meshbusd meshbus; do
    [ -x "$MESH_BIN_DIR/$b" ] ||
      mesh_die "$MESH_BIN_DIR/$b not found: build first (make build) or set MESHBUS_BIN_DIR"
  done
}

# An absolute path for a directory, created if missing.
mesh_abs_dir() {
  mkdir -p "$1" && (cd "$1" && pwd)
}

# The name registry's voters of a mesh of $1 nodes n1..nN: the first five,
# comma-separated (five tolerate two failures; more would only slow writes).
# Every node gets the same list, the others follow without voting.
MESH_MAX_VOTERS=5
mesh_voters() {
  local count="$1" i list=""
  for ((i = 1; i <= count && i <= MESH_MAX_VOTERS; i++)); do list+="${list:+,}n$i"; done
  echo "$list"
}

# True if the meshbusd flags after $1 set flag $1 ("--flag VALUE" or
# "--flag=VALUE"): the scripts then leave that flag to the caller.
mesh_has_flag() {
  local flag="$1" f
  shift
  for f in "$@"; do
    case "$f" in "$flag" | "$flag"=*) return 0 ;; esac
  done
  return 1
}

# The registry's flags for node $1 of a mesh of $2 nodes kept in directory $3,
# into the array MESH_REGISTRY_FLAGS: --voters (mesh_voters) and --data-dir
# $3/NODE.raft, each left out if the caller's flags (after $3) give their own.
mesh_registry_flags() {
  local node="$1" count="$2" dir="$3"
  shift 3
  MESH_REGISTRY_FLAGS=()
  if ! mesh_has_flag --voters "$@"; then
    MESH_REGISTRY_FLAGS+=(--voters "$(mesh_voters "$count")")
  fi
  if ! mesh_has_flag --data-dir "$@"; then
    MESH_REGISTRY_FLAGS+=(--data-dir "$dir/$node.raft")
  fi
}

# A Unix socket path is at most 107 bytes; ZeroMQ refuses longer ones with a
# confusing error, so say it plainly.
mesh_check_ipc_path() {
  local path="$1"
  [ "${#path}" -le 107 ] ||
    mesh_die "ipc path too long for a Unix socket (${#path} > 107 bytes): $path; use a shorter --dir"
}

# True if the process runs (a zombie, dead but not yet reaped, does not).
mesh_is_running() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "${state:0:1}" != "Z" ]
}

# The pid in a pid file, if the file holds one and that process is a
# meshbusd that still runs (a stale file may name a reused pid: leave that
# process alone). Prints nothing otherwise.
mesh_broker_pid() {
  local pid_file="$1" pid
  [ -f "$pid_file" ] || return 0
  pid="$(cat "$pid_file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  mesh_is_running "$pid" || return 0
  [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "meshbusd" ] || return 0
  echo "$pid"
}

# Stops processes by pid: SIGTERM, up to $MESH_STOP_GRACE seconds (default 5)
# for them to exit, then SIGKILL for the rest, and up to 2 s for those to go.
mesh_stop_pids() {
  local pids=() grace="${MESH_STOP_GRACE:-5}" pid deadline
  for pid in "$@"; do
    if mesh_is_running "$pid"; then
      pids+=("$pid")
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  [ ${#pids[@]} -gt 0 ] || return 0

  deadline=$((SECONDS + grace))
  while [ $SECONDS -lt $deadline ]; do
    local running=()
    for pid in "${pids[@]}"; do
      if mesh_is_running "$pid"; then running+=("$pid"); fi
    done
    [ ${#running[@]} -gt 0 ] || return 0
    sleep 0.1
  done

  for pid in "${pids[@]}"; do
    if mesh_is_running "$pid"; then
      mesh_log "pid $pid did not stop within ${grace} s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  deadline=$((SECONDS + 2))
  for pid in "${pids[@]}"; do
    while mesh_is_running "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  done
}

# Stops every broker with a pid file in a directory and removes the pid
# files, the ipc sockets and the registry data directories (NODE.raft).
mesh_stop_dir() {
  local dir="$1" pid_file pid pids=()
  for pid_file in "$dir"/*.pid; do
    [ -e "$pid_file" ] || continue
    pid="$(mesh_broker_pid "$pid_file")"
    if [ -n "$pid" ]; then pids+=("$pid"); fi
  done
  if [ ${#pids[@]} -gt 0 ]; then mesh_stop_pids "${pids[@]}"; fi
  for pid_file in "$dir"/*.pid; do
    [ -e "$pid_file" ] || continue
    rm -f "$pid_file" "${pid_file%.pid}.ipc"
    rm -rf "${pid_file%.pid}.raft"
  done
  if [ ${#pids[@]} -gt 0 ]; then
    mesh_log "stopped ${#pids[@]} broker(s) in $dir"
  fi
}

# Prints the last lines of a broker's log, indented, to stderr.
mesh_show_log() {
  local log="$1"
  [ -f "$log" ] || return 0
  echo "--- last lines of $log:" >&2
  tail -n 15 "$log" | sed 's/^/    /' >&2
}
