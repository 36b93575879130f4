#!/usr/bin/env bash
# Deterministic instruction-count regression gate for the hot paths.
#
#   bin/callgrind.sh            measure, print the table, exit 1 if any case exceeds its budget
#   bin/callgrind.sh --update   measure and rewrite bench/callgrind-budgets.txt
#                               (budget = measured x 1.15, rounded up)
#
# How: builds `gatehouse-probe` (benches/callgrind/probe.rs, `--features probe`, release,
# --locked), then runs every case under `valgrind --tool=callgrind --toggle-collect=<its
# measured fn>` at two call counts; Ir/op = (Ir(n2) - Ir(n1)) / ((n2 - n1) x ops-per-call),
# so the fixed part (toggling, first-call cold paths) cancels. Instruction counts are exact and
# machine-load independent (unlike wall-clock); a change of a few Ir/op can come from the
# random ahash seed of the uid index, hence the 15% headroom.
# Budgets: bench/callgrind-budgets.txt — `name budget_ir_per_op measured_ir_per_op date`.
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGETS=bench/callgrind-budgets.txt
HEADROOM=1.15
N1=${CALLGRIND_N1:-8}
N2=${CALLGRIND_N2:-24}
UPDATE=0
case "${1:-}" in
  --update) UPDATE=1 ;;
  "") ;;
  *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

if ! command -v valgrind >/dev/null 2>&1; then
  echo "callgrind.sh: valgrind missing, installing with apt-get" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  timeout 300 $SUDO apt-get install -y -qq valgrind >/dev/null \
    || { timeout 120 $SUDO apt-get update -qq && timeout 300 $SUDO apt-get install -y -qq valgrind >/dev/null; } \
    || { echo "callgrind.sh: could not install valgrind" >&2; exit 1; }
fi

cargo build --release --locked --quiet --features probe --bin gatehouse-probe
PROBE=target/release/gatehouse-probe

# case -> measured function (the toggle-collect pattern)
fn_of() {
  case "$1" in
    send_uid_1) echo probe_send_uid_1 ;;
    send_uid_3) echo probe_send_uid_3 ;;
    send_sid) echo probe_send_sid ;;
    for_each_bound_10k) echo probe_for_each_bound ;;
    drain_write_32) echo probe_drain_write ;;
    decode_request) echo probe_decode ;;
    bind_unbind) echo probe_bind_unbind ;;
    broadcast_10k) echo probe_broadcast ;;
    broadcast_each_send_10k) echo probe_broadcast_each_send ;;
    *) echo "callgrind.sh: no measured function for case $1" >&2; return 1 ;;
  esac
}

ir() { # case calls fn -> Ir collected inside fn
  local out
  out=$(timeout 120 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        --toggle-collect="*$3" "$PROBE" "$1" "$2" 2>&1) || { echo "$out" >&2; return 1; }
  awk '/Collected :/{print $4}' <<<"$out"
}

declare -A BUDGET=()
if [ -f "$BUDGETS" ]; then
  while read -r name budget _rest; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    BUDGET[$name]=$budget
  done <"$BUDGETS"
fi

today=$(date -u +%Y-%m-%d)
fail=0
rows=()
printf '%-20s %12s %12s %8s  %s\n' case "Ir/op" budget status what
printf '%-20s %12s %12s %8s  %s\n' -------------------- ------------ ------------ -------- ----
while IFS=$'\t' read -r name ops what; do
  fn=$(fn_of "$name")
  a=$(ir "$name" "$N1" "$fn"); b=$(ir "$name" "$N2" "$fn")
  [[ -n "$a" && -n "$b" && "$b" -gt "$a" ]] || { echo "callgrind.sh: no count for $name ($a, $b)" >&2; exit 1; }
  per=$(awk -v a="$a" -v b="$b" -v n1="$N1" -v n2="$N2" -v k="$ops" 'BEGIN{printf "%.1f", (b-a)/((n2-n1)*k)}')
  budget=${BUDGET[$name]:-}
  if [ "$UPDATE" = 1 ]; then
    budget=$(awk -v m="$per" -v h="$HEADROOM" 'BEGIN{v=m*h; r=int(v); if (r<v) r++; print r}')
    status=updated
  elif [ -z "$budget" ]; then
    status=NO-BUDGET; fail=1
  elif awk -v m="$per" -v b="$budget" 'BEGIN{exit !(m>b)}'; then
    status=OVER; fail=1
  else
    status=ok
  fi
  printf '%-20s %12s %12s %8s  %s\n' "$name" "$per" "${budget:--}" "$status" "$what"
  rows+=("$name $budget $per $today")
done < <("$PROBE" list)

if [ "$UPDATE" = 1 ]; then
  {
    echo "# Callgrind instruction budgets, checked by bin/callgrind.sh (Ir per operation)."
    echo "# budget = measured x $HEADROOM rounded up; regenerate with bin/callgrind.sh --update"
    echo "# name budget_ir_per_op measured_ir_per_op date"
    printf '%s\n' "${rows[@]}"
  } >"$BUDGETS"
  echo "callgrind.sh: wrote $BUDGETS"
elif [ "$fail" = 1 ]; then
  echo "callgrind.sh: FAILED: a case is over its budget (or has none) in $BUDGETS" >&2
  exit 1
else
  echo "callgrind.sh: all cases within budget"
fi
