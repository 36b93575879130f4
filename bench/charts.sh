#!/usr/bin/env bash
# Redraws the SVG charts of one bench/compare.sh results directory (the `charts` crate):
#
#   bench/charts.sh                      the newest directory under bench/results/
#   bench/charts.sh DIR                  that directory (a compare.sh output or any directory of
#                                        loadgen --json files); the SVGs are written into it
#   bench/charts.sh DIR --out OUT        the SVGs go to OUT instead
#
# Prints the paths of the charts written; says on stderr which charts were not drawn and why.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  DIR=$1; shift
else
  DIR=$(find "$ROOT/bench/results" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | sort | tail -1)
  [ -n "$DIR" ] || { echo "charts.sh: no results under bench/results/ (run bench/compare.sh, or name a directory)" >&2; exit 1; }
fi
[ -d "$DIR" ] || { echo "charts.sh: $DIR is not a directory" >&2; exit 1; }
cargo build --release --locked --quiet -p gatehouse-charts
exec "$ROOT/target/release/charts" "$@" "$DIR"
