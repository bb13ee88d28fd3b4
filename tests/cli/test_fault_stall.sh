#!/usr/bin/env bash
# The short pass of scripts/stall.sh (docs/reliability.md, "Faults and
# load"): a burst of 100,000 broadcasts (30,000 can fit in the kernel's
# socket buffers, and then no queue fills), first without and then with a
# subscriber that never reads. The live subscriber (an mktl::Client, slower
# than the burst) gets every broadcast of both bursts; broadcasts dropped for
# the stalled subscriber are counted, and none without it; GETs are answered
# during the bursts (their latency is stall.sh's figure, not checked here);
# the daemon's RSS stays within 64 MB of its start.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_fault_stall
need_source
skip_rest_unless_built "mktl_faults, mktl_bench_daemon (MKTL_BUILD_BENCH=ON)" "$BIN/mktl_faults" "$BIN/mktl_bench_daemon"

run stall timeout 60 "$SRC/scripts/stall.sh" --count 100000 --bin "$BIN"
expect_rc "stall.sh --count 100000" 0
expect_match "without the stalled subscriber: the live one got all, no drop counted" "$out" \
  'stalled_subscriber=no broadcasts=100000 live_received=100000 client_dropped=0 publish_s=[0-9.]+ received_s=[0-9.]+ drops_counted=0[[:space:]]'
expect_match "with it: the live subscriber got all, drops counted for the stalled one" "$out" \
  'stalled_subscriber=yes broadcasts=100000 live_received=100000 client_dropped=0 publish_s=[0-9.]+ received_s=[0-9.]+ drops_counted=[1-9]'
expect_match "the drop was logged" "$out" 'took no broadcasts for [0-9]+ ms while their queues were full'
expect_eq "GETs were answered during both bursts" "$(grep -c 'get_burst_ms p50=[0-9.]* p99=[0-9.]* n=[1-9]' <<<"$out")" 2
rss=$(sed -n 's/^rss_kb before=\([0-9]*\) max=\([0-9]*\) .*/\1 \2/p' <<<"$out" | tail -1)
read -r rss0 rss_max <<<"$rss"
if [[ ${MKTL_SANITIZED:-0} == 1 ]]; then
  echo "not checked: RSS under ASan (freed blocks wait in its quarantine): $rss0 -> $rss_max kB"
elif ((rss_max - rss0 < 65536)); then pass "RSS bounded ($rss0 -> $rss_max kB)"; else fail "RSS grew from $rss0 to $rss_max kB"; fi
finish "stall"
