#!/usr/bin/env bash
# Side by side: pinus 1.7.4 (bench/pinus-app) vs the gatehouse example gate, driven by the same
# client (loadgen/, the gatehouse-loadgen crate) in one run, loopback only. Prints one table with the
# gatehouse/pinus ratio per figure, plus gatehouse's 1 vs 2 I/O thread push rate.
#
#   bench/compare.sh                 1,000 clients (all scenarios) + 10,000 clients (blast)
#   COMPARE_10K=0 bench/compare.sh   skip the 10,000-client runs
#   COMPARE_SECONDS=5 COMPARE_CLIENTS=1000 ... other knobs (see below)
#   COMPARE_SCALE="100 300 1000"     client counts of the scaling sweep (blast only, both
#                                    servers; default 100 300 1000 3000 10000, 10000 only with
#                                    COMPARE_10K=1; empty: no sweep)
#
# Then it draws SVG charts of the results (the `charts` crate; bench/charts.sh redraws them):
# latency CDFs, server CPU per push and per setup, memory per session, pushes/s vs connections.
#
# Raw JSON of every run goes to bench/results/<UTC timestamp>/ (ignored by git), the table to
# stdout and to that folder's table.txt. Everything this script starts is stopped by PID
# (trap on exit); every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
APP=$ROOT/bench/pinus-app
CLIENTS=${COMPARE_CLIENTS:-1000}
SECONDS_PER=${COMPARE_SECONDS:-5}
RUN_10K=${COMPARE_10K:-1}
SCALE=${COMPARE_SCALE-100 300 1000 3000 10000}
for n in $SCALE; do
  case $n in ''|0*|*[!0-9]*) echo "compare.sh: COMPARE_SCALE: $n is not a client count" >&2; exit 1 ;; esac
done
PINUS_PORT=13010 # config/servers.json clientPort
OUT=$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
LOADGEN=$ROOT/target/release/loadgen
GATE=$ROOT/target/release/examples/gate

# --- pids we started, stopped on exit ---------------------------------------------------------
PIDS=()
stop_pid() { # pid: TERM, wait up to 5 s, then KILL
  local p=$1 i
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
}
cleanup() { local p; for p in "${PIDS[@]}"; do stop_pid "$p"; done; PIDS=(); }
trap cleanup EXIT INT TERM

hard=$(ulimit -Hn); want=$(( CLIENTS > 10000 ? CLIENTS + 1000 : 12000 ))
for n in $SCALE; do [ "$n" -lt "$want" ] || want=$(( n + 1000 )); done
if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then ulimit -n "$want"; fi

# --- build / install ----------------------------------------------------------------------------
command -v node >/dev/null && command -v npm >/dev/null || { echo "compare.sh: node and npm are needed" >&2; exit 1; }
if [ ! -d "$APP/node_modules/pinus" ]; then
  echo "compare.sh: npm install pinus@1.7.4 into bench/pinus-app/node_modules" >&2
  (cd "$APP" && timeout 300 npm install --no-audit --no-fund --loglevel=error)
fi
echo "compare.sh: building loadgen and gate (release)" >&2
cargo build --release --locked --quiet -p gatehouse-loadgen -p gatehouse --bin loadgen --example gate

loadgen() { # name, args... -> $OUT/name.json (progress in name.err)
  local name=$1; shift
  echo "compare.sh: loadgen $name: $*" >&2
  if ! timeout 600 "$LOADGEN" --json "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"; then
    echo "compare.sh: loadgen $name failed (see $OUT/$name.err)" >&2; tail -3 "$OUT/$name.err" >&2 || true
    # An empty result (the loadgen died before printing) would stop the charts: drop it.
    [ -s "$OUT/$name.json" ] || rm -f "$OUT/$name.json"
  fi
}

# --- pinus ----------------------------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_open "$PINUS_PORT"; then echo "compare.sh: port $PINUS_PORT already in use" >&2; exit 1; fi
start_pinus() {
  (cd "$APP" && exec node app.js) >"$OUT/pinus-$1.log" 2>&1 &
  MASTER=$!; PIDS+=("$MASTER")
  local i
  for i in $(seq 300); do port_open "$PINUS_PORT" && break; sleep 0.1; done
  port_open "$PINUS_PORT" || { echo "compare.sh: pinus did not listen in 30 s" >&2; tail "$OUT/pinus-$1.log" >&2; exit 1; }
  CONNECTOR=$(pgrep -P "$MASTER" -f 'id=connector-server-1' | head -1)
  [ -n "$CONNECTOR" ] || { echo "compare.sh: no connector-server-1 child of master $MASTER" >&2; exit 1; }
  PIDS+=("$CONNECTOR")
  echo "compare.sh: pinus master $MASTER, connector $CONNECTOR" >&2
}
stop_pinus() { stop_pid "$CONNECTOR"; stop_pid "$MASTER"; sleep 1; }

start_pinus 1k
loadgen pinus-1k --addr 127.0.0.1:$PINUS_PORT --server-pid "$CONNECTOR" --clients "$CLIENTS" --seconds "$SECONDS_PER"
stop_pinus
if [ "$RUN_10K" = 1 ]; then
  start_pinus 10k
  loadgen pinus-10k --addr 127.0.0.1:$PINUS_PORT --server-pid "$CONNECTOR" --clients 10000 --scenarios memory,blast --rounds 10 --blast-runs 1
  stop_pinus
fi

