#!/usr/bin/env bash
# Runs the tests of an AddressSanitizer + UBSan build (make sanitize builds it).
# Every process, the brokers and CLI that the process tests start included,
# writes any sanitizer report into one directory; a report there fails the run
# even when the process that wrote it was a broker whose exit nobody checked.
# Leaks are checked too, at the exit of every process that exits normally (a
# broker a test kills with SIGKILL is not checked).
set -uo pipefail

build="$(cd "${1:?usage: sanitize-run.sh BUILD_DIR}" && pwd)"
repo="$(cd "$(dirname "$0")/.." && pwd)"
reports="$build/reports"
rm -rf "$reports" && mkdir -p "$reports"

export ASAN_OPTIONS="detect_leaks=1:log_path=$reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/ubsan"
export MESHBUS_BIN_DIR="$build/bin" MESHBUS_SCRIPTS_DIR="$repo/scripts"

failed=0
for t in unit_test mesh_test process_test compare_test; do
  echo "== $t"
  "$build/bin/$t" || failed=1
done

if [ -n "$(ls -A "$reports")" ]; then
  echo "sanitizer reports in $reports:"
  for f in "$reports"/*; do echo "--- $f"; cat "$f"; done
  failed=1
fi
if [ "$failed" -ne 0 ]; then echo "sanitize: FAILED"; exit 1; fi
echo "sanitize: all tests passed, no sanitizer reports"
