#!/usr/bin/env bash
# The short pass of scripts/restart.sh (docs/reliability.md, "Faults and
# load"): markd killed and restarted under `mk watch` and a C++ client
# (mktl_faults follow). On the same ports both clients' subscriptions resume
# by themselves; while markd is down each GET fails with a clear error
# within about a second instead of hanging; after the restart on new ports
# the C++ client's GETs find the daemon again, and both subscriptions follow
# it, showing the value set after the move.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_fault_restart
need_source
skip_rest_unless_built "mktl_faults (MKTL_BUILD_BENCH=ON)" "$BIN/mktl_faults"

run restart timeout 60 "$SRC/scripts/restart.sh" --down 0.5 --wait 5 --bin "$BIN"
expect_in "both clients followed rs.x" "$out" "both clients follow rs.x"
expect_match "same ports: both subscriptions resume" "$out" 'same ports: mk watch resumed; follow resumed, new value [0-9]+ ms after its SET'
expect_match "GETs while down fail with a clear error" "$out" 'GETs between the kill and the ready line: [0-9]+ x error rs\.x @ tcp://127\.0\.0\.1:[0-9]+: no acknowledgement received in 0\.500 s'
longest=$(sed -n 's/^  longest of them: \([0-9.]*\) s$/\1/p' <<<"$out" | head -1)
if [[ -n $longest ]] && awk -v l="$longest" 'BEGIN { exit !(l < 2.6) }'; then
  pass "no GET hung while markd was down (longest $longest s)"
else
  fail "a GET took too long while markd was down: '$longest' s"
fi
expect_match "new ports: the C++ client's GETs find the daemon again" "$(sed -n '/^new ports: rep/,$p' <<<"$out")" 'follow: GETs answered again [0-9]+ ms after the ready line'
expect_match "new ports: both subscriptions follow the daemon" "$out" 'new ports: mk watch resumed; follow resumed, new value [0-9]+ ms after its SET'
finish "restart"
