#!/usr/bin/env bash
# Model-checks gatehouse's concurrent protocols with loom (loom-tests/), then proves the models
# bite: each seeded mutant (a `gatehouse_loom_mutant` cfg, a no-op in normal builds) is built
# and run against the model that must catch it, and this script FAILS if any mutant survives.
#
# usage: bin/loom.sh                 models, then every mutant (what CI runs)
#        bin/loom.sh --no-mutants    models only
#        bin/loom.sh --mutants-only  mutants only
#        bin/loom.sh [...] -- ARGS   extra libtest ARGS for the model run (e.g. a test name)
#
# env:   LOOM_MAX_PREEMPTIONS (default 3), LOOM_MAX_BRANCHES, LOOM_LOG, LOOM_LOCATION,
#        LOOM_CHECKPOINT_FILE: passed to loom as usual.
#
# Debug a failing model: LOOM_LOG=trace LOOM_LOCATION=1 bin/loom.sh --no-mutants -- NAME
#
# Cost (2 cores): the dependencies (loom, serde_json, mio, the cluster's Redis client…) are
# built once, unoptimised, and shared by the models and every mutant: the mutant's cfg reaches
# only the gatehouse and gatehouse_cluster crates, through the rustc wrapper bin/loom-rustc.sh
# (RUSTFLAGS would change every artifact's hash and rebuild all dependencies per mutant, which
# took 5-10 min cold). Each mutant then rebuilds those two crates and the model's test.
set -euo pipefail
cd "$(dirname "$0")/../loom-tests"

models=1
mutants=1
while [ $# -gt 0 ]; do
    case "$1" in
    --no-mutants) mutants=0 ;;
    --mutants-only) models=0 ;;
    --) shift; break ;;
    *) echo "bin/loom.sh: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
    esac
    shift
done

export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
# Its own target dir (also when the caller exported CARGO_TARGET_DIR): loom builds never
# touch the main build cache, and each cfg set keeps its artifacts there.
export CARGO_TARGET_DIR="$PWD/target"
BASE_FLAGS="--cfg gatehouse_loom -C debug-assertions"
# An explicit --target keeps RUSTFLAGS off build scripts and proc-macros, so those are built
# once and shared by every cfg set instead of once per mutant (~40% of a mutant's build).
TARGET=(--target "$(rustc -vV | sed -n 's/^host: //p')")
# The mutant cfg goes to the two mutant-holding crates only (see the header).
export RUSTFLAGS="$BASE_FLAGS"
export RUSTC_WRAPPER="$(cd .. && pwd)/bin/loom-rustc.sh"
unset GATEHOUSE_LOOM_MUTANT
[ -f "$RUSTC_WRAPPER" ] || { echo "bin/loom.sh: $RUSTC_WRAPPER is missing" >&2; exit 1; }
chmod +x "$RUSTC_WRAPPER" 2>/dev/null || true
START=$SECONDS

lock_hint() {
    echo "bin/loom.sh: build failed. If the root crate's dependencies changed, refresh this" >&2
    echo "  workspace's lock file: (cd loom-tests && cargo update -w) and commit loom-tests/Cargo.lock" >&2
}

if [ "$models" = 1 ]; then
    echo "=== loom: models (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)"
    cargo test --release --locked "${TARGET[@]}" --features cluster --no-run || { lock_hint; exit 1; }
    # --test-threads=1: each model reports its own wall time; they take ~20 s in total.
    cargo test --release --locked "${TARGET[@]}" --features cluster -- --nocapture --test-threads=1 "$@"
    echo "=== loom: models passed ($((SECONDS - START))s so far)"
fi

