#!/usr/bin/env bash
# The short pass of scripts/kill9.sh (docs/reliability.md, "Faults and
# load"): 3 cycles of kill -9 of markd under a stream of SETs of persistent
# items and transactions; no acknowledged SET and no answered transaction
# may be lost.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_fault_kill9
need_source
skip_rest_unless_built "mktl_faults (MKTL_BUILD_BENCH=ON)" "$BIN/mktl_faults"

run kill9 timeout 60 "$SRC/scripts/kill9.sh" --cycles 3 --bin "$BIN"
expect_rc "kill9.sh --cycles 3" 0
summary=$(grep '^kill9: cycles=' <<<"$out" || true)
expect_match "the summary" "$summary" '^kill9: cycles=3 sets_acked=[1-9][0-9]* lost=0 inflight_applied=[0-9]+ txns=[1-9][0-9]* txn_lost=0 restart_ms median=[0-9]+ max=[0-9]+$'
expect_eq "each cycle is checked" "$(grep -c '^cycle [0-9]: acked=' <<<"$out")" 3
finish "kill9"
