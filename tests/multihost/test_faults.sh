#!/usr/bin/env bash
# Multi-host faults (issue 12): markd serving the heater on host a,
# mkregistryd on host b, and on host c two long-running clients found through
# the registry (broadcast and DNS-SD off): mh_client (C++: a subscription to
# heater.temperature, a GET of heater.setpoint every 200 ms) and mk watch.
#   1. a's link goes down for 5 s and comes back;
#   2. a's daemon is killed and restarted on new ports.
# Each time: the GETs made meanwhile fail with TimeoutError (no hang), the
# registry drops the daemon and learns it again, and both clients' broadcasts
# resume by themselves within 2 s of the daemon being reachable again, GETs
# too, without restarting anything on c.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mh_init test_mh_faults
need_source
for need in markd mk mkregistryd heatersim mh_client; do [[ -x $BIN/$need ]] || die "$BIN/$need is not built"; done

# Liveness checks every 0.5 s, a daemon silent for 2 s is dropped.
mh_registry b registry -v --discovery-wait 0.5 --check-interval 0.5 --drop-after 2
registry_log=$work/registry.stderr
pass "mkregistryd on b: $line"
# Fixed ports (the namespaces are private): the restart moves to others.
mh_heater a heater --rep-port 41001 --pub-port 41002
markd_pid=$pid
pass "markd on a: $line"
grep -q "remember: heater1 .* from ${MH_IP[a]}:41001" "$registry_log" && pass "markd announced itself to the registry" ||
  fail "the registry did not take the announcement: $(tail -3 "$registry_log")"

client_home c registry "${MH_IP[b]}"
export MKTL_DNS_SD_TIMEOUT=0   # passed through `on`: the registry is the only way
start_drained client '^ready$' "$ON" c "$BIN/mh_client" heater.temperature heater.setpoint 200
client_pid=$pid
client_log=$work/client.log
start_drained watch '^[0-9:.]+ +temperature: -?[0-9]' "$ON" c "$BIN/mk" watch heater.temperature
watch_pid=$pid
watch_log=$work/watch.log

