#!/usr/bin/env bash
# The short pass of scripts/load.sh (docs/reliability.md, "Faults and
# load"): 20 clients x 100 requests, every one answered and matched to its
# request, then 1 s floods of GETs and of persistent SETs from 4 raw DEALERs
# that read nothing: the SETs beyond 10,000 waiting are refused with an
# error; markd survives and still answers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_fault_load
need_source
skip_rest_unless_built "mktl_faults (MKTL_BUILD_BENCH=ON)" "$BIN/mktl_faults"

RUN_TIMEOUT=120  # the GET flood takes ~18 s to drain under ASan
run load timeout 110 "$SRC/scripts/load.sh" --clients 20 --requests 100 --dealers 4 --seconds 1 --bin "$BIN"
expect_rc "load.sh" 0
expect_match "every request answered, none mixed up" "$out" 'clients=20 requests=2000 answered=2000 wrong=0 failed=0 '
expect_match "a GET flood" "$out" 'type=GET sent=[1-9]'
expect_match "a SET flood" "$out" 'type=SET sent=[1-9]'
expect_match "SETs beyond the backlog limit are refused at once" "$out" 'error [1-9][0-9]* x RuntimeError: the daemon is busy: 10,000 requests are waiting to be served'
expect_in "markd answers after the floods" "$out" "after the floods: markd answers"
finish "load"
