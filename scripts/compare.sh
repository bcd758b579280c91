#!/usr/bin/env bash
# What `make compare` runs (issue #6): installs the peers from Debian's
# packages if missing (nats-server, erlang-nox, gnuplot), then runs
# build/bin/meshbus-compare, which measures meshbus, raw libzmq, a 3-server
# NATS cluster and Erlang/OTP pg on 3 nodes on the same shapes of work, 3 runs
# each, on loopback only, and stops every process it started by its pid.
# Writes build/compare/compare.txt (the table), compare.csv and compare.png
# (the ratios as a chart).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
out="$repo/build/compare"
bin="${MESHBUS_BIN_DIR:-$repo/build/bin}"

"$here/install-deps.sh" nats-server gnuplot-nox erlang-nox

mkdir -p "$out"
# Bounded: every part stops by itself; this is the outer bound.
timeout 900 "$bin/meshbus-compare" "$out/compare.csv" | tee "$out/compare.txt"

# The chart: meshbus's advantage per row (above 1: meshbus is better).
gnuplot <<GNUPLOT
set terminal pngcairo size 1200,600 noenhanced
set output "$out/compare.png"
set datafile separator ","
set title "meshbus against its peers on $(hostname), $(date -u +%Y-%m-%d): advantage (>1: meshbus better)"
set style fill solid 0.6
set boxwidth 0.6
set logscale y 2
set yrange [0.03:20]
set grid ytics
set xtics rotate by -30 font ",8"
set key off
set rmargin 10
plot "$out/compare.csv" every ::1 using 0:(\$11 > 0 ? \$11 : 1/0):xtic(1) with boxes, 1 with lines lc rgb "black"
GNUPLOT
echo "compare: table $out/compare.txt, csv $out/compare.csv, chart $out/compare.png"
