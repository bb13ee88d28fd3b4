#!/usr/bin/env bash
# A stalled subscriber during a burst of broadcasts (docs/reliability.md,
# "Faults and load"). mktl_bench_daemon publishes N broadcasts of bench.bcast
# (a SET of bench.burst) while one raw SUB subscribes and never reads and one
# mktl::Client subscriber counts them; another Client times GETs of
# bench.value idle and during the burst; the daemon's RSS is sampled; the
# built-in bench._bench1drops counts the broadcasts dropped for the stalled
# subscriber. The same bursts are run first without the stalled subscriber,
# for comparison.
#
# Usage: scripts/stall.sh [--count N] [--runs R] [--bin DIR]
#   --count N  broadcasts in the burst (default 100000)
#   --runs R   bursts of each kind, each with its idle GETs (default 1)
#   --bin DIR  the build's bin directory (default $MKTL_BIN, else build/bin):
#              mktl_bench_daemon and mktl_faults (MKTL_BUILD_BENCH=ON)
# Prints mktl_faults' figures; exit status 0 when the live subscriber got
# every broadcast of every burst, drops were counted with the stalled
# subscriber and none without it, 1 otherwise, 2 usage.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
count=100000
runs=1
bin=${MKTL_BIN:-$root/build/bin}
while (($#)); do
  case $1 in
    --count) count=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "stall.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $count =~ ^[0-9]+$ && $count -gt 0 ]] || { echo "stall.sh: --count needs a positive integer" >&2; exit 2; }
[[ $runs =~ ^[0-9]+$ && $runs -gt 0 ]] || { echo "stall.sh: --runs needs a positive integer" >&2; exit 2; }
for need in mktl_bench_daemon mktl_faults; do
  [[ -x $bin/$need ]] || { echo "stall.sh: $bin/$need is not built" >&2; exit 2; }
done
export MKTL_BIN=$bin
source "$root/tests/cli/lib.sh"
cli_init stall

start_drained daemon '^bench_daemon ready rep=([0-9]+) pub=([0-9]+)' "$bin/mktl_bench_daemon"
rep=${BASH_REMATCH[1]} pub=${BASH_REMATCH[2]}
echo "stall: $(date -u '+%F %H:%M') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
for stalled in 0 1; do  # the same burst without the stalled subscriber first, for comparison
  "$bin/mktl_faults" stall "tcp://127.0.0.1:$rep" --pub "tcp://127.0.0.1:$pub" --pid "$pid" --count "$count" \
    --runs "$runs" --stalled $stalled || rc=1
done
grep -m3 -E "took no broadcasts|not keeping up" "$work/daemon.stderr" || echo "(no warning logged)"
exit $rc
