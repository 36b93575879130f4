#!/usr/bin/env bash
# RUSTC_WRAPPER for bin/loom.sh: passes rustc's arguments through, adding
# `--cfg gatehouse_loom_mutant="$GATEHOUSE_LOOM_MUTANT"` to the two crates that hold mutants
# (gatehouse, gatehouse_cluster) and to nothing else. Through RUSTFLAGS the cfg changed the
# hash of every dependency, so each mutant rebuilt all of them (serde_json, mio, the Redis
# client…); this way the dependencies are built once and shared by the models and every mutant.
# Cargo rebuilds the two crates when the variable changes because they read it with
# `option_env!` (their dep-info lists it); bin/loom.sh checks each run's printed mutant.
set -euo pipefail
rustc=$1
shift
if [ -n "${GATEHOUSE_LOOM_MUTANT:-}" ]; then
    prev=
    for arg in "$@"; do
        if [ "$prev" = --crate-name ] && { [ "$arg" = gatehouse ] || [ "$arg" = gatehouse_cluster ]; }; then
            exec "$rustc" "$@" --cfg "gatehouse_loom_mutant=\"$GATEHOUSE_LOOM_MUTANT\""
        fi
        prev=$arg
    done
fi
exec "$rustc" "$@"
