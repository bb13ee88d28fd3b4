#!/usr/bin/env bash
# Multi-host discovery (issue 12): markd serving the heater on host a,
# mkregistryd on host b, mk on host c. Host c finds the store
#   1. by UDP broadcast on the segment (10.251.0.255), no registry running;
#   2. through the registry named in its client/registries, broadcast off;
#   3. through Avahi (DNS-SD), broadcast off and no registry;
# and gets, sets and watches items across hosts. Each way is shown to be the
# one used: the others are off for that step, and the step fails once its
# own way is gone too.
set -euo pipefail
# Every check here is about finding a store, none about the ACK timeout: the
# first request to a freshly found daemon may also open its connection, which
# a sanitizer build beside the browser test has taken longer than 0.5 s for.
export MKTL_ACK_TIMEOUT=${MKTL_ACK_TIMEOUT:-2}
source "$(dirname "$0")/lib.sh"
mh_init test_mh_discovery
need_source
for need in markd mk mkregistryd heatersim; do [[ -x $BIN/$need ]] || die "$BIN/$need is not built"; done
[[ -e $LIB/libheater_daemon.so ]] || die "$LIB/libheater_daemon.so is not built"

# Avahi first: markd publishes its service when it starts.
mh_avahi a
mh_avahi c
mh_heater a heater
pass "markd on a: $line"

# mk on c with DNS-SD off, so that a step can succeed only its own way.
mk_c() { local name=$1; shift; run "$name" "$ON" c env MKTL_DNS_SD_TIMEOUT=0 "$BIN/mk" -w 5 "$@"; }

# ---- 1. broadcast on the shared segment --------------------------------------------
# c's discovery.json has broadcasts off; MKTL_BROADCAST turns them on (a and
# b have the address in their discovery.json).
client_home c none
export MKTL_BROADCAST=$MH_BROADCAST
mk_c get1 get heater.setpoint
expect_out "c finds the heater on a by broadcast to $MH_BROADCAST" "setpoint: 20.00 degC"
if grep -rqs "\"hostname\":\"${MH_IP[a]}\"" "$work/c/home/client/cache/heater"; then
  pass "c's catalog cache holds a's block, at a's address"
else
  fail "c's catalog cache has no block advertised by ${MH_IP[a]}: $(cat "$work"/c/home/client/cache/heater/* 2>&1)"
fi
mk_c set1 set heater.setpoint=31.5
expect_out "set from c to a" "Set heater.setpoint to 31.50 degC"
mk_c get2 get heater.setpoint
expect_out "get from c sees the set" "setpoint: 31.50 degC"
mk_c disc1 discover
expect_out "discover by broadcast lists the store" "1 store discovered: heater"

# watch across hosts: the current value, then broadcasts (the sensor's noise
# changes the reading at each 0.5 s poll).
start watch1 '^[0-9:.]+ +temperature: -?[0-9]' "$ON" c env MKTL_DNS_SD_TIMEOUT=0 "$BIN/mk" watch heater.temperature
watch_pid=$pid
lines=1
reading='temperature: -?[0-9]'
while ((lines < 3)) && read -r -t 5 -u "$fd" line; do
  [[ $line =~ $reading ]] && lines=$((lines + 1))
done
((lines >= 3)) && pass "watch on c prints a's broadcasts ($lines lines)" || fail "watch on c: $lines line(s), last '$line'"
stop "$watch_pid"
exec {fd}<&-

unset MKTL_BROADCAST

# ---- 2. the registry named in client/registries, broadcast off -----------------------
# b's registry finds a's daemon by its start-up broadcast on the segment.
mh_registry b registry --discovery-wait 0.5
registry_pid=$pid
pass "mkregistryd on b: $line"
registry_knows() {
  mk_c disc discover "tcp://${MH_IP[b]}:$registry_rep"
  [[ $out == "1 store discovered: heater" ]]
}
wait_for 10 registry_knows && pass "the registry on b learned the heater on a" || fail "registry on b: $out $err"

client_home c registry "${MH_IP[b]}"
mk_c get3 get heater.setpoint
expect_out "c finds the heater through the registry on b (broadcast off)" "setpoint: 31.50 degC"
mk_c set2 set heater.setpoint=32
expect_out "set through the registry's catalog" "Set heater.setpoint to 32.00 degC"
mk_c disc2 discover
expect_out "discover asks the listed registry" "1 store discovered: heater"

stop "$registry_pid"
client_home c registry "${MH_IP[b]}"
mk_c get4 get heater.setpoint
expect_rc "without the registry (and broadcast off) c cannot find the store" 1
expect_in "it says so" "$err" "no daemon or registry knows the store 'heater'"

# ---- 3. DNS-SD (Avahi), broadcast off and no registry --------------------------------
client_home c none
run get5 "$ON" c "$BIN/mk" -w 5 get heater.setpoint
expect_out "c finds the heater on a through Avahi" "setpoint: 32.00 degC"
if grep -rqs "\"hostname\":\"${MH_IP[a]}\"" "$work/c/home/client/cache/heater"; then
  pass "the block found by DNS-SD is cached (a's address)"
else
  fail "no cached block after DNS-SD"
fi
client_home c none
run set3 "$ON" c "$BIN/mk" -w 5 set heater.setpoint=33
expect_out "set after DNS-SD discovery" "Set heater.setpoint to 33.00 degC"
run disc3 "$ON" c "$BIN/mk" -w 5 discover
expect_out "discover lists the store published by DNS-SD" "1 store discovered: heater"

finish "multi-host discovery"
