#!/usr/bin/env bash
# Load and flood (docs/reliability.md, "Faults and load"). markd serves C
# plain numeric items c000... and one persistent item p;
#   1. `mktl_faults load`: C concurrent clients (threads, each its own
#      mktl::Client) x R requests, SET and GET of the client's own item in
#      turn, each SET's value unique to client and sequence number: every
#      request answered, every GET the client's last acknowledged value;
#   2. `mktl_faults flood`: D raw DEALERs sending GETs, then SETs of the
#      persistent item, without waiting and reading nothing for S seconds,
#      then reading what came back; markd's RSS throughout.
#
# Usage: scripts/load.sh [--clients C] [--requests R] [--dealers D] [--seconds S] [--bin DIR]
#   defaults: 200 clients, 1000 requests each, 50 dealers, 10 s per flood
#   --bin DIR  the build's bin directory (default $MKTL_BIN, else build/bin):
#              markd and mktl_faults (MKTL_BUILD_BENCH=ON)
# Exit status 0 when every load request was answered correctly and markd
# survived both floods, 1 otherwise, 2 usage.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
clients=200 requests=1000 dealers=50 seconds=10
bin=${MKTL_BIN:-$root/build/bin}
while (($#)); do
  case $1 in
    --clients) clients=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --dealers) dealers=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "load.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$clients" "$requests" "$dealers" "$seconds"; do
  [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || { echo "load.sh: counts must be positive integers" >&2; exit 2; }
done
((clients <= 1000)) || { echo "load.sh: at most 1000 clients (items c000-c999)" >&2; exit 2; }
for need in markd mktl_faults; do
  [[ -x $bin/$need ]] || { echo "load.sh: $bin/$need is not built" >&2; exit 2; }
done
export MKTL_BIN=$bin
source "$root/tests/cli/lib.sh"
cli_init load

{
  echo "{"
  for ((i = 0; i < clients; i++)); do
    printf '  "c%03d": {"type": "numeric", "description": "load item"},\n' "$i"
  done
  echo '  "p": {"type": "numeric", "description": "flood item", "initial": 0, "persist": true}'
  echo "}"
} >"$work/load.json"
start --first markd '^markd: ld ld1 ready rep=([0-9]+)' "$bin/markd" --no-discovery --bind 127.0.0.1 \
  --hostname 127.0.0.1 --catalog "$work/load.json" ld ld1
exec {fd}<&-
markd=$pid
ep=tcp://127.0.0.1:${BASH_REMATCH[1]}
echo "load: $(date -u '+%F %H:%M') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
"$bin/mktl_faults" load "$ep" ld --pid "$markd" --clients "$clients" --requests "$requests" || rc=1
for kind in get set; do
  flag=(); [[ $kind == set ]] && flag=(--set)
  "$bin/mktl_faults" flood "$ep" ld p --pid "$markd" --dealers "$dealers" --seconds "$seconds" "${flag[@]}" || rc=1
  if ! kill -0 "$markd" 2>/dev/null; then echo "FAIL: markd died in the $kind flood" >&2; exit 1; fi
done
# Still serving after the floods.
"$bin/mktl_faults" load "$ep" ld --pid "$markd" --clients 2 --requests 10 >/dev/null || { echo "FAIL: markd does not answer after the floods" >&2; rc=1; }
echo "after the floods: markd answers; RSS $(awk '/VmRSS/ {print $2, $3}' /proc/$markd/status)"
stop "$markd"
[[ $rc == 0 ]] || exit 1
