#!/usr/bin/env bash
# Multi-host, one store served by two daemons (issue 12): the heater example
# (store heater, alias heater1) on host a, a second daemon of store heater
# (alias heater2, its own keys) on host b beside mkregistryd, and mk on host
# c, which knows only the registry (broadcast and DNS-SD off). c reaches the
# keys of both daemons as one store: list, get, set and watch, and a third
# daemon redefining a key of a live one is refused.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mh_init test_mh_two_daemons
need_source
for need in markd mk mkregistryd heatersim; do [[ -x $BIN/$need ]] || die "$BIN/$need is not built"; done

mh_registry b registry --discovery-wait 0.5
pass "mkregistryd on b: $line"
mh_heater a heater
pass "heater1 on a: $line"
cat >"$work/heater2.json" <<'EOF'
{"humidity": {"type": "numeric", "units": "%", "format": "%.0f", "initial": 40},
 "fan":      {"type": "boolean", "enumerators": {"0": "Off", "1": "On"}, "initial": 0}}
EOF
start_drained heater2 '^markd: heater heater2 ready' "$ON" b "$BIN/markd" --hostname "${MH_IP[b]}" \
  -c "$work/heater2.json" heater heater2
pass "heater2 on b: $line"

client_home c registry "${MH_IP[b]}"
export MKTL_DNS_SD_TIMEOUT=0
mk_c() { local name=$1; shift; run "$name" "$ON" c "$BIN/mk" -w 5 "$@"; }

mk_c disc discover
expect_out "the registry lists one store" "1 store discovered: heater"
mk_c list list heater
expect_rc "list heater" 0
expect_in "list shows heater1's keys" "$out" "setpoint"
expect_in "list shows heater2's keys" "$out" "humidity"

mk_c get1 get heater.setpoint heater.humidity heater.fan
expect_rc "get keys of both daemons at once" 0
expect_in "heater1 on a answers" "$out" "setpoint: 20.00 degC"
expect_in "heater2 on b answers" "$out" "humidity: 40 %"
expect_in "heater2 on b answers (an enumerated key)" "$out" "fan: Off"

mk_c set1 set heater.setpoint=25 heater.humidity=55
expect_rc "set keys of both daemons at once" 0
mk_c get2 get heater.setpoint heater.humidity
expect_in "heater1's key set" "$out" "setpoint: 25.00 degC"
expect_in "heater2's key set" "$out" "humidity: 55 %"

# Each block is reached at its own host: the cached blocks name a and b.
cache=$work/c/home/client/cache/heater
grep -qs "\"hostname\":\"${MH_IP[a]}\"" "$cache"/* && grep -qs "\"hostname\":\"${MH_IP[b]}\"" "$cache"/* &&
  pass "c holds both blocks, one at a and one at b" || fail "cached blocks: $(cat "$cache"/* 2>&1)"

# watch keys of both daemons: heater1's temperature flows; a set of heater2's
# fan shows up in the same watch.
start_drained watch '^[0-9:.]+ +(temperature|fan): ' "$ON" c "$BIN/mk" watch heater.temperature heater.fan
watch_pid=$pid
temperature_lines() { grep -c 'temperature: ' "$work/watch.log" || true; }
has_temperature() { (($(temperature_lines) >= 1)); }
wait_for 10 has_temperature && pass "watch shows heater1's broadcasts from a" || fail "no temperature in: $(cat "$work/watch.log")"
# The watch subscribes to both keys before it prints; a set now is seen.
mk_c set2 set heater.fan=On
expect_out "set heater2's fan from c" "Set heater.fan to On"
fan_on() { grep -q 'fan: On' "$work/watch.log"; }
wait_for 10 fan_on && pass "watch shows heater2's broadcast from b" || fail "no fan broadcast in: $(cat "$work/watch.log")"
stop "$watch_pid"

# A daemon on c that redefines heater1's key is refused by the registry.
echo '{"setpoint": {"type": "numeric"}}' >"$work/clash.json"
run clash "$ON" c "$BIN/markd" --hostname "${MH_IP[c]}" -c "$work/clash.json" heater heater3
expect_rc "a third daemon redefining a live daemon's key does not start" 1
expect_in "the rejection names the key" "$err" "setpoint"

finish "multi-host two daemons"
