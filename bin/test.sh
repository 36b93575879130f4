#!/usr/bin/env bash
# The test suite, as the README documents it: everything a user runs to check gatehouse on a
# fresh machine. Installs what it needs (guarded), then runs, cheapest first:
#   doctests → npm ci in tests/interop → unit + integration tests (nextest, incl. the protobuf
#   differential test against the JavaScript codecs) → the cluster crate (nextest, then its
#   multi-process suite against a real redis-server) → interop with pinus's own codec (node)
#   → the load generator (its tests, then a smoke run of the README's main command) → the
#   charts (their tests, then the smoke run drawn) → loom
#   models (+ mutants).
# .ci/run calls this after fmt and clippy.
#
# Every stage either runs or FAILS with a message saying what is missing and how to get it: a
# lost exec bit or a missing tool never turns a stage into a silent pass. The only opt-outs are
# explicit, and announced loudly at the start and again at the end:
#   SKIP_INTEROP=1   do not run the node interop test nor tests/protobuf_diff.rs (both need
#                    node and tests/interop/node_modules)
#   SKIP_LOOM=1      do not run the loom models and mutants
# Also read by the tests: GATEHOUSE_TEST_TIME_SCALE=N (whole number >= 1, default 4) scales the
# server timeouts the loopback tests depend on and every bounded wait (tests/util/mod.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}" RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

step() { echo "=== test: $*"; }
die() {
    echo "bin/test.sh: FAILED: $*" >&2
    exit 1
}
skipped=()
opt_out() { # knob what
    echo "!!! test: SKIPPING $2 because $1=1 was set: this run does NOT test it" >&2
    skipped+=("$2 ($1=1)")
}
for knob in SKIP_INTEROP SKIP_LOOM; do
    case "${!knob:-0}" in
    0 | 1) ;;
    *) die "$knob must be 0 or 1, not '${!knob}'" ;;
    esac
done
[ "${SKIP_INTEROP:-0}" = 1 ] &&
    opt_out SKIP_INTEROP "the node interop test (tests/interop) and the protobuf differential test (tests/protobuf_diff.rs)"
[ "${SKIP_LOOM:-0}" = 1 ] && opt_out SKIP_LOOM "the loom models and mutants (bin/loom.sh)"

# Installs with apt-get (as root, or through sudo); false if that is impossible or fails.
apt_install() {
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || return 1
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null || return 1
    "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "$@"
}

if ! command -v cargo-nextest >/dev/null; then
    echo "installing cargo-nextest"
    cargo install cargo-nextest --locked ||
        die "cargo-nextest is missing and 'cargo install cargo-nextest --locked' failed; install it"
fi

step "doctests"
cargo test --doc --locked
cargo test --doc --locked --features tls,prometheus
cargo test --doc -p gatehouse-cluster --locked

# node and tests/interop/node_modules serve two stages: tests/protobuf_diff.rs (in nextest: our
# protobuf codec against pomelo-protobuf and pinus-protobuf) and the interop test further down.
# The diff test FAILS when they are missing; only SKIP_INTEROP=1 leaves it out, by name.
nextest_filter=()
if [ "${SKIP_INTEROP:-0}" != 1 ]; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "installing node and npm (interop and protobuf differential tests)"
        apt_install nodejs npm || true
        command -v node >/dev/null && command -v npm >/dev/null ||
            die "the interop and protobuf differential tests need node (>= 18) and npm, and" \
                "installing them with apt-get failed: install nodejs and npm (or set" \
                "SKIP_INTEROP=1 to opt out explicitly)"
    fi
    step "interop: npm ci in tests/interop (the reference JavaScript codecs)"
    (cd tests/interop && npm ci --no-audit --no-fund) ||
        die "npm ci in tests/interop failed (it needs the npm registry once; set SKIP_INTEROP=1 to opt out explicitly)"
else
    nextest_filter=(-E 'not binary(protobuf_diff)')
fi

# tests/prometheus.rs (feature `prometheus`) runs Prometheus's own `promtool check metrics`
# and a real `prometheus` server on loopback: Debian's `prometheus` package has both.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    echo "installing prometheus (promtool and the server, for tests/prometheus.rs)"
    apt_install prometheus || true
    command -v promtool >/dev/null && command -v prometheus >/dev/null ||
        die "tests/prometheus.rs needs promtool and prometheus, and installing Debian's" \
            "prometheus package with apt-get failed: install it (or both binaries) on PATH"
fi

step "unit and integration tests (nextest)"
# With the `tls` feature: tests/tls.rs (required-features) and the tls_front corpus replay run,
# and every other test runs over the TLS-enabled build (plain connections unchanged). With
# `prometheus`: tests/prometheus.rs and the gate's --metrics flag. tests/prometheus.rs also runs
# the example gate binary, which nextest builds only under a hashed name: build it first, with
# the same features (the same compilation, so nextest reuses it).
cargo build --features tls,prometheus --locked --example gate
cargo nextest run --all-targets --features tls,prometheus --locked --no-fail-fast --no-tests=fail "${nextest_filter[@]}"

