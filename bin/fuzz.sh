#!/usr/bin/env bash
# Builds every fuzz target on STABLE (no cargo-fuzz, no nightly: the coverage instrumentation
# cargo-fuzz passes, minus the sanitizer) and fuzzes each for FUZZ_SECS over a scratch copy of
# its committed corpus, so a run never modifies fuzz/corpus/. Fails on the first crash; the
# crashing input is kept in fuzz/artifacts/<target>/ (reproduce: the target binary + that file,
# or `cargo fuzz run <target> -s none <file>`).
#
# Before fuzzing, each target must prove its coverage instrumentation took effect: a probe run
# from an EMPTY corpus (FUZZ_PROBE_RUNS inputs, fixed seed) must report libFuzzer `cov:`/`ft:`
# counts, and its feature count must grow from the first input to the last. An uninstrumented
# build (RUSTFLAGS lost, a cargo change, a libfuzzer-sys change) prints no counts or stays flat,
# and would otherwise "fuzz" blind and pass: it fails here instead. The main run's corpus must
# cover something too (`cov:` > 0 once the corpus is loaded). (A run over the committed corpus
# often stays flat for its whole duration: the corpus is near saturation; hence the probe.)
#
# usage: bin/fuzz.sh [TARGET...]        default: every target in fuzz/Cargo.toml
# env:   FUZZ_SECS    seconds per target (default 20)
#        FUZZ_JOBS    targets fuzzed at once (default 1; the machine has 2 cores)
#        FUZZ_BUILD_ONLY=1  build, probe, and replay the committed corpus only (-runs=0)
#        FUZZ_PROBE_RUNS    inputs of the instrumentation probe (default 20000, ~0.1-1 s)
set -euo pipefail
cd "$(dirname "$0")/.."