# ---- helpers over the clients' output ------------------------------------------------
# The time of the first SUB (or GET ok) line of mh_client after T, if any.
first_sub_after() { awk -v t="$1" '$1 == "SUB" && $2 > t { print $2; exit }' "$client_log"; }
first_get_ok_after() { awk -v t="$1" '$1 == "GET" && $3 == "ok" && $2 > t { print $2; exit }' "$client_log"; }
has_sub_after() { [[ -n $(first_sub_after "$1") ]]; }
has_get_ok_after() { [[ -n $(first_get_ok_after "$1") ]]; }
watch_lines() { wc -l <"$watch_log"; }
watch_grew() { (($(watch_lines) > $1)); }
# within NAME A B LIMIT: B - A <= LIMIT (seconds).
within() {
  if awk -v a="$2" -v b="$3" -v l="$4" 'BEGIN { exit !(b - a <= l) }'; then
    pass "$1 ($(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", b - a }') s)"
  else
    fail "$1: took $(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", b - a }') s, more than $4 s"
  fi
}
# GETs that started in [A, B]: all must have failed with TimeoutError, each
# within LIMIT seconds; at least one must exist.
check_failed_gets() {
  local what=$1 a=$2 b=$3 limit=$4 summary
  summary=$(awk -v a="$a" -v b="$b" -v l="$limit" '
    $1 == "GET" && $2 >= a && $2 <= b { n++; if ($3 != "TimeoutError") bad++; if ($4 > l) slow++ }
    END { printf "%d %d %d", n, bad, slow }' "$client_log")
  read -r n bad slow <<<"$summary"
  if ((n > 0 && bad == 0 && slow == 0)); then
    pass "$what: $n GET(s) failed with TimeoutError, each within $limit s"
  else
    fail "$what: $n GET(s) started in [$a, $b], $bad not a TimeoutError, $slow slower than $limit s; GETs: $(awk \
      -v a="$a" -v b="$b" '$1 == "GET" && $2 >= a - 3 && $2 <= b + 3' "$client_log")"
  fi
}

wait_for 10 has_sub_after 0 && pass "mh_client on c gets a's broadcasts" || die "no broadcast reached mh_client: $(cat "$client_log")"
wait_for 10 has_get_ok_after 0 && pass "mh_client on c gets from a" || die "no GET succeeded: $(cat "$client_log")"
wait_for 10 watch_grew 1 && pass "mk watch on c prints a's broadcasts" || die "mk watch printed nothing new"

# ---- 1. a's link down for 5 s ------------------------------------------------------------
t_down=$(now)
mh_link a down
if wait_for 5 grep -q "drop: heater1" "$registry_log"; then
  pass "the registry drops the daemon while a's link is down"
else
  fail "the registry did not drop the daemon: $(tail -3 "$registry_log")"
fi
sleep "$(awk -v t="$t_down" -v n="$(now)" 'BEGIN { d = t + 5 - n; print (d > 0 ? d : 0) }')"  # the fault lasts 5 s
watch_before=$(watch_lines)
t_up=$(now)
mh_link a up
if wait_for 10 has_sub_after "$t_up"; then
  within "mh_client's subscription resumes after the link comes back" "$t_up" "$(first_sub_after "$t_up")" 2
else
  fail "mh_client's subscription did not resume: $(tail -5 "$client_log")"
fi
if wait_for 10 watch_grew "$watch_before"; then
  within "mk watch resumes after the link comes back" "$t_up" "$(now)" 2.2
else
  fail "mk watch did not resume: $(tail -3 "$watch_log")"
fi
wait_for 10 has_get_ok_after "$t_up" && within "GETs succeed again" "$t_up" "$(first_get_ok_after "$t_up")" 2 ||
  fail "no GET succeeded after the link came back: $(tail -5 "$client_log")"
check_failed_gets "while the link was down" "$(awk -v t="$t_down" 'BEGIN { printf "%.3f", t + 0.5 }')" \
  "$(awk -v t="$t_up" 'BEGIN { printf "%.3f", t - 1.5 }')" 1.5
if wait_for 10 grep -q "relearn: heater1" "$registry_log"; then
  pass "the registry takes the daemon back once it answers"
else
  fail "the registry did not relearn the daemon: $(tail -3 "$registry_log")"
fi

# ---- 2. the daemon killed, restarted on new ports ------------------------------------------
drops_before=$(grep -c "drop: heater1" "$registry_log" || true)
t_kill=$(now)
kill -KILL "$markd_pid"
wait_exit "$markd_pid" 5 2>/dev/null   # (without bash's "Killed" line)
registry_dropped_again() { (($(grep -c "drop: heater1" "$registry_log") > drops_before)); }
if wait_for 6 registry_dropped_again; then
  pass "the registry drops the killed daemon"
else
  fail "the registry did not drop the killed daemon: $(tail -3 "$registry_log")"
fi
watch_before=$(watch_lines)
mh_heater a heater2 --rep-port 41003 --pub-port 41004
t_ready=$(now)
pass "markd restarted on a on new ports: $line"
grep -q "remember: heater1 .* from ${MH_IP[a]}:41003" "$registry_log" && pass "the registry learns the new address" ||
  fail "the registry did not take the new address: $(tail -3 "$registry_log")"
if wait_for 10 has_sub_after "$t_ready"; then
  within "mh_client's subscription follows the daemon to its new ports" "$t_ready" "$(first_sub_after "$t_ready")" 2
else
  fail "mh_client's subscription did not resume: $(tail -5 "$client_log")"
fi
if wait_for 10 watch_grew "$watch_before"; then
  within "mk watch follows the daemon to its new ports" "$t_ready" "$(now)" 2.2
else
  fail "mk watch did not resume: $(tail -3 "$watch_log")"
fi
wait_for 10 has_get_ok_after "$t_ready" && within "GETs reach the daemon at its new ports" "$t_ready" \
  "$(first_get_ok_after "$t_ready")" 2 || fail "no GET succeeded after the restart: $(tail -5 "$client_log")"
check_failed_gets "while the daemon was down" "$(awk -v t="$t_kill" 'BEGIN { printf "%.3f", t + 0.3 }')" \
  "$(awk -v t="$t_ready" 'BEGIN { printf "%.3f", t - 1.5 }')" 1.5
if grep -q "^GET .* exception " "$client_log"; then fail "a GET failed with something else than an mktl error"; fi

# Both clients kept running all along.
kill -0 "$client_pid" 2>/dev/null && pass "mh_client ran through both faults" || fail "mh_client is gone"
kill -0 "$watch_pid" 2>/dev/null && pass "mk watch ran through both faults" || fail "mk watch is gone"
finish "multi-host faults"