if [ "$mutants" = 1 ]; then
    # mutant | test file | model that must catch it | what its failure must say (ERE)
    # (A mutant may have several rows; its build is shared.)
    MUTANTS=(
        "rearm_after_drain|inbox|inbox_coalesced_wake|deadlock"
        "rearm_after_drain|inbox|inbox_close_overflow|stranded without a pending wake|deadlock"
        "rearm_after_drain|inbox|inbox_hold_wake|deadlock"
        "drain_overflow_last|inbox|inbox_close_overflow|the close overtook a send accepted before it"
        "conn_table_skip_generation_check|stale_sid|stale_sid_after_slot_reuse|a frame for .* reached"
        "skip_generation_check|stale_sid|stale_sid_after_slot_reuse|a stale close of .* removed"
        "split_single_session_check|bind|single_session_bind_race|exactly one bind must win"
        "unindex_before_detach|bind|bind_two_uids_racing_close|index outlived the session|not live|while the index still lists it"
        "split_index_remove|index|index_readers_never_torn|torn uid lookup|sent to 0 sessions"
        "send_by_uid_push_unlocked|delivery|send_by_uid_racing_rebind|reached .* after it was rebound"
        "kick_ignores_rebind|delivery|kick_racing_rebind|closed .* while it was bound to"
        "events_fired_unlocked|event_order|events_in_causal_order|out of causal order"
        "unindex_whole_uid|kick|kick_racing_bind|does not list it there"
        "broadcast_skip_notify|broadcast|broadcast_racing_close|deadlock"
        "broadcast_push_unlocked|broadcast|broadcast_racing_close|queued after its Close"
        "handoff_check_outside_lock|handoff|handoff_never_strands_an_item|deadlock"
        "ticket_notify_before_done|cluster_ticket|ticket_waiter_sees_complete_report|deadlock"
        "ticket_done_ignores_seal|cluster_ticket|ticket_waiter_sees_complete_report|half-resolved report"
        "claims_fence_ignores_gen|cluster_claims|claims_highest_generation_survives|it must survive iff"
        "claims_granted_ignores_fence|cluster_claims|claims_highest_generation_survives|it must survive iff"
    )
    survived=()
    for row in "${MUTANTS[@]}"; do
        IFS='|' read -r mutant file model expect <<<"$row"
        # The cluster crate (and its Redis client) only for its own models: see loom-tests/Cargo.toml.
        features=()
        if [[ "$file" == cluster_* ]]; then features=(--features cluster); fi
        echo "=== loom: mutant $mutant -> $file::$model"
        export GATEHOUSE_LOOM_MUTANT="$mutant"
        # The build must succeed: a mutant that does not compile proves nothing.
        t0=$SECONDS
        cargo test --release --locked "${TARGET[@]}" "${features[@]}" -q --test "$file" --no-run || { lock_hint; exit 1; }
        log="$CARGO_TARGET_DIR/loom-mutant-$mutant-$model.log"
        set +e
        cargo test --release --locked "${TARGET[@]}" "${features[@]}" -q --test "$file" -- --exact "$model" --nocapture >"$log" 2>&1
        status=$?
        set -e
        if ! grep -q "loom model $model: checking (mutant $mutant)" "$log"; then
            echo "!!! mutant $mutant: the model did not run against it (log: $log):"
            tail -20 "$log"
            survived+=("$mutant($model)")
        elif [ "$status" = 0 ]; then
            echo "!!! mutant $mutant SURVIVED: $model passed against it (log: $log)"
            survived+=("$mutant($model)")
        elif grep -Eq "$expect" "$log"; then
            echo "    caught in $((SECONDS - t0))s: $(grep -E -m1 "$expect" "$log")"
        else
            echo "!!! mutant $mutant: $model failed, but not with /$expect/ (log: $log):"
            grep -E -A3 "panicked|error" "$log" | head -20
            survived+=("$mutant($model)")
        fi
    done
    if [ "${#survived[@]}" -gt 0 ]; then
        echo "=== loom: FAILED, mutants not caught as expected: ${survived[*]}"
        exit 1
    fi
    echo "=== loom: every mutant caught (${#MUTANTS[@]} mutant/model pairs)"
fi
echo "=== loom: ok in $((SECONDS - START))s"