# The cluster layer (cluster/, package gatehouse-cluster) runs against real redis-server
# processes the tests start themselves (unix sockets / free loopback ports, never 6379).
if ! command -v redis-server >/dev/null; then
    echo "installing redis-server (cluster tests)"
    apt_install redis-server || true
    command -v redis-server >/dev/null ||
        die "the cluster tests need redis-server, and installing Debian's redis-server with" \
            "apt-get failed: install redis-server (>= 7) so that it is on PATH"
fi
step "cluster: unit and integration tests (nextest)"
# tests/cluster.rs (harness = false) lists no tests to nextest; it runs in the next step.
cargo nextest run -p gatehouse-cluster --all-targets --features test-knobs --locked --no-fail-fast --no-tests=fail
step "cluster: multi-process suite (tests/cluster.rs)"
# Debug, not --release: it reuses the build nextest just made (a release build of the
# dependencies costs ~90 s here; the suite's time is its timeouts, not CPU). Its last line,
# `cluster: N passed, M failed`, is counted by .ci/run.
cargo test -p gatehouse-cluster --features test-knobs --test cluster --locked

if [ "${SKIP_INTEROP:-0}" != 1 ]; then
    # node and npm were checked (and installed if need be) before nextest.
    [ -f tests/interop/run.sh ] || die "tests/interop/run.sh is missing"
    step "interop: pinus-protocol and pomelo-jsclient-websocket against the example gate"
    # Through bash: a lost exec bit must not change what runs.
    bash tests/interop/run.sh
fi

step "loadgen: its unit and command-line tests, then a smoke run of the README's main command"
# The load generator (loadgen/, package gatehouse-loadgen) with small settings: it builds and
# spawns the example gate, runs every default scenario briefly and must report ok, delivered
# pushes and echo round trips. About 15 s beyond the release build.
command -v python3 >/dev/null || die "the loadgen smoke run checks its JSON with python3: install python3"
cargo test -p gatehouse-loadgen --locked
loadgen_json=$(mktemp)
trap 'rm -f "$loadgen_json"' EXIT
cargo run --release --locked -p gatehouse-loadgen -- --spawn-gate --clients 200 --seconds 1 \
    --fanouts 5 --blast-runs 1 --json >"$loadgen_json" ||
    die "loadgen smoke run failed (exit $?): cargo run --release -p gatehouse-loadgen -- --spawn-gate --clients 200 --seconds 1 --fanouts 5 --blast-runs 1"
python3 - "$loadgen_json" <<'PY' || die "loadgen smoke run: its JSON output is not what it should be (see above)"
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError as e:
    sys.exit(f"loadgen smoke: the output is not JSON: {e}")
rows = {r["key"]: r["value"] for r in d.get("rows", [])}
lat = {l["key"]: l for l in d.get("latencies", [])}
problems = []
if d.get("ok") is not True:
    problems.append(f"ok is {d.get('ok')!r}, failures: {d.get('failures')}")
if not (rows.get("blast.pushes_per_s") or 0) > 0:
    problems.append(f"blast.pushes_per_s is {rows.get('blast.pushes_per_s')!r}, not > 0")
if not lat.get("echo.rtt", {}).get("count", 0) > 0:
    problems.append("latencies has no echo.rtt entry with count > 0")
if problems:
    sys.exit("loadgen smoke: " + "; ".join(problems))
e = lat["echo.rtt"]
print(f"loadgen smoke: ok ({rows['setup.bound']:.0f} sessions, {rows['blast.pushes_per_s']:,.0f} pushes/s, "
      f"echo {e['count']} round trips p50 {e['percentiles']['p50']:.0f} us p99 {e['percentiles']['p99']:.0f} us)")
PY

step "charts: their tests, then the smoke run's latency CDFs drawn from its JSON"
# The chart renderer (charts/, package gatehouse-charts): unit and CLI tests on synthetic
# fixtures, the committed charts redrawn from bench/data/ and compared byte for byte
# (charts/tests/committed.rs), then the loadgen output above drawn as a single run.
cargo test -p gatehouse-charts --locked
charts_out=$(mktemp -d)
trap 'rm -f "$loadgen_json"; rm -rf "$charts_out"' EXIT
cargo run --locked --quiet -p gatehouse-charts -- --out "$charts_out" "$loadgen_json" ||
    die "charts could not draw the loadgen smoke run's JSON"
for chart in latency-echo latency-saturation latency-setup; do
    head -c 4 "$charts_out/$chart.svg" 2>/dev/null | grep -q '<svg' ||
        die "charts: $chart.svg was not drawn from the loadgen smoke run"
done
echo "charts smoke: $(ls "$charts_out" | wc -l) charts drawn from the loadgen smoke run"
rm -rf "$loadgen_json" "$charts_out"

if [ "${SKIP_LOOM:-0}" != 1 ]; then
    [ -f bin/loom.sh ] || die "bin/loom.sh is missing (set SKIP_LOOM=1 to opt out explicitly)"
    step "loom models"
    bash bin/loom.sh
fi

if [ ${#skipped[@]} -gt 0 ]; then
    echo "!!! test: passed, but NOT tested (explicit opt-outs): ${skipped[*]}" >&2
else
    echo "=== test: every stage ran and passed"
fi
