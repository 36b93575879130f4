#!/usr/bin/env bash
# Session setup cost against its floor: the gate's server CPU per session setup next to that of
# examples/setup_floor.rs (one thread, canned bytes, the same wire exchange and nothing else),
# driven by the same load generator in one run, then the syscalls per setup of each.
#
#   bench/setup_floor.sh
#   FLOOR_RUNS=5 FLOOR_CLIENTS=5000 FLOOR_GATE_THREADS=2 bench/setup_floor.sh
#   FLOOR_STRACE=0 bench/setup_floor.sh          skip the syscall counts
#
# 1. Builds loadgen, gate and setup_floor (release).
# 2. FLOOR_RUNS times (default 3), interleaved gate, floor, gate, floor, …: starts the server on
#    a free loopback port (the gate with --threads FLOOR_GATE_THREADS, default 1, like the
#    floor; heartbeat 30 s for both), runs `loadgen --addr … --server-pid … --scenarios setup
#    --clients FLOOR_CLIENTS` (default 2000, at most 64 handshakes in flight) and keeps its
#    "server CPU per session setup" (schedstat of every server thread over the setup phase),
#    then stops the server by its pid.
# 3. Unless FLOOR_STRACE=0: for each server once more, `strace -c -f -p PID` attached from
#    before the load generator connects until its setup phase is over (it then holds the
#    sessions, so no close is counted), and the calls of each syscall divided by the
#    connections set up (FLOOR_CLIENTS + the load generator's control connection, which also
#    asks for `stats` once). strace slows the server, so these runs give counts, not times.
#    Without strace: `apt-get install strace` (Debian/Ubuntu), or FLOOR_STRACE=0.
# 4. Prints a table: each run's figures, then gate and floor µs per setup and gate/floor
#    (median of the runs, min–max), and the syscalls per setup of both, side by side.
# Raw output goes to bench/results/floor-<UTC timestamp>/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${FLOOR_RUNS:-3}
CLIENTS=${FLOOR_CLIENTS:-2000}
THREADS=${FLOOR_GATE_THREADS:-1}
STRACE=${FLOOR_STRACE:-1}
HEARTBEAT=30
BIN=$ROOT/target/release/examples
LOADGEN=$ROOT/target/release/loadgen
OUT=$ROOT/bench/results/floor-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"

if [ "$STRACE" != 0 ] && ! command -v strace >/dev/null; then
  echo "setup_floor.sh: strace is not installed: apt-get install strace (or FLOOR_STRACE=0)" >&2
  exit 1
fi
need=$((CLIENTS + 100))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || {
    echo "setup_floor.sh: needs ulimit -n >= $need (hard limit $(ulimit -Hn))" >&2
    exit 1
  }
fi

echo "setup_floor.sh: building loadgen, gate and setup_floor (release)" >&2
cargo build --release --locked --quiet -p gatehouse-loadgen -p gatehouse --bin loadgen --example gate --example setup_floor

SERVER_PID=
STRACE_PID=
stop_pid() { # pid: TERM, up to 5 s, then KILL
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  [ -z "$STRACE_PID" ] || kill -INT "$STRACE_PID" 2>/dev/null || true
  stop_pid "$SERVER_PID"
}
trap cleanup EXIT

# Starts server $1 (gate|floor); sets SERVER_PID and SERVER_ADDR from its first line.
start_server() {
  local name=$1 log=$2
  case $name in
    gate) "$BIN/gate" --addr 127.0.0.1:0 --threads "$THREADS" --heartbeat "$HEARTBEAT" \
            --seconds 600 >"$log" 2>&1 & ;;
    floor) "$BIN/setup_floor" --addr 127.0.0.1:0 --heartbeat "$HEARTBEAT" \
             --seconds 600 >"$log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 100); do
    if grep -q "listening on" "$log" 2>/dev/null; then break; fi
    sleep 0.05
  done
  SERVER_ADDR=$(sed -n 's/^[a-z]*: listening on \([^ ]*\) .*/\1/p' "$log" | head -1)
  if [ -z "$SERVER_ADDR" ]; then
    echo "setup_floor.sh: $name did not report listening: $(cat "$log")" >&2
    exit 1
  fi
}

# The loadgen JSON's value for row key $2.
row() { jq -r --arg k "$2" '.rows[] | select(.key == $k) | .value' "$1"; }

declare -A CPU
for r in $(seq "$RUNS"); do
  for name in gate floor; do
    start_server "$name" "$OUT/$name-$r.server"
    if ! "$LOADGEN" --json --addr "$SERVER_ADDR" --server-pid "$SERVER_PID" \
        --scenarios setup --clients "$CLIENTS" >"$OUT/$name-$r.json" 2>"$OUT/$name-$r.err"; then
      echo "setup_floor.sh: loadgen failed against $name (run $r): see $OUT/$name-$r.err" >&2
      exit 1
    fi
    stop_pid "$SERVER_PID"
    SERVER_PID=
    bound=$(row "$OUT/$name-$r.json" setup.bound)
    CPU[$name,$r]=$(row "$OUT/$name-$r.json" setup.server_cpu_per_setup)
    printf 'run %d %-5s: %s of %s bound, server CPU per setup %.1f µs, %s sessions/s\n' \
      "$r" "$name" "$bound" "$CLIENTS" "${CPU[$name,$r]}" \
      "$(printf '%.0f' "$(row "$OUT/$name-$r.json" setup.rate)")" >&2
  done