# --- gatehouse (loadgen starts and stops the gate itself) ------------------------------------------
loadgen gate-1k --spawn-gate --gate-bin "$GATE" --threads 2 --heartbeat 30 --clients "$CLIENTS" --seconds "$SECONDS_PER"
loadgen gate-1k-t1 --spawn-gate --gate-bin "$GATE" --threads 1 --heartbeat 30 --clients "$CLIENTS" --scenarios blast
if [ "$RUN_10K" = 1 ]; then
  loadgen gate-10k --spawn-gate --gate-bin "$GATE" --threads 2 --heartbeat 30 --clients 10000 --scenarios memory,blast --rounds 10 --blast-runs 1
fi

# --- scaling sweep: blast only, a fresh server per client count ---------------------------------
# About 100,000 pushes per run: rounds = max(10, 100000 / N), so small N do not finish in
# milliseconds and 10,000 clients take 10 rounds like the 10k runs above.
scale_rounds() { local r=$(( 100000 / $1 )); echo $(( r > 10 ? r : 10 )); }
for n in $SCALE; do
  if [ "$n" -ge 10000 ] && [ "$RUN_10K" != 1 ]; then continue; fi
  start_pinus "scale-$n"
  loadgen "pinus-scale-$n" --addr 127.0.0.1:$PINUS_PORT --server-pid "$CONNECTOR" --clients "$n" --scenarios blast --rounds "$(scale_rounds "$n")" --blast-runs 1
  stop_pinus
  loadgen "gate-scale-$n" --spawn-gate --gate-bin "$GATE" --threads 2 --heartbeat 30 --clients "$n" --scenarios blast --rounds "$(scale_rounds "$n")" --blast-runs 1
done

# --- table --------------------------------------------------------------------------------------
python3 - "$OUT" "$CLIENTS" <<'PY' | tee "$OUT/table.txt"
import json, os, sys
out, clients = sys.argv[1], sys.argv[2]
def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return {r["key"]: r["value"] for r in json.load(f)["rows"]}
    except Exception:
        return {}
def machine(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f).get("machine", {})
    except Exception:
        return {}
p1, g1, t1 = load("pinus-1k"), load("gate-1k"), load("gate-1k-t1")
p10, g10 = load("pinus-10k"), load("gate-10k")
rows = [  # label, key, unit, higher is better, pinus run, gate run
    (f"sessions/s, setup of {clients}", "setup.rate", "sessions/s", True, p1, g1),
    ("server CPU per session setup", "setup.server_cpu_per_setup", "µs", False, p1, g1),
    (f"delivered pushes/s, {clients} clients", "blast.pushes_per_s", "pushes/s", True, p1, g1),
    (f"server CPU per push, {clients} clients", "blast.server_cpu_per_push", "µs", False, p1, g1),
    (f"push delivery latency p99, {clients} clients", "blast.latency_p99", "ms", False, p1, g1),
    ("delivered pushes/s, 10,000 clients", "blast.pushes_per_s", "pushes/s", True, p10, g10),
    ("server CPU per push, 10,000 clients", "blast.server_cpu_per_push", "µs", False, p10, g10),
    ("push delivery latency p99, 10,000 clients", "blast.latency_p99", "ms", False, p10, g10),
    ("RTT p50 at 1,000 req/s", "echo.rtt_p50", "µs", False, p1, g1),
    ("RTT p99 at 1,000 req/s", "echo.rtt_p99", "µs", False, p1, g1),
    ("saturation req/s (closed loop)", "saturation.req_per_s", "req/s", True, p1, g1),
    (f"RSS per idle bound session, {clients}", "memory.rss_per_session", "B", False, p1, g1),
    ("RSS per idle bound session, 10,000", "memory.rss_per_session", "B", False, p10, g10),
]
def fmt(v):
    if v is None: return "—"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"
print(f"| figure | unit | pinus 1.7.4 | gatehouse | gatehouse/pinus | gatehouse better by |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for label, key, unit, higher, p, g in rows:
    pv, gv = p.get(key), g.get(key)
    ratio = gv / pv if pv and gv is not None else None
    better = None
    if pv and gv:
        better = gv / pv if higher else pv / gv
    print(f"| {label} | {unit} | {fmt(pv)} | {fmt(gv)} | {('%.3g' % ratio) if ratio is not None else '—'} | {('%.3g×' % better) if better else '—'} |")
a, b = t1.get("blast.pushes_per_s"), g1.get("blast.pushes_per_s")
print()
print(f"gatehouse pushes/s, {clients} clients: 1 I/O thread {fmt(a)}, 2 I/O threads {fmt(b)}, ratio 2/1 = {('%.2f' % (b / a)) if a and b else '—'}")
for name in ["pinus-1k", "pinus-10k", "gate-1k", "gate-1k-t1", "gate-10k"]:
    m = machine(name)
    if m:
        print(f"{name}: loadavg {m.get('loadavg_start')} -> {m.get('loadavg_end')}, machine busy {m.get('cpu_busy_pct', 0):.0f}%, server {m.get('server_cpu_pct', 0):.0f}%, loadgen {m.get('loadgen_cpu_pct', 0):.0f}% (of all cores)")
PY
echo "compare.sh: raw results in ${OUT#$ROOT/}" >&2

# --- charts (built now: nothing is measured any more) ---------------------------------------------
echo "compare.sh: building charts (release)" >&2
if cargo build --release --locked --quiet -p gatehouse-charts \
  && "$ROOT/target/release/charts" "$OUT" >"$OUT/charts.txt"; then
  echo "compare.sh: charts (bench/charts.sh ${OUT#$ROOT/} redraws them):" >&2
  sed "s|^$ROOT/||" "$OUT/charts.txt" >&2
else
  echo "compare.sh: no charts drawn (see the messages above)" >&2
fi
