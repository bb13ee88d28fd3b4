#!/usr/bin/env bash
# Daemon restarts under long-running clients (docs/reliability.md, "Faults
# and load"). markd serves store rs (discovery on private ports, broadcast
# 127.255.255.255); `mk watch rs.x` and `mktl_faults follow rs x` (an
# mktl::Client: a subscription, and a GET every 100 ms with a 2 s timeout)
# find it by name and run throughout. markd is then killed (SIGKILL) and
# started again, first on the same ports, then on new ones; after each start
# a new value of rs.x is set, and the time until each client shows it is
# measured (from the ready line), as are the errors and durations of the
# GETs made while markd was down.
#
# Usage: scripts/restart.sh [--bin DIR] [--down S] [--wait S]
#   --bin DIR  the build's bin directory (default $MKTL_BIN, else build/bin):
#              markd, mk and mktl_faults (MKTL_BUILD_BENCH=ON)
#   --down S   seconds markd stays down (default 2)
#   --wait S   seconds each client gets to show the new value (default 20)
# Prints one line per restart and client; exit status 0 when both clients
# resumed after both restarts, 1 otherwise, 2 usage.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MKTL_BIN:-$root/build/bin}
down=2 wait_s=20
while (($#)); do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --down) down=$2; shift 2 ;;
    --wait) wait_s=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "restart.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for need in markd mk mktl_faults; do
  [[ -x $bin/$need ]] || { echo "restart.sh: $bin/$need is not built" >&2; exit 2; }
done
export MKTL_BIN=$bin
source "$root/tests/cli/lib.sh"
cli_init restart
private_discovery_ports
export MKTL_DNS_SD_TIMEOUT=0

echo '{"x": {"type": "numeric", "description": "restart item", "initial": 0}}' >"$work/rs.json"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rep_p=$(free_port) pub_p=$(free_port)
run_markd() {  # NAME REP PUB: sets markd, ready_ms
  start --first "$1" '^markd: rs rs1 ready rep=([0-9]+) pub=([0-9]+)' "$bin/markd" --bind 127.0.0.1 \
    --hostname 127.0.0.1 --catalog "$work/rs.json" --rep-port "$2" --pub-port "$3" rs rs1
  exec {fd}<&-
  markd=$pid
  ready_ms=$(date +%s%3N)
  ep=tcp://127.0.0.1:${BASH_REMATCH[1]}
  echo "$1: rep=${BASH_REMATCH[1]} pub=${BASH_REMATCH[2]}"
}
run_markd markd1 "$rep_p" "$pub_p"
"$bin/mk" --connect "$ep" set rs.x 1 >/dev/null

# The clients' lines go to files, each with its own time stamp (epoch s).
"$bin/mk" --json watch rs.x >"$work/watch.log" 2>"$work/watch.stderr" &
pids+=($!)
"$bin/mktl_faults" follow rs x >"$work/follow.log" 2>"$work/follow.stderr" &
pids+=($!)
watch_has() { grep -q "\"value\":$1[,}]" "$work/watch.log"; }
follow_has() { grep -q "bcast $1\$" "$work/follow.log"; }
both_have() { watch_has "$1" && follow_has "$1"; }
# A subscription takes effect a moment after it is made: set new values until
# both clients have shown one.
started=no
for ((v = 100; v < 120; v++)); do
  "$bin/mk" --connect "$ep" set rs.x $v >/dev/null
  if wait_for 1 both_have $v; then started=yes; break; fi
done
[[ $started == yes ]] || die "the clients did not start: $(tail -n 2 "$work/watch.log" "$work/follow.log" "$work/watch.stderr" "$work/follow.stderr")"
echo "both clients follow rs.x"

follow_get_ok() {  # follow logged a GET answered after the ready line
  awk -v b="$ready_ms" '$1 * 1000 > b && $2 == "get" && $3 == "ok" { found = 1; exit } END { exit !found }' "$work/follow.log"
}
resumed=0
measure() {  # LABEL VALUE
  local label=$1 v=$2 deadline=$((SECONDS + wait_s)) w f
  # A GET after the move answers only once the client has found the daemon
  # again, which may come after the broadcast: wait for both.
  until watch_has "$v" && follow_has "$v" && follow_get_ok || ((SECONDS >= deadline)); do sleep 0.05; done
  # mk watch --json has no receive time: the moment it was first seen here.
  if watch_has "$v"; then w="resumed"; resumed=$((resumed + 1)); else w="did NOT resume within ${wait_s} s"; fi
  f=$(awk -v v="$v" '$2 == "bcast" && $3 == v {print $1; exit}' "$work/follow.log")
  if [[ -n $f ]]; then
    resumed=$((resumed + 1))
    f="resumed, new value $(awk -v a="$f" -v b="$set_ms" 'BEGIN {printf "%.0f", a * 1000 - b}') ms after its SET"
  else
    f="did NOT resume within ${wait_s} s"
  fi
  echo "$label: mk watch $w; follow $f"
  if [[ $w != resumed* || $f != resumed* ]]; then
    echo "  follow's last lines:"; tail -3 "$work/follow.log" | sed 's/^/    /'
    echo "  mk watch's last lines:"; tail -n 2 "$work/watch.log" "$work/watch.stderr" | sed 's/^/    /'
  fi
  awk -v b="$ready_ms" '$1 * 1000 > b && $2 == "get" && $3 == "ok" {
      printf "  follow: GETs answered again %.0f ms after the ready line\n", $1 * 1000 - b; found = 1; exit }
    END { if (!found) print "  follow: no GET answered after the ready line" }' "$work/follow.log"
  # The GETs made while markd was down: how they failed and how long each took.
  awk -v a="$kill_ms" -v b="$ready_ms" '$1 * 1000 >= a && $1 * 1000 <= b && $2 == "get" {
      t = $0; sub(/^[0-9.]+ get /, "", t); sub(/ \([0-9.]+ s\)$/, "", t); n[t]++
      d = $(NF - 1); gsub(/[()]/, "", d); if (d + 0 > max) max = d + 0 }
    END { for (t in n) printf "  GETs between the kill and the ready line: %d x %s\n", n[t], t
          printf "  longest of them: %.3f s\n", max }' "$work/follow.log"
}

restart() {  # LABEL REP PUB VALUE
  kill_ms=$(date +%s%3N)
  kill -9 "$markd"
  wait "$markd" 2>/dev/null || true
  sleep "$down"
  run_markd "$1" "$2" "$3"
  set_ms=$(date +%s%3N)
  local rc=0
  timeout 30 "$bin/mk" --connect "$ep" set rs.x "$4" >/dev/null 2>&1 || rc=$?
  ((rc == 0)) || echo "$1: mk set of the new value failed ($rc)"
  measure "$1" "$4"
}
echo "restart: $(date -u '+%F %H:%M') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
restart "same ports" "$rep_p" "$pub_p" 3
restart "new ports" 0 0 4
stop "$markd"
((resumed == 4)) || exit 1