TRIPLE=x86_64-unknown-linux-gnu
TARGET_DIR=fuzz/target-ci
SECS=${FUZZ_SECS:-20}
JOBS=${FUZZ_JOBS:-1}
PROBE_RUNS=${FUZZ_PROBE_RUNS:-20000}

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(awk '/^\[\[bin\]\]/{b=1} b && /^name = /{gsub(/name = |"/,""); print; b=0}' fuzz/Cargo.toml)
fi
[ ${#targets[@]} -gt 0 ] || { echo "bin/fuzz.sh: no targets found in fuzz/Cargo.toml" >&2; exit 2; }

# The flags `cargo fuzz build -s none` passes (cargo-fuzz 0.13), set by hand so plain stable
# cargo builds libFuzzer-instrumented binaries. `--target` keeps them off build scripts and
# proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
echo "=== fuzz: building ${targets[*]}"
cargo build --release --locked --manifest-path fuzz/Cargo.toml \
    --target "$TRIPLE" --target-dir "$TARGET_DIR" "${bins[@]}"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# "cov ft" of every libFuzzer status line (#N INITED/NEW/REDUCE/pulse/DONE ... cov: C ft: F) in
# a log, in order.
coverage_counts() {
    sed -nE 's/^#[0-9]+[[:space:]]+[A-Za-z]+[[:space:]].*cov: ([0-9]+) ft: ([0-9]+).*/\1 \2/p' "$1"
}

# The instrumentation probe (see the header): fails unless the counts exist and grow.
probe() {
    local t=$1 bin=$2 log="$scratch/$1.probe.log" empty="$scratch/$1.empty"
    mkdir -p "$empty"
    "$bin" -runs="$PROBE_RUNS" -seed=1 "$empty" >"$log" 2>&1 || {
        echo "=== fuzz: $t: the instrumentation probe (empty corpus) failed; libFuzzer's log:"
        tail -40 "$log"
        return 1
    }
    local counts first last cov0 ft0 cov1 ft1
    counts=$(coverage_counts "$log")
    first=$(head -n 1 <<<"$counts")
    last=$(tail -n 1 <<<"$counts")
    read -r cov0 ft0 <<<"${first:-0 0}"
    read -r cov1 ft1 <<<"${last:-0 0}"
    if [ -z "$counts" ] || [ "$cov1" -le 0 ] || [ "$ft1" -le "$ft0" ]; then
        echo "=== fuzz: $t: NOT INSTRUMENTED: from an empty corpus, $PROBE_RUNS inputs gave" \
            "coverage '${first:-none}' -> '${last:-none}' (cov ft); an instrumented build grows."
        echo "    Check RUSTFLAGS (sancov passes) and --target in bin/fuzz.sh. libFuzzer's log:"
        grep -E '^INFO: Loaded|^#[0-9]+' "$log" | head -10 | sed 's/^/    /'
        return 1
    fi
    echo "=== fuzz: $t: instrumented: probe coverage cov $cov0 -> $cov1, ft $ft0 -> $ft1"
}

run_one() {
    local t=$1 bin="$TARGET_DIR/$TRIPLE/release/$1"
    local corpus="$scratch/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    probe "$t" "$bin" || return 1
    if [ -d "fuzz/corpus/$t" ]; then cp -R "fuzz/corpus/$t/." "$corpus/"; fi
    local n; n=$(find "$corpus" -type f | wc -l)
    if [ "${FUZZ_BUILD_ONLY:-0}" = 1 ]; then
        echo "=== fuzz: $t: replaying $n corpus files"
        "$bin" -runs=0 "$corpus" >"$scratch/$t.log" 2>&1 || { tail -50 "$scratch/$t.log"; return 1; }
    else
        echo "=== fuzz: $t: ${SECS}s from $n corpus files"
        "$bin" -max_total_time="$SECS" -artifact_prefix="fuzz/artifacts/$t/" \
            -print_final_stats=1 "$corpus" >"$scratch/$t.log" 2>&1 || {
            echo "=== fuzz: $t FAILED; libFuzzer's log:"
            tail -80 "$scratch/$t.log"
            echo "=== fuzz: crashing input(s) in fuzz/artifacts/$t/:"
            ls -l "fuzz/artifacts/$t/"
            return 1
        }
    fi
    # libFuzzer's summary: executions, coverage (cov: edges, ft: features), corpus, memory.
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs' "$scratch/$t.log" | sed "s/^/    $t: /"
    # The corpus run must have exercised instrumented code too.
    local first
    # `sed -n 1p`, not `head -n 1`: head would close the pipe early and, under pipefail, a
    # long log would fail the assignment with SIGPIPE (141).
    first=$(coverage_counts "$scratch/$t.log" | sed -n 1p)
    if [ -z "$first" ] || [ "${first%% *}" -le 0 ]; then
        echo "=== fuzz: $t: the corpus run reported no coverage ('${first:-no cov: line}')"
        return 1
    fi
}

failed=()
# `wait -n -p` (bash >= 5.1) says which job ended, so each status is read exactly once; an
# older bash runs the targets one at a time.
if [ "$JOBS" -gt 1 ] && ! { [ "${BASH_VERSINFO[0]}" -gt 5 ] ||
    { [ "${BASH_VERSINFO[0]}" -eq 5 ] && [ "${BASH_VERSINFO[1]}" -ge 1 ]; }; }; then
    echo "=== fuzz: bash $BASH_VERSION has no 'wait -n -p': FUZZ_JOBS=$JOBS ignored, one at a time"
    JOBS=1
fi
if [ "$JOBS" -le 1 ]; then
    for t in "${targets[@]}"; do run_one "$t" || failed+=("$t"); done
else
    declare -A name_of=()
    running=0
    # Reaps one finished target and records a failure (its status is consumed here, so it is
    # never waited for twice: a second `wait PID` would report 127 for a healthy target).
    reap_one() {
        local pid="" status=0
        wait -n -p pid || status=$?
        running=$((running - 1))
        if [ "$status" -ne 0 ]; then failed+=("${name_of[$pid]:-unknown job $pid}"); fi
    }
    for t in "${targets[@]}"; do
        while [ "$running" -ge "$JOBS" ]; do reap_one; done
        # `|| exit 1`: run_one runs with errexit suspended, exactly as in the sequential
        # path (`run_one || failed+=…`), so both paths judge a target the same way.
        { run_one "$t" || exit 1; } &
        name_of[$!]=$t
        running=$((running + 1))
    done
    while [ "$running" -gt 0 ]; do reap_one; done
fi

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran clean"
