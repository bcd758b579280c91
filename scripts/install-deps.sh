#!/usr/bin/env bash
# Installs meshbus's build and test dependencies from Debian's packages, or,
# given package names, those instead (scripts/compare.sh: the peers).
# Idempotent: quiet and quick when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libzmq3-dev        # the transport: PUB/SUB, ROUTER/DEALER, ipc and tcp
  cppzmq-dev         # RAII C++ bindings over libzmq (header-only)
  libmsgpack-cxx-dev # the wire codec (header-only)
  libcli11-dev       # flag and config-file parsing for meshbusd and meshbus
  nlohmann-json3-dev # --json output of the CLI
  libgtest-dev       # unit and integration tests
  iproute2           # network namespaces for scripts/netns-mesh.sh
  procps             # pgrep/ps for the scripts
)

if [ $# -gt 0 ]; then packages=("$@"); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to apt-get install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
