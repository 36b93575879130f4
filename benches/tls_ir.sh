#!/usr/bin/env bash
# Instruction counts (callgrind, exact and independent of machine load) of the server's TLS
# calls in benches/tls.rs: for each bench, the inclusive Ir of every call into
# TlsSession::{new,read,write_to,encrypt} (the server's side only; the client in the same loop is
# not counted), minus a baseline run that matches no bench (the certificate generation and the
# priming handshakes every run does), divided by the handshakes (calls of `new`) or the pushes
# (calls of `encrypt`) the bench made.
#
#   bash benches/tls_ir.sh            # needs valgrind; about 2-3 min
#
# Prints one line per bench: "BENCH: N ops, Ir/op X (new …, read …, write_to …, encrypt …)".
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "tls_ir.sh: valgrind not found" >&2; exit 1; }
bin="$(cargo bench --features tls --bench tls --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)"
[[ -x "$bin" ]] || { echo "tls_ir.sh: bench binary not found" >&2; exit 1; }
out="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-tls-ir.XXXXXX")"
trap 'rm -rf "$out"' EXIT

# callgrind's output: "cfn=(id) name" names a callee, "calls=N …" then "POS COST" gives a call
# arc's count and inclusive cost. Prints "fn calls cost" per TlsSession function.
arcs() {
    awk '
        match($0, /^c?fn=\([0-9]+\)/) {
            id = substr($0, RSTART, RLENGTH); sub(/^c?fn=/, "", id)
            rest = substr($0, RLENGTH + 2); if (rest != "") name[id] = rest
            cur = ($0 ~ /^cfn=/) ? id : ""
            next
        }
        /^calls=/ && cur != "" {
            n = substr($1, 7); getline; cost = $2
            if (name[cur] ~ /TlsSession::(new|read|write_to|encrypt)$/) {
                f = name[cur]; sub(/.*TlsSession::/, "", f); calls[f] += n; ir[f] += cost
            }
            cur = ""
        }
        END { for (f in calls) print f, calls[f], ir[f] }
    ' "$1"
}

run() { # $1 = criterion filter, $2 = output file
    valgrind --tool=callgrind --callgrind-out-file="$2" "$bin" --bench --profile-time 2 "$1" \
        >/dev/null 2>&1
}

run '^no-such-bench$' "$out/base"
arcs "$out/base" >"$out/base.arcs"
for bench in setup/full_tls13 setup/full_tls13_p384 setup/resumed_tls13 setup/full_tls12 \
    push/tls13_64B push/tls13_1024B push/tls13_16x64B_coalesced; do
    run "^${bench}\$" "$out/run"
    arcs "$out/run" >"$out/run.arcs"
    unit=new; [[ $bench == push/* ]] && unit=encrypt
    awk -v bench="$bench" -v unit="$unit" '
        NR == FNR { bc[$1] = $2; bi[$1] = $3; next }
        { c[$1] = $2 - bc[$1]; i[$1] = $3 - bi[$1] }
        END {
            n = c[unit]; total = 0; parts = ""
            for (f in i) { total += i[f]; if (i[f] > 0) parts = parts sprintf(" %s %.0f", f, i[f] / n) }
            printf "%s: %d ops, Ir/op %.0f (%s)\n", bench, n, total / n, substr(parts, 2)
        }
    ' "$out/base.arcs" "$out/run.arcs"
done
