#!/usr/bin/env bash
# Stops the brokers that mesh-up.sh started: each one named by a pid file in
# DIR gets SIGTERM, up to 5 s to exit, then SIGKILL. Removes the pid files,
# the ipc sockets and the registry data directories (DIR/ni.raft); keeps logs.
# Safe to run twice, and on a directory with stale pid files.
set -euo pipefail

usage() {
  echo "usage: $(basename "$0") [--dir DIR]" >&2
  exit 2
}

# shellcheck source=scripts/mesh-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/mesh-lib.sh"

dir="$MESH_REPO/.mesh"
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || usage; dir="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "$(basename "$0"): unexpected argument $1" >&2; usage ;;
  esac
done

if [ ! -d "$dir" ]; then
  mesh_log "no mesh directory $dir: nothing to stop"
  exit 0
fi
MESH_STOP_GRACE=5 mesh_stop_dir "$dir"