done

# median and min–max of the arguments
stats() { # decimals values…
  local d=$1
  shift
  printf '%s\n' "$@" | sort -g | awk -v d="$d" '{v[NR]=$1} END {
    m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
    f = "%." d "f"; printf f " (" f "–" f ")", m, v[1], v[NR] }'
}
gate=() floor=() ratio=()
for r in $(seq "$RUNS"); do
  gate+=("${CPU[gate,$r]}")
  floor+=("${CPU[floor,$r]}")
  ratio+=("$(awk -v g="${CPU[gate,$r]}" -v f="${CPU[floor,$r]}" 'BEGIN {printf "%.3f", g / f}')")
done

strace_setup() { # name: one setup phase under strace -c -f; writes $OUT/$name.strace
  local name=$1 log=$OUT/$name-strace.server
  start_server "$name" "$log"
  strace -c -f -p "$SERVER_PID" -o "$OUT/$name.strace" 2>"$OUT/$name.strace.err" &
  STRACE_PID=$!
  sleep 1 # strace attaches to every thread
  # The hold scenario follows setup: its first line marks the end of the setup phase, and the
  # sessions stay open (no close is counted) until strace has detached.
  "$LOADGEN" --json --addr "$SERVER_ADDR" --server-pid "$SERVER_PID" --clients "$CLIENTS" \
    --scenarios hold --hold 5 >"$OUT/$name-strace.json" 2>"$OUT/$name-strace.err" &
  local lg=$!
  for _ in $(seq 600); do
    if grep -q "scenario hold" "$OUT/$name-strace.err"; then break; fi
    sleep 0.1
  done
  kill -INT "$STRACE_PID"
  wait "$STRACE_PID" || true
  STRACE_PID=
  wait "$lg" || true
  stop_pid "$SERVER_PID"
  SERVER_PID=
}

# "name calls-per-setup" lines from an strace -c summary (connections = clients + control).
per_setup() {
  awk -v n=$((CLIENTS + 1)) '/^-/ {sep++; next} sep == 1 && NF >= 5 {
    printf "%s %.2f %.2f\n", $NF, $4 / n, (NF == 6 ? $5 : 0) / n }' "$1"
}

echo
echo "Session setup: server CPU per setup, gate (--threads $THREADS) vs setup_floor"
echo "load: loadgen --scenarios setup --clients $CLIENTS (64 handshakes in flight), heartbeat" \
  "$HEARTBEAT s; $RUNS interleaved runs; $(nproc) cores, load average at end" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | gate µs/setup | floor µs/setup | gate/floor |"
echo "| ---: | ---: | ---: | ---: |"
for r in $(seq "$RUNS"); do
  printf '| %d | %.1f | %.1f | %.2f× |\n' "$r" "${CPU[gate,$r]}" "${CPU[floor,$r]}" \
    "${ratio[$((r - 1))]}"
done
printf '| median (min–max) | %s | %s | %s× |\n' "$(stats 1 "${gate[@]}")" \
  "$(stats 1 "${floor[@]}")" "$(stats 2 "${ratio[@]}")"

if [ "$STRACE" != 0 ]; then
  echo "setup_floor.sh: counting syscalls (strace -c -f) over one setup phase each" >&2
  strace_setup gate
  strace_setup floor
  per_setup "$OUT/gate.strace" >"$OUT/gate.per-setup"
  per_setup "$OUT/floor.strace" >"$OUT/floor.per-setup"
  echo
  echo "Syscalls per setup ($((CLIENTS + 1)) connections under strace -c -f; errors in brackets;" \
    "rows under 0.005 for both left out, counted in all)"
  echo
  echo "| syscall | gate | floor | gate − floor |"
  echo "| --- | ---: | ---: | ---: |"
  join -a1 -a2 -e 0 -o 0,1.2,1.3,2.2,2.3 <(sort "$OUT/gate.per-setup") \
    <(sort "$OUT/floor.per-setup") | sort -k2,2gr |
    awk '{ g += $2; f += $4 } $2 < 0.005 && $4 < 0.005 { next } {
      e1 = ($3 > 0) ? sprintf(" (%.2f)", $3) : ""; e2 = ($5 > 0) ? sprintf(" (%.2f)", $5) : ""
      printf "| %s | %.2f%s | %.2f%s | %+.2f |\n", $1, $2, e1, $4, e2, $2 - $4 } END { printf "| all | %.2f | %.2f | %+.2f |\n", g, f, g - f }'
fi
echo
echo "raw: $OUT"
