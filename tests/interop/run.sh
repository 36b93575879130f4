#!/usr/bin/env bash
# Interop test: third-party pomelo/pinus codecs (pinus-protocol@1.7.4 over TCP, TLS, ws 8 and
# wss, and the official pomelo-jsclient-websocket@0.1.1 client over ws and wss) against the
# gatehouse example gate.
#
#   tests/interop/run.sh            # from anywhere; needs node >= 18, npm, cargo
#
# Steps: npm ci (npm install only when there is no lock) in tests/interop; cargo build
# --features tls,prometheus --example gate --example test_ca; a fresh test CA and server certificate into
# this run's temporary directory (examples/test_ca.rs: nothing is committed); start ONE gate on a
# free loopback port (--addr 127.0.0.1:0, the port read back from its "gate: listening on ADDR
# (pid N)" line) with --tls-cert/--tls-key, so that port serves plain TCP/WS and TLS/WSS at once;
# run interop.js against it with --ca (plain and TLS cases alike); then a second gate with
# --dict --protos examples/protos for jsclient_proto.js (the official client with its protobuf
# module); stop both gates by PID. Exits non-zero if either script failed (or anything here);
# each script's last line is "interop: N passed, M failed" (.ci/run adds them up).
#
# Environment: INTEROP_HEARTBEAT (gate --heartbeat seconds, default 1), INTEROP_TIMEOUT_MS
# (per-step timeout of interop.js, default 3000), INTEROP_START_TIMEOUT (seconds to wait for the
# gate's listening line, default 30), CARGO (default cargo).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
heartbeat="${INTEROP_HEARTBEAT:-1}"
step_timeout="${INTEROP_TIMEOUT_MS:-3000}"
start_timeout="${INTEROP_START_TIMEOUT:-30}"
cargo="${CARGO:-cargo}"

say() { printf 'run.sh: %s\n' "$*"; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

gate_pids=()
gate_logs=()
workdir="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-interop.XXXXXX")"

stop_gate() { # pid
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    say "stopping gate (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "gate (pid $pid) still running after 5s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    local i
    for i in "${!gate_pids[@]}"; do
        stop_gate "${gate_pids[$i]}"
        if [[ $status -ne 0 && -s "${gate_logs[$i]}" ]]; then
            say "gate output (last 40 lines of ${gate_logs[$i]}):"
            tail -n 40 "${gate_logs[$i]}" | sed 's/^/  gate| /'
        fi
    done
    rm -rf "$workdir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v node >/dev/null || die "node not found (node >= 18 required)"
command -v npm >/dev/null || die "npm not found"
command -v "$cargo" >/dev/null || die "$cargo not found"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$node_major" -ge 18 ]] || die "node $(node --version) is too old (>= 18 required)"
say "node $(node --version), npm $(npm --version 2>/dev/null)"

# 1. Node dependencies, exactly as locked.
t0="$(now)"
cd "$here"
if [[ -f package-lock.json ]]; then
    say "npm ci in $here"
    npm ci --no-audit --no-fund
else
    say "no package-lock.json: npm install in $here"
    npm install --no-audit --no-fund
fi
say "node dependencies ready in $(since "$t0")"

# 2. The example gate with TLS, and the test CA tool (debug builds). The features are bin/test.sh's
#    nextest ones, so this reuses that build and leaves the same gate binary in place (the
#    Prometheus test runs it with --metrics).
t0="$(now)"
cd "$root"
say "cargo build --features tls,prometheus --example gate --example test_ca (in $root)"
"$cargo" build --features tls,prometheus --example gate --example test_ca
target_dir="$("$cargo" metadata --format-version 1 --no-deps \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
gate_bin="$target_dir/debug/examples/gate"
test_ca_bin="$target_dir/debug/examples/test_ca"
[[ -x "$gate_bin" ]] || die "built gate not found at $gate_bin"
[[ -x "$test_ca_bin" ]] || die "built test_ca not found at $test_ca_bin"
say "gate and test_ca built in $(since "$t0"): $gate_bin"

# A test CA made for this run only, in the temporary directory the trap removes.
certs="$workdir/certs"
"$test_ca_bin" "$certs" | sed 's/^/  /'
for f in ca.pem cert.pem key.pem; do
    [[ -s "$certs/$f" ]] || die "test_ca wrote no $certs/$f"
done

# 3. Start the gate on a free loopback port; --seconds bounds its life should this script be
#    killed before its trap can run. start_gate NAME ARGS… sets $addr and $gate_pid.
start_gate() {
    local name=$1
    shift
    local log="$workdir/gate-$name.log"
    say "starting gate $name: --addr 127.0.0.1:0 --heartbeat $heartbeat --seconds 600 $*"
    "$gate_bin" --addr 127.0.0.1:0 --heartbeat "$heartbeat" --seconds 600 "$@" >"$log" 2>&1 &
    gate_pid=$!
    gate_pids+=("$gate_pid")
    gate_logs+=("$log")
    addr=""
    local deadline=$(( $(date +%s) + start_timeout ))
    while [[ -z "$addr" ]]; do
        addr="$(sed -n 's/^gate: listening on \([^ ]*\) (pid [0-9]*)$/\1/p' "$log" | head -n 1)"
        [[ -n "$addr" ]] && break
        kill -0 "$gate_pid" 2>/dev/null || { wait "$gate_pid" || true; die "gate $name exited before listening"; }
        [[ $(date +%s) -lt $deadline ]] || die "no 'gate: listening on' line from gate $name within ${start_timeout}s"
        sleep 0.1
    done
    local printed_pid
    printed_pid="$(sed -n 's/^gate: listening on [^ ]* (pid \([0-9]*\))$/\1/p' "$log" | head -n 1)"
    [[ "$printed_pid" == "$gate_pid" ]] || die "gate $name printed pid $printed_pid, started pid $gate_pid"
}
start_gate tls --tls-cert "$certs/cert.pem" --tls-key "$certs/key.pem"
host="${addr%:*}"
port="${addr##*:}"
say "gate listening on $host:$port (pid $gate_pid), plain and TLS on that one port"

# 4. The interop checks.
t0="$(now)"
say "node interop.js $host $port --ca $certs/ca.pem --heartbeat $heartbeat --timeout $step_timeout"
cd "$here"
status=0
node interop.js "$host" "$port" --ca "$certs/ca.pem" --heartbeat "$heartbeat" --timeout "$step_timeout" || status=$?
say "interop.js finished in $(since "$t0") with status $status"
if ! kill -0 "$gate_pid" 2>/dev/null; then
    say "error: the gate is no longer running (crashed during the test?)"
    [[ $status -ne 0 ]] || status=1
fi

# 5. Protobuf bodies and route compression: the official client with pomelo-protobuf's browser
#    build against a second gate with --dict --protos examples/protos (jsclient_proto.js; its
#    own process: the client is a module-level singleton).
start_gate proto --dict --protos "$root/examples/protos"
t0="$(now)"
say "node jsclient_proto.js ${addr%:*} ${addr##*:} --timeout $step_timeout"
proto_status=0
node jsclient_proto.js "${addr%:*}" "${addr##*:}" --timeout "$step_timeout" || proto_status=$?
say "jsclient_proto.js finished in $(since "$t0") with status $proto_status"
if ! kill -0 "$gate_pid" 2>/dev/null; then
    say "error: the protobuf gate is no longer running (crashed during the test?)"
    [[ $proto_status -ne 0 ]] || proto_status=1
fi
[[ $status -ne 0 ]] || status=$proto_status
exit "$status"
