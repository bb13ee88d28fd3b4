#!/usr/bin/env bash
# CLI test of the heater: heatersim's line protocol over TCP, then the heater
# example daemon end to end (heatersim + markd + mk).
#
# Env (set by ctest): MKTL_BIN (the build's bin dir), MKTL_SOURCE (the source
# tree), MKTL_BROADCAST (127.255.255.255: nothing leaves this machine).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_heater
need_source

###########################################################################
# 1. heatersim on its own
###########################################################################
[[ -x "$BIN/heatersim" ]] || die "$BIN/heatersim is not built"

start_drained heatersim '^PORT [0-9]+$' "$BIN/heatersim" --port 0 --seed 7 --time-constant 0.5
SIM_PID=$pid
SIM_PORT=${line#PORT }
pass "heatersim listens on port $SIM_PORT"

exec 3<>"/dev/tcp/127.0.0.1/$SIM_PORT" || die "cannot connect to heatersim"

ask 3 'TEMP?';        expect_match "TEMP? answers a reading with 2 decimals" "$REPLY" '^TEMP -?[0-9]+\.[0-9]{2}$'
t=${REPLY#TEMP }
expect_match "temperature starts near ambient 20" "$t" '^(19\.[89]|20\.[01])[0-9]$'
ask 3 'SETP?';        expect_eq "SETP? default" "$REPLY" "SETP 20.0"
ask 3 'POWER?';       expect_eq "POWER? default" "$REPLY" "POWER OFF"
ask 3 'STATUS?';      expect_eq "STATUS? idle while power off" "$REPLY" "STATUS idle"
ask 3 'MODE?';        expect_eq "MODE? default" "$REPLY" "MODE AUTO"
ask 3 'SETP 45';      expect_eq "SETP 45" "$REPLY" "OK"
ask 3 'SETP?';        expect_eq "SETP? after set" "$REPLY" "SETP 45.0"
ask 3 'SETP 150.5';   expect_match "SETP above 150 rejected" "$REPLY" '^ERR .*range'
ask 3 'SETP -50.5';   expect_match "SETP below -50 rejected" "$REPLY" '^ERR .*range'
ask 3 'SETP warm';    expect_match "SETP with a bad number rejected" "$REPLY" '^ERR bad number'
ask 3 'SETP nan';     expect_match "SETP nan rejected" "$REPLY" '^ERR bad number'
ask 3 'SETP?';        expect_eq "rejected SETs left the setpoint alone" "$REPLY" "SETP 45.0"
ask 3 'POWER MAYBE';  expect_match "POWER with a bad argument rejected" "$REPLY" '^ERR '
ask 3 'MODE BOGUS';   expect_match "MODE with a bad argument rejected" "$REPLY" '^ERR '
ask 3 'FROB 12';      expect_match "unknown command rejected" "$REPLY" '^ERR unknown command'
ask 3 'power on';     expect_eq "commands are case-insensitive" "$REPLY" "OK"
ask 3 'POWER?';       expect_eq "POWER? after POWER ON" "$REPLY" "POWER ON"
ask 3 'STATUS?';      expect_eq "STATUS? heating below the setpoint" "$REPLY" "STATUS heating"

# A second client at the same time sees the same controller.
exec 5<>"/dev/tcp/127.0.0.1/$SIM_PORT" || die "cannot open a second connection"
ask 5 'SETP?';        expect_eq "second client sees the setpoint" "$REPLY" "SETP 45.0"
ask 3 'SETP 40';      expect_eq "first client sets while second is connected" "$REPLY" "OK"
ask 5 'SETP?';        expect_eq "second client sees the new setpoint" "$REPLY" "SETP 40.0"

# Physics: with a 0.5 s time constant it settles within a few seconds.
temp_above() { ask 3 'TEMP?'; awk -v t="${REPLY#TEMP }" -v lim="$1" 'BEGIN { exit !(t > lim) }'; }
status_is() { ask 5 'STATUS?'; [[ "$REPLY" == "STATUS $1" ]]; }
if wait_for 10 temp_above 30; then pass "temperature rises toward the setpoint"; else fail "temperature did not rise above 30 (last '$REPLY')"; fi
if wait_for 10 status_is "at setpoint"; then pass "controller reaches the setpoint"; else fail "never at setpoint (last '$REPLY')"; fi
if temp_above 41; then fail "temperature overshoots the setpoint 40: $REPLY"; else pass "no overshoot"; fi
ask 3 'MODE STANDBY'; expect_eq "MODE STANDBY" "$REPLY" "OK"
ask 3 'STATUS?';      expect_eq "standby stops regulation" "$REPLY" "STATUS idle"
ask 3 'MODE AUTO';    expect_eq "MODE AUTO" "$REPLY" "OK"
ask 3 'SETP 0';       expect_eq "SETP 0" "$REPLY" "OK"
if wait_for 10 status_is cooling; then pass "STATUS cooling above the setpoint"; else
  # It may already have passed through cooling into the band.
  expect_eq "STATUS after lowering the setpoint" "$REPLY" "STATUS at setpoint"
fi
ask 3 'POWER OFF'; ask 3 'SETP 20'
exec 5>&-

# Garbage does not kill the server: a line too long is refused, others go on.
exec 6<>"/dev/tcp/127.0.0.1/$SIM_PORT" || die "cannot open a third connection"
head -c 5000 /dev/zero | tr '\0' 'x' >&6
junk=""; IFS= read -r -t 5 -u 6 junk || true; expect_match "over-long line refused" "$junk" '^ERR line too long'
exec 6>&-
ask 3 'SETP?';        expect_eq "server still answers after garbage" "$REPLY" "SETP 20.0"
exec 3>&-

# Bad usage exits 2.
run badport "$BIN/heatersim" --port nope; expect_eq "bad --port exits 2" "$rc" "2"
run help "$BIN/heatersim" --help; expect_rc "heatersim --help" 0
expect_in "--help has an Exit status section" "$out" "Exit status"

###########################################################################
# 2. The heater example daemon end to end: markd + mk
###########################################################################
skip_rest_unless_built "heater end-to-end" "$BIN/markd" "$BIN/mk" "$LIB/libheater_daemon.so"

private_discovery_ports
printf '{"host": "127.0.0.1", "port": %d}\n' "$SIM_PORT" >"$work/heater-app.json"  # for --check

run check "$BIN/markd" --check -c "$SRC/configs/heater.json" -m "$LIB/libheater_daemon.so" -s HeaterDaemon \
  -a "$work/heater-app.json" heater heater1
expect_rc "markd --check accepts the heater catalog and module" 0

# Without a controller address the daemon refuses to start, saying what to set.
run noaddr env -u HEATER_ADDRESS timeout 20 "$BIN/markd" -c "$SRC/configs/heater.json" \
  -m "$LIB/libheater_daemon.so" -s HeaterDaemon heater heater1
expect_eq "markd without a controller address exits 78 (EX_CONFIG)" "$rc" "78"
expect_match "and names HEATER_ADDRESS" "$out$err" 'HEATER_ADDRESS'

start_example markd heater HeaterDaemon "$SIM_PORT"
MARKD_PID=$pid
pass "markd serves the heater ($line)"
# The first poll of the controller (every 0.5 s) gives the first value.
temperature_shown() { mk_ok get heater.temperature; ((rc == 0)) && [[ "$OUT" =~ temperature:\ -?[0-9]+\.[0-9]{2}\ degC ]]; }
if wait_for 20 temperature_shown; then
  pass "mk get heater.temperature shows the controller's reading with 2 decimals and units ($OUT)"
else
  die "mk get heater.temperature never showed a temperature: $OUT"
fi
heater_status_is() { mk_ok get heater.status; ((rc == 0)) && [[ "$OUT" =~ $1 ]]; }
if wait_for 10 heater_status_is idle; then pass "status is read from the controller"; else
  fail "status never idle: $OUT"; fi

mk_ok set heater.setpoint=45
expect_eq "mk set heater.setpoint=45 exits 0" "$rc" "0"; ((rc == 0)) || echo "$OUT"
exec 3<>"/dev/tcp/127.0.0.1/$SIM_PORT"
ask 3 'SETP?'; expect_eq "the SET reached the controller" "$REPLY" "SETP 45.0"
mk_ok get heater.setpoint; expect_match "mk get heater.setpoint shows 45" "$OUT" '45(\.0+)?'

mk_ok set heater.setpoint=200
expect_eq "setpoint 200 is rejected with exit 1" "$rc" "1"
expect_match "the rejection says why" "$OUT" '200'
ask 3 'SETP?'; expect_eq "the rejected SET never reached the controller" "$REPLY" "SETP 45.0"

mk_ok set heater.power=On
expect_eq "mk set heater.power=On exits 0" "$rc" "0"; ((rc == 0)) || echo "$OUT"
ask 3 'POWER?'; expect_eq "power reached the controller" "$REPLY" "POWER ON"
mk_ok get heater.power; expect_match "mk get heater.power shows On" "$OUT" 'On'
if wait_for 10 heater_status_is 'heating|at setpoint'; then pass "status follows the controller"; else fail "status never heating: $OUT"; fi

mk_ok set heater.mode=Standby; expect_eq "mk set heater.mode=Standby exits 0" "$rc" "0"
ask 3 'MODE?'; expect_eq "mode reached the controller" "$REPLY" "MODE STANDBY"
mk_ok set heater.mode=Auto
exec 3>&-

mk_ok set heater.temperature=5
expect_eq "temperature is read-only (exit 1)" "$rc" "1"

timeout 3 "${MK[@]}" watch heater.temperature >"$work/watch.out" 2>&1 || true  # timeout ends it
lines=$(grep -cE 'temperature: -?[0-9]+\.[0-9]{2}' "$work/watch.out" || true)
if ((lines >= 2)); then pass "mk watch shows $lines temperature updates in 3 s"; else
  fail "mk watch showed $lines updates:"; cat "$work/watch.out"; fi

# The controller going away makes requests fail with a clear message, and
# coming back is picked up by reconnecting.
stop "$SIM_PID"
expect_eq "heatersim exits 0 on SIGTERM" "$rc" "0"
mk_ok set heater.setpoint=30
expect_eq "SET with the controller down exits 1" "$rc" "1"
expect_match "and names the heater controller" "$OUT" 'heater controller'

start_drained heatersim2 '^PORT [0-9]+$' "$BIN/heatersim" --port "$SIM_PORT" --seed 8
mk_ok set heater.setpoint=30
expect_eq "SET after the controller came back exits 0 (reconnected)" "$rc" "0"
((rc == 0)) || echo "$OUT"

stop "$MARKD_PID"
expect_eq "markd exits 0 on SIGTERM" "$rc" "0"

# The setpoint persists: a restarted daemon gives a fresh controller the last
# setpoint it was told (30).
start_drained heatersim3 '^PORT [0-9]+$' "$BIN/heatersim" --port 0 --seed 9
SIM3_PORT=${line#PORT }
start_example markd2 heater HeaterDaemon "$SIM3_PORT"
MARKD_PID=$pid
exec 3<>"/dev/tcp/127.0.0.1/$SIM3_PORT"
setpoint_is_30() { ask 3 'SETP?'; [[ "$REPLY" == "SETP 30.0" ]]; }
if wait_for 10 setpoint_is_30; then pass "the persisted setpoint reaches a new controller"; else
  fail "the new controller never got the persisted setpoint 30 (last '$REPLY')"; fi
exec 3>&-
stop "$MARKD_PID"
expect_eq "restarted markd exits 0 on SIGTERM" "$rc" "0"

finish heater
