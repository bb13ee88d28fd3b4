#!/usr/bin/env bash
# CLI test of non-finite limits and initial values in a catalog (issue 14,
# "Found from outside"): {"min": NaN, "max": -Infinity} used to start and then
# refuse every SET "above the maximum -inf", "max": NaN silently meant no
# maximum. markd now refuses such a catalog (exit 78, also with --check),
# naming the file, the item and the field; finite limits still start, and a
# NaN SET on the wire is still taken by an item without limits.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_markd_nonfinite

common=(--no-discovery --bind 127.0.0.1 --hostname 127.0.0.1)
check_refused() {  # NAME JSON FIELD-POINTER
  printf '%s\n' "$2" >"$work/$1.json"
  run "$1" "$MKTL_BIN/markd" "${common[@]}" -c "$work/$1.json" nf nf1
  expect_rc "$1: markd refuses the catalog" 78
  expect_in "$1: the message names the file and the field" "$err" "$work/$1.json: $3: expected a finite"
  run "$1-check" "$MKTL_BIN/markd" --check -c "$work/$1.json" nf nf1
  expect_rc "$1: --check refuses it too" 78
}
check_refused nan-min-inf-max '{"a": {"type": "numeric", "min": NaN, "max": -Infinity}}' /a/min
check_refused nan-max '{"a": {"type": "numeric", "max": NaN}}' /a/max
check_refused huge-max '{"a": {"type": "numeric", "min": 0, "max": 1e999}}' /a/max
check_refused array-min '{"a": {"type": "numeric array", "min": -Infinity}}' /a/min
check_refused nan-initial '{"a": {"type": "numeric", "initial": NaN}}' /a/initial
check_refused array-initial '{"a": {"type": "numeric array", "initial": [0, Infinity]}}' /a/initial

# Finite limits start and are enforced; NaN on the wire still passes where
# there are no limits (Python peers send NaN).
cat >"$work/good.json" <<'EOF2'
{"a": {"type": "numeric", "min": 1, "max": 1e300, "initial": 2}, "b": {"type": "numeric"}}
EOF2
start markd '^markd: nf nf1 ready rep=([0-9]+) pub=[0-9]+$' "$MKTL_BIN/markd" "${common[@]}" -c "$work/good.json" nf nf1
MK=("$MKTL_BIN/mk" --connect "tcp://127.0.0.1:${BASH_REMATCH[1]}")
run set-ok "${MK[@]}" set nf.a 5
expect_rc "a value within finite limits is set" 0
run set-low "${MK[@]}" set nf.a 0.5
expect_rc "a value below the minimum is refused" 1
expect_in "with the limit named" "$err" "below the minimum 1"
run set-nan "${MK[@]}" set nf.b NaN
expect_rc "NaN is still taken by an item without limits" 0
run get-nan "${MK[@]}" get --json nf.b
expect_in "and read back as NaN" "$out" '"value":NaN'

finish test_markd_nonfinite
