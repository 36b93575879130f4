#!/usr/bin/env bash
# Builds every fuzz target on STABLE (no cargo-fuzz, no nightly: the coverage instrumentation
# cargo-fuzz passes, minus the sanitizer) and fuzzes each for FUZZ_SECS over a scratch copy of
# its committed corpus, so a run never modifies fuzz/corpus/. Fails on the first crash; the
# crashing input is kept in fuzz/artifacts/<target>/ (reproduce: the target binary + that file,
# or `cargo fuzz run <target> -s none <file>`).
#
# usage: bin/fuzz.sh [TARGET...]        default: every target in fuzz/Cargo.toml
# env:   FUZZ_SECS    seconds per target (default 20)
#        FUZZ_JOBS    targets fuzzed at once (default 1; the machine has 2 cores)
#        FUZZ_BUILD_ONLY=1  build and replay the committed corpus only (-runs=0)
set -euo pipefail
cd "$(dirname "$0")/.."

TRIPLE=x86_64-unknown-linux-gnu
TARGET_DIR=fuzz/target-ci
SECS=${FUZZ_SECS:-20}
JOBS=${FUZZ_JOBS:-1}

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

run_one() {
    local t=$1 bin="$TARGET_DIR/$TRIPLE/release/$1"
    local corpus="$scratch/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
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
}

failed=()
if [ "$JOBS" -le 1 ]; then
    for t in "${targets[@]}"; do run_one "$t" || failed+=("$t"); done
else
    pids=()
    names=()
    for t in "${targets[@]}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
        run_one "$t" &
        pids+=($!)
        names+=("$t")
    done
    for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${names[$i]}"); done
fi

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran clean"
