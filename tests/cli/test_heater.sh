#!/usr/bin/env bash
# CLI test of the heater: heatersim's line protocol over TCP, then the heater
# example daemon end to end (heatersim + markd + mk).
#
# Env (set by ctest): MKTL_BIN (the build's bin dir), MKTL_SOURCE (the source
# tree), MKTL_BROADCAST (127.255.255.255: nothing leaves this machine).
set -uo pipefail

BIN=${MKTL_BIN:?MKTL_BIN must name the build\'s bin directory}
SRC=${MKTL_SOURCE:?MKTL_SOURCE must name the source tree}
LIB=$(cd "$BIN/../lib" 2>/dev/null && pwd || echo "$BIN/../lib")
export MKTL_BROADCAST=${MKTL_BROADCAST:-127.255.255.255}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test_heater.XXXXXX")
PIDS=()
cleanup() {
  exec 3>&- 5>&- 2>/dev/null
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  wait  # the stdout drainers, which end with their writers
  rm -rf "$WORK"
}
trap cleanup EXIT

FAILS=0
pass() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
die() { echo "FAIL - $*"; exit 1; }
check_eq() {  # check_eq NAME GOT WANT
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}
check_re() {  # check_re NAME GOT REGEX
  if [[ "$2" =~ $3 ]]; then pass "$1"; else fail "$1: got '$2', want /$3/"; fi
}

# start_with_line NAME FIRST_LINE_REGEX CMD...: starts CMD in the background,
# waits (bounded) for its first stdout line and stores it in START_LINE.
start_with_line() {
  local name=$1 re=$2
  shift 2
  local fifo="$WORK/$name.out"
  mkfifo "$fifo"
  "$@" >"$fifo" 2>"$WORK/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  START_PID=$pid
  # Keep the read end open for the process's lifetime (no SIGPIPE later);
  # opening the fifo returns once the child has opened it for writing.
  local fd
  exec {fd}<"$fifo"
  START_LINE=""
  while IFS= read -r -t 20 -u "$fd" START_LINE; do
    [[ "$START_LINE" =~ $re ]] && break
  done
  if ! [[ "$START_LINE" =~ $re ]]; then
    echo "--- $name stderr:"; cat "$WORK/$name.err"
    die "$name did not print /$re/ (got '$START_LINE')"
  fi
  # Drain the rest of its stdout so it never blocks on a full pipe.
  cat <&"$fd" >>"$WORK/$name.log" &
  exec {fd}<&-
}

# wait_until DESCRIPTION SECONDS CMD...: polls a condition, bounded in time.
wait_until() {
  local what=$1 limit=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.1
  done
  return 0
}

# ask FD LINE: one command to the simulator, its answer line in REPLY.
ask() {
  printf '%s\n' "$2" >&"$1"
  REPLY=""
  IFS= read -r -t 5 -u "$1" REPLY || die "no answer to '$2'"
}

###########################################################################
# 1. heatersim on its own
###########################################################################
[[ -x "$BIN/heatersim" ]] || die "$BIN/heatersim is not built"

start_with_line heatersim '^PORT [0-9]+$' "$BIN/heatersim" --port 0 --seed 7 --time-constant 0.5
SIM_PID=$START_PID
SIM_PORT=${START_LINE#PORT }
pass "heatersim listens on port $SIM_PORT"

exec 3<>"/dev/tcp/127.0.0.1/$SIM_PORT" || die "cannot connect to heatersim"

ask 3 'TEMP?';        check_re "TEMP? answers a reading with 2 decimals" "$REPLY" '^TEMP -?[0-9]+\.[0-9]{2}$'
t=${REPLY#TEMP }
check_re "temperature starts near ambient 20" "$t" '^(19\.[89]|20\.[01])[0-9]$'
ask 3 'SETP?';        check_eq "SETP? default" "$REPLY" "SETP 20.0"
ask 3 'POWER?';       check_eq "POWER? default" "$REPLY" "POWER OFF"
ask 3 'STATUS?';      check_eq "STATUS? idle while power off" "$REPLY" "STATUS idle"
ask 3 'MODE?';        check_eq "MODE? default" "$REPLY" "MODE AUTO"
ask 3 'SETP 45';      check_eq "SETP 45" "$REPLY" "OK"
ask 3 'SETP?';        check_eq "SETP? after set" "$REPLY" "SETP 45.0"
ask 3 'SETP 150.5';   check_re "SETP above 150 rejected" "$REPLY" '^ERR .*range'
ask 3 'SETP -50.5';   check_re "SETP below -50 rejected" "$REPLY" '^ERR .*range'
ask 3 'SETP warm';    check_re "SETP with a bad number rejected" "$REPLY" '^ERR bad number'
ask 3 'SETP nan';     check_re "SETP nan rejected" "$REPLY" '^ERR bad number'
ask 3 'SETP?';        check_eq "rejected SETs left the setpoint alone" "$REPLY" "SETP 45.0"
ask 3 'POWER MAYBE';  check_re "POWER with a bad argument rejected" "$REPLY" '^ERR '
ask 3 'MODE BOGUS';   check_re "MODE with a bad argument rejected" "$REPLY" '^ERR '
ask 3 'FROB 12';      check_re "unknown command rejected" "$REPLY" '^ERR unknown command'
ask 3 'power on';     check_eq "commands are case-insensitive" "$REPLY" "OK"
ask 3 'POWER?';       check_eq "POWER? after POWER ON" "$REPLY" "POWER ON"
ask 3 'STATUS?';      check_eq "STATUS? heating below the setpoint" "$REPLY" "STATUS heating"

# A second client at the same time sees the same controller.
exec 5<>"/dev/tcp/127.0.0.1/$SIM_PORT" || die "cannot open a second connection"
ask 5 'SETP?';        check_eq "second client sees the setpoint" "$REPLY" "SETP 45.0"
ask 3 'SETP 40';      check_eq "first client sets while second is connected" "$REPLY" "OK"
ask 5 'SETP?';        check_eq "second client sees the new setpoint" "$REPLY" "SETP 40.0"

# Physics: with a 0.5 s time constant it settles within a few seconds.
temp_above() { ask 3 'TEMP?'; awk -v t="${REPLY#TEMP }" -v lim="$1" 'BEGIN { exit !(t > lim) }'; }
status_is() { ask 5 'STATUS?'; [[ "$REPLY" == "STATUS $1" ]]; }
if wait_until "heating" 10 temp_above 30; then pass "temperature rises toward the setpoint"; else fail "temperature did not rise above 30 (last '$REPLY')"; fi
if wait_until "settled" 10 status_is "at setpoint"; then pass "controller reaches the setpoint"; else fail "never at setpoint (last '$REPLY')"; fi
if temp_above 41; then fail "temperature overshoots the setpoint 40: $REPLY"; else pass "no overshoot"; fi
ask 3 'MODE STANDBY'; check_eq "MODE STANDBY" "$REPLY" "OK"
ask 3 'STATUS?';      check_eq "standby stops regulation" "$REPLY" "STATUS idle"
ask 3 'MODE AUTO';    check_eq "MODE AUTO" "$REPLY" "OK"
ask 3 'SETP 0';       check_eq "SETP 0" "$REPLY" "OK"
if wait_until "cooling" 10 status_is cooling; then pass "STATUS cooling above the setpoint"; else
  # It may already have passed through cooling into the band.
  check_eq "STATUS after lowering the setpoint" "$REPLY" "STATUS at setpoint"
fi
ask 3 'POWER OFF'; ask 3 'SETP 20'
exec 5>&-

# Garbage does not kill the server: a line too long is refused, others go on.
exec 6<>"/dev/tcp/127.0.0.1/$SIM_PORT" || die "cannot open a third connection"
head -c 5000 /dev/zero | tr '\0' 'x' >&6
IFS= read -r -t 5 -u 6 junk; check_re "over-long line refused" "$junk" '^ERR line too long'
exec 6>&-
ask 3 'SETP?';        check_eq "server still answers after garbage" "$REPLY" "SETP 20.0"
exec 3>&-

# Bad usage exits 2.
"$BIN/heatersim" --port nope >/dev/null 2>&1; check_eq "bad --port exits 2" "$?" "2"
"$BIN/heatersim" --help | grep -q "Exit status"; check_eq "--help has an Exit status section" "$?" "0"

###########################################################################
# 2. The heater example daemon end to end: markd + mk
###########################################################################
missing=()
for exe in markd mk; do [[ -x "$BIN/$exe" ]] || missing+=("$BIN/$exe"); done
[[ -f "$LIB/libheater_daemon.so" ]] || missing+=("$LIB/libheater_daemon.so")
if ((${#missing[@]})); then
  echo "SKIP - heater end-to-end: not built: ${missing[*]}"
  ((FAILS == 0)) || exit 1
  exit 0
fi

export MKTL_HOME="$WORK/home"
mkdir -p "$MKTL_HOME"
# Private discovery ports: parallel tests must not find each other's daemons.
export MKTL_REGISTRY_PORT=$((20000 + (RANDOM % 20000)))
export MKTL_DAEMON_PORT=$((MKTL_REGISTRY_PORT + 1))
printf '{"host": "127.0.0.1", "port": %d}\n' "$SIM_PORT" >"$WORK/heater-app.json"

"$BIN/markd" --check -c "$SRC/configs/heater.json" -m "$LIB/libheater_daemon.so" -s HeaterDaemon \
  -a "$WORK/heater-app.json" heater heater1 >"$WORK/check.out" 2>&1
rc=$?
check_eq "markd --check accepts the heater catalog and module" "$rc" "0"
((rc == 0)) || cat "$WORK/check.out"

# Without a controller address the daemon refuses to start, saying what to set.
env -u HEATER_ADDRESS timeout 20 "$BIN/markd" -c "$SRC/configs/heater.json" -m "$LIB/libheater_daemon.so" \
  -s HeaterDaemon heater heater1 >"$WORK/noaddr.out" 2>&1
check_eq "markd without a controller address exits 78 (EX_CONFIG)" "$?" "78"
check_re "and names HEATER_ADDRESS" "$(cat "$WORK/noaddr.out")" 'HEATER_ADDRESS'

start_with_line markd '^markd: heater heater1 ready' "$BIN/markd" -c "$SRC/configs/heater.json" \
  -m "$LIB/libheater_daemon.so" -s HeaterDaemon -a "$WORK/heater-app.json" heater heater1
MARKD_PID=$START_PID
pass "markd serves the heater ($START_LINE)"

# Straight to the daemon: this test is about the daemon, not discovery
# (scripts/demo.sh, checked by test_heater_demo.sh, goes through the registry).
REP=$(sed -n 's/.* rep=\([0-9]*\).*/\1/p' <<<"$START_LINE")
MK=("$BIN/mk" --connect "tcp://127.0.0.1:$REP")
mk_ok() { OUT=$("${MK[@]}" "$@" 2>&1); }
# The first poll of the controller (every 0.5 s) gives the first value.
temperature_shown() { mk_ok get heater.temperature && [[ "$OUT" =~ temperature:\ -?[0-9]+\.[0-9]{2}\ degC ]]; }
if wait_until "a temperature" 20 temperature_shown; then
  pass "mk get heater.temperature shows the controller's reading with 2 decimals and units ($OUT)"
else
  die "mk get heater.temperature never showed a temperature: $OUT"
fi
heater_status_is() { mk_ok get heater.status && [[ "$OUT" =~ $1 ]]; }
if wait_until "status idle" 10 heater_status_is idle; then pass "status is read from the controller"; else
  fail "status never idle: $OUT"; fi

mk_ok set heater.setpoint=45; rc=$?
check_eq "mk set heater.setpoint=45 exits 0" "$rc" "0" || echo "$OUT"
exec 3<>"/dev/tcp/127.0.0.1/$SIM_PORT"
ask 3 'SETP?'; check_eq "the SET reached the controller" "$REPLY" "SETP 45.0"
mk_ok get heater.setpoint; check_re "mk get heater.setpoint shows 45" "$OUT" '45(\.0+)?'

mk_ok set heater.setpoint=200; rc=$?
check_eq "setpoint 200 is rejected with exit 1" "$rc" "1"
check_re "the rejection says why" "$OUT" '200'
ask 3 'SETP?'; check_eq "the rejected SET never reached the controller" "$REPLY" "SETP 45.0"

mk_ok set heater.power=On; rc=$?
check_eq "mk set heater.power=On exits 0" "$rc" "0" || echo "$OUT"
ask 3 'POWER?'; check_eq "power reached the controller" "$REPLY" "POWER ON"
mk_ok get heater.power; check_re "mk get heater.power shows On" "$OUT" 'On'
if wait_until "status heating" 10 heater_status_is 'heating|at setpoint'; then pass "status follows the controller"; else fail "status never heating: $OUT"; fi

mk_ok set heater.mode=Standby; check_eq "mk set heater.mode=Standby exits 0" "$?" "0"
ask 3 'MODE?'; check_eq "mode reached the controller" "$REPLY" "MODE STANDBY"
mk_ok set heater.mode=Auto
exec 3>&-

mk_ok set heater.temperature=5; rc=$?
check_eq "temperature is read-only (exit 1)" "$rc" "1"

timeout 3 "${MK[@]}" watch heater.temperature >"$WORK/watch.out" 2>&1
lines=$(grep -cE 'temperature: -?[0-9]+\.[0-9]{2}' "$WORK/watch.out")
if ((lines >= 2)); then pass "mk watch shows $lines temperature updates in 3 s"; else
  fail "mk watch showed $lines updates:"; cat "$WORK/watch.out"; fi

# The controller going away makes requests fail with a clear message, and
# coming back is picked up by reconnecting.
kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null
check_eq "heatersim exits 0 on SIGTERM" "$?" "0"
mk_ok set heater.setpoint=30; rc=$?
check_eq "SET with the controller down exits 1" "$rc" "1"
check_re "and names the heater controller" "$OUT" 'heater controller'

start_with_line heatersim2 '^PORT [0-9]+$' "$BIN/heatersim" --port "$SIM_PORT" --seed 8
mk_ok set heater.setpoint=30; rc=$?
check_eq "SET after the controller came back exits 0 (reconnected)" "$rc" "0"
((rc == 0)) || echo "$OUT"

kill "$MARKD_PID"; wait "$MARKD_PID" 2>/dev/null
check_eq "markd exits 0 on SIGTERM" "$?" "0"

# The setpoint persists: a restarted daemon gives a fresh controller the last
# setpoint it was told (30).
start_with_line heatersim3 '^PORT [0-9]+$' "$BIN/heatersim" --port 0 --seed 9
SIM3_PORT=${START_LINE#PORT }
printf '{"host": "127.0.0.1", "port": %d}\n' "$SIM3_PORT" >"$WORK/heater-app.json"
start_with_line markd2 '^markd: heater heater1 ready' "$BIN/markd" -c "$SRC/configs/heater.json" \
  -m "$LIB/libheater_daemon.so" -s HeaterDaemon -a "$WORK/heater-app.json" heater heater1
MARKD_PID=$START_PID
exec 3<>"/dev/tcp/127.0.0.1/$SIM3_PORT"
setpoint_is_30() { ask 3 'SETP?'; [[ "$REPLY" == "SETP 30.0" ]]; }
if wait_until "persisted setpoint" 10 setpoint_is_30; then pass "the persisted setpoint reaches a new controller"; else
  fail "the new controller never got the persisted setpoint 30 (last '$REPLY')"; fi
exec 3>&-
kill "$MARKD_PID"; wait "$MARKD_PID" 2>/dev/null
check_eq "restarted markd exits 0 on SIGTERM" "$?" "0"

((FAILS == 0)) || { echo "$FAILS check(s) failed"; exit 1; }
echo "all heater checks passed"
