#!/usr/bin/env bash
# kill -9 of a daemon under a stream of SETs, in a loop (docs/reliability.md,
# "Faults and load"). Each cycle starts markd (four persistent numeric items
# and, with configs/orders.toml, the record item book_new), checks what the
# previous cycle's writer had acknowledged, starts `mktl_faults writer` (SETs
# of the four items in turn, one transaction every fourth SET, each
# acknowledged value logged), kills markd with SIGKILL at a random moment
# 50-550 ms later, and starts it again. A persistent item must serve its last
# acknowledged value (or the one in flight after it); an answered
# transaction must be committed.
#
# Usage: scripts/kill9.sh [--cycles N] [--bin DIR] [--no-txn]
#   --cycles N  kill/restart cycles (default 100)
#   --bin DIR   the build's bin directory (default $MKTL_BIN, else build/bin):
#               markd and mktl_faults (MKTL_BUILD_BENCH=ON)
#   --no-txn    persistent items only
# Prints one line per cycle and a summary:
#   kill9: cycles=N sets_acked=A lost=0 inflight_applied=F txns=T txn_lost=0 restart_ms median=M max=X
# Exit status 0 if nothing acknowledged was lost, 1 otherwise, 2 usage.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cycles=100
bin=${MKTL_BIN:-$root/build/bin}
txn=yes
while (($#)); do
  case $1 in
    --cycles) cycles=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --no-txn) txn=no; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "kill9.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $cycles =~ ^[0-9]+$ && $cycles -gt 0 ]] || { echo "kill9.sh: --cycles needs a positive integer" >&2; exit 2; }
for need in markd mktl_faults; do
  [[ -x $bin/$need ]] || { echo "kill9.sh: $bin/$need is not built" >&2; exit 2; }
done
export MKTL_BIN=$bin MKTL_SOURCE=$root
source "$root/tests/cli/lib.sh"
cli_init kill9

items=(p0 p1 p2 p3)
{
  echo "{"
  for k in "${items[@]}"; do
    printf '  "%s": {"type": "numeric", "description": "kill9 item", "initial": 0, "persist": true}' "$k"
    [[ $k == "${items[-1]}" ]] && echo || echo ","
  done
  echo "}"
} >"$work/k9.json"
daemon=(--catalog "$work/k9.json")
writer_txn=()
if [[ $txn == yes ]]; then
  cp "$root/configs/orders.toml" "$work/orders.toml"  # its database, orders.db, goes beside it
  daemon+=(--mkio "$work/orders.toml")
  writer_txn=(--txn book_new)
fi

now_ms() { date +%s%3N; }
echo "kill9: $(date -u '+%F %H:%M') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
acked=0 lost=0 inflight=0 txns=0 txn_lost=0
restart_ms=()

# check_log CYCLE: the previous writer's log against what the daemon serves now.
check_log() {
  local log=$work/log.$1 result
  result=$("$bin/mktl_faults" check "$ep" k9 --log "$log" "${writer_txn[@]}") || true
  [[ $result =~ acked=([0-9]+)\ lost=([0-9]+)\ inflight=([0-9]+)\ txns=([0-9]+)\ txn_lost=([0-9]+) ]] ||
    die "cycle $1: check failed: $result"
  acked=$((acked + BASH_REMATCH[1])); lost=$((lost + BASH_REMATCH[2])); inflight=$((inflight + BASH_REMATCH[3]))
  txns=$((txns + BASH_REMATCH[4])); txn_lost=$((txn_lost + BASH_REMATCH[5]))
  if ((BASH_REMATCH[2] + BASH_REMATCH[5])); then echo "$result" >&2; fi
  check_line="acked=${BASH_REMATCH[1]} lost=${BASH_REMATCH[2]} txns=${BASH_REMATCH[4]} txn_lost=${BASH_REMATCH[5]}"
}

for ((c = 1; c <= cycles + 1; c++)); do
  t0=$(now_ms)
  start --first "markd$c" '^markd: k9 k9a ready rep=([0-9]+)' "$bin/markd" --no-discovery --bind 127.0.0.1 \
    --hostname 127.0.0.1 "${daemon[@]}" k9 k9a
  exec {fd}<&-
  markd=$pid
  ep=tcp://127.0.0.1:${BASH_REMATCH[1]}
  ((c == 1)) || restart_ms+=($(($(now_ms) - t0)))
  if ((c > 1)); then
    check_log $((c - 1))
    echo "cycle $((c - 1)): $check_line restart_ms=${restart_ms[-1]}"
  fi
  if ((c > cycles)); then
    stop "$markd"
    break
  fi
  start --first "writer$c" '^writer running' "$bin/mktl_faults" writer "$ep" k9 --log "$work/log.$c" \
    --start $((c * 10000000)) "${writer_txn[@]}" "${items[@]}"
  exec {fd}<&-
  writer=$pid
  sleep "0.$(printf '%03d' $((50 + RANDOM % 500)))"
  kill -9 "$markd"
  wait "$markd" 2>/dev/null || true
  kill -TERM "$writer" 2>/dev/null || true
  wait_exit "$writer" 10
done

sorted=($(printf '%s\n' "${restart_ms[@]}" | sort -n))
median=${sorted[$((${#sorted[@]} / 2))]}
echo "kill9: cycles=$cycles sets_acked=$acked lost=$lost inflight_applied=$inflight txns=$txns txn_lost=$txn_lost" \
  "restart_ms median=$median max=${sorted[-1]}"
((lost == 0 && txn_lost == 0)) || exit 1
