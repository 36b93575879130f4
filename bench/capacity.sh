#!/usr/bin/env bash
# Capacity: how many sessions the example gate holds with heartbeats on this machine, and its
# RSS per session at 10,000 and at that many. One loadgen run per size (scenarios memory,hold):
# connect and bind every client, measure RSS, then hold them all for several heartbeat
# intervals and check the gate still has every one.
#
#   bench/capacity.sh                       up to 100,000 clients (fewer if the fd limit says so)
#   CAPACITY_CLIENTS=50000 bench/capacity.sh
#   CAPACITY_HEARTBEAT=10 CAPACITY_HOLD=30  heartbeat interval and hold time, seconds
#
# Each client costs one file descriptor in the loadgen and one in the gate, and both processes
# inherit this script's RLIMIT_NOFILE. The script raises the soft limit to the hard one, and
# the hard one too where that is allowed (root with CAP_SYS_RESOURCE, up to fs.nr_open); when
# the hard limit still caps the run below CAPACITY_CLIENTS it runs as many as fit and says so.
# Past one address's ephemeral ports (~28k) the loadgen spreads clients over 127.0.0.x source
# addresses by itself. Raw JSON goes to bench/results/capacity-<UTC timestamp>/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WANT=${CAPACITY_CLIENTS:-100000}
HEARTBEAT=${CAPACITY_HEARTBEAT:-10}
HOLD=${CAPACITY_HOLD:-$((HEARTBEAT * 3))}
OUT=$ROOT/bench/results/capacity-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
LOADGEN=$ROOT/target/release/loadgen
GATE=$ROOT/target/release/examples/gate
MARGIN=200 # fds beyond the clients: listener, epoll, wakers, stdio, the control connection

# --- the open-file limit ----------------------------------------------------------------------
need=$((WANT + MARGIN))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  nr_open=$(cat /proc/sys/fs/nr_open 2>/dev/null || echo "$need")
  target=$(( need < nr_open ? need : nr_open ))
  if ulimit -Hn "$target" 2>/dev/null; then
    echo "capacity.sh: raised the hard open-file limit from $hard to $target" >&2
  else
    echo "capacity.sh: the hard open-file limit is $hard and this user may not raise it" \
      "(needs CAP_SYS_RESOURCE; as root outside a restricted container: ulimit -Hn $need," \
      "or /etc/security/limits.conf)" >&2
  fi
  hard=$(ulimit -Hn)
fi
ulimit -n "$hard"
CLIENTS=$WANT
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  CLIENTS=$((hard - MARGIN))
  echo "capacity.sh: RLIMIT_NOFILE $hard caps this run at $CLIENTS clients (of $WANT asked)" >&2
fi
SMALL=$(( CLIENTS < 10000 ? CLIENTS : 10000 ))

echo "capacity.sh: building loadgen and gate (release)" >&2
cargo build --release --locked --quiet -p gatehouse-loadgen -p gatehouse --bin loadgen --example gate

run() { # name clients
  local name=$1 n=$2
  echo "capacity.sh: $name: $n clients, heartbeat $HEARTBEAT s, hold $HOLD s" >&2
  if ! timeout $((600 + HOLD)) "$LOADGEN" --json --spawn-gate --gate-bin "$GATE" --threads 2 \
      --heartbeat "$HEARTBEAT" --hold "$HOLD" --clients "$n" \
      --scenarios memory,hold >"$OUT/$name.json" 2>"$OUT/$name.err"; then
    echo "capacity.sh: loadgen $name failed (see $OUT/$name.err)" >&2
    tail -5 "$OUT/$name.err" >&2 || true
  fi
}
run small "$SMALL"
[ "$CLIENTS" -gt "$SMALL" ] && run large "$CLIENTS"

# --- table --------------------------------------------------------------------------------------
python3 - "$OUT" "$WANT" "$CLIENTS" "$hard" <<'PY' | tee "$OUT/table.txt"
import json, os, sys
out, want, clients, hard = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            j = json.load(f)
        return j, {r["key"]: r["value"] for r in j["rows"]}
    except Exception:
        return None, {}
def fmt(v, unit=""):
    if v is None: return "—"
    s = f"{v:,.0f}" if abs(v) >= 100 or v == int(v) else f"{v:,.2f}"
    return f"{s} {unit}".rstrip()
print("| clients | bound | held at the end | lost while holding | heartbeats received | RSS/session after setup | RSS/session at the end | server CPU while holding | setup rate | ok |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for name in ["small", "large"]:
    j, r = load(name)
    if j is None:
        continue
    n = j["settings"]["clients"]
    print(f"| {n:,} | {fmt(r.get('setup.bound'))} | {fmt(r.get('hold.sessions'))} | {fmt(r.get('hold.lost'))} "
          f"| {fmt(r.get('hold.heartbeats'))} | {fmt(r.get('memory.rss_per_session'), 'B')} "
          f"| {fmt(r.get('hold.rss_per_session'), 'B')} | {fmt(r.get('hold.server_cpu'), '% core')} "
          f"| {fmt(r.get('setup.rate'), '/s')} | {'yes' if j['ok'] else 'NO: ' + '; '.join(j['failures'])} |")
    for w in j.get("warnings", []):
        print(f"warning ({name}): {w}")
print()
print(f"asked for {want:,} clients; RLIMIT_NOFILE {hard}; ran {clients:,}"
      + ("" if clients >= want else f" — {want:,} is not reachable here: each session needs a file descriptor in the gate"))
PY
echo "capacity.sh: raw results in ${OUT#$ROOT/}" >&2
