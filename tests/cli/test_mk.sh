#!/usr/bin/env bash
# CLI tests of mk against a real markd on loopback: get, set and watch of
# every item type (boolean, enumerated, mask, numeric with format and units,
# numeric array, string), the output layouts (--terse, --timestamp,
# --unformatted, --json), rejected sets (exit 1, message on stderr), usage
# errors (exit 2), list, describe, discover.
# A private MKTL_HOME, --connect addressing, ephemeral ports; readiness and
# watch output are read from FIFOs with timeouts, never by sleeping.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_mk

cat >"$work/test.json" <<'EOF'
{
  "flag": {"type": "boolean", "description": "a boolean", "initial": false},
  "mode": {"type": "enumerated", "enumerators": {"0": "Off", "1": "On", "2": "Standby"}, "initial": 0},
  "status": {"type": "mask", "enumerators": {"None": "OK", "0": "Timeout", "1": "Error", "2": "Warning"}, "initial": 0},
  "setpoint": {"type": "numeric", "description": "heater setpoint", "format": "%.1f", "units": "degC",
               "min": 0, "max": 150, "initial": 20},
  "offsets": {"type": "numeric array", "initial": [1, 2, 3]},
  "name": {"type": "string", "initial": "hello"},
  "readonly": {"type": "numeric", "settable": false, "initial": 5}
}
EOF

# ---- the daemon -----------------------------------------------------------------
start --first markd '^markd: test test1 ready rep=([0-9]+) pub=([0-9]+)$' "$MKTL_BIN/markd" --no-discovery \
  --bind 127.0.0.1 --hostname 127.0.0.1 -c "$work/test.json" test test1
rep=${BASH_REMATCH[1]}
endpoint=tcp://127.0.0.1:$rep
mk=("$MKTL_BIN/mk" -w 10 --connect "$endpoint")
echo "markd ready at $endpoint"

# ---- usage -------------------------------------------------------------------
run help "$MKTL_BIN/mk" --help
expect_rc "--help" 0
expect_in "--help has an Exit status section" "$out" "Exit status"
expect_in "--help documents --output for bulk" "$out" "--output FILE"
run nocmd "$MKTL_BIN/mk"
expect_rc "no command" 2
run badcmd "$MKTL_BIN/mk" frobnicate test.flag
expect_rc "unknown command" 2
run nokeys "${mk[@]}" get
expect_rc "get without keys" 2
run noeq "${mk[@]}" set test.setpoint
expect_rc "set without =" 2
run nodot "${mk[@]}" get setpoint
expect_rc "key without store" 2
run badopt "${mk[@]}" get --bogus test.setpoint
expect_rc "unknown option" 2
run tsboth "${mk[@]}" get --timestamp --no-timestamp test.setpoint
expect_rc "--timestamp with --no-timestamp" 2
run serialnowait "${mk[@]}" set --serial --no-wait test.setpoint=1
expect_rc "--serial with --no-wait" 2
run badtimeout "$MKTL_BIN/mk" -w soon get test.setpoint
expect_rc "bad --timeout" 2
run badconnect "$MKTL_BIN/mk" --connect nowhere get test.setpoint
expect_rc "--connect without a port" 2

# ---- get: every type, every layout ------------------------------------------------
run g1 "${mk[@]}" get test.setpoint
expect_out "get numeric (format and units)" "setpoint: 20.0 degC"
run g2 "${mk[@]}" get test.setpoint --unformatted
expect_out "get --unformatted (option after the command)" "setpoint: 20 degC"
run g3 "${mk[@]}" --terse get test.setpoint
expect_out "get --terse" "20.0"
run g4 "${mk[@]}" get --formatted --unformatted test.setpoint
expect_out "get --formatted --unformatted" "setpoint: 20 degC => 20.0 degC"
run g5 "${mk[@]}" get --timestamp test.setpoint
expect_rc "get --timestamp" 0
expect_match "get --timestamp layout" "$out" '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} setpoint: 20\.0 degC$'
run g6 "${mk[@]}" get test.flag test.mode test.status test.offsets test.name
expect_out "get of every type" $'flag: False\nmode: Off\nstatus: OK\noffsets: [1, 2, 3]\nname: hello'
run g7 "${mk[@]}" get --unformatted -s test flag mode status offsets name
expect_out "get --unformatted -s STORE" $'flag: False\nmode: 0\nstatus: 0\noffsets: [1, 2, 3]\nname: hello'
run g8 "${mk[@]}" get --json test.setpoint
expect_rc "get --json" 0
expect_in "get --json key" "$out" '"key":"test.setpoint"'
expect_in "get --json value" "$out" '"value":20'
expect_in "get --json formatted" "$out" '"formatted":"20.0"'
expect_in "get --json units" "$out" '"units":"degC"'
[[ $(wc -l <<<"$out") == 1 ]] && pass "get --json is one line" || fail "get --json lines: $out"
run g9 "${mk[@]}" get --refresh TEST.SetPoint
expect_out "get --refresh, keys are case-insensitive" "setpoint: 20.0 degC"
run g10 "${mk[@]}" get test.nosuchkey
expect_rc "get of an unknown key" 1
expect_in "unknown key error names the key" "$err" "mk: test.nosuchkey:"
run g11 "${mk[@]}" get test.nosuchkey test.setpoint
expect_rc "one failed get of two" 1
expect_in "the other get still prints" "$out" "setpoint: 20.0 degC"
run g12 "${mk[@]}" get --output "$work/value.out" test.offsets
expect_rc "get --output" 0
[[ $(cat "$work/value.out" 2>/dev/null) == "[1,2,3]" ]] && pass "--output writes a non-bulk value as JSON" ||
  fail "--output content: $(cat "$work/value.out" 2>/dev/null)"

# ---- set: every type ----------------------------------------------------------
run s1 "${mk[@]}" set test.setpoint=45
expect_out "set numeric" "Set test.setpoint to 45.0 degC"
run s1g "${mk[@]}" get --unformatted test.setpoint
expect_out "numeric value after set" "setpoint: 45 degC"
run s2 "${mk[@]}" set test.mode=On
expect_out "set enumerated by name" "Set test.mode to On"
run s2g "${mk[@]}" get --unformatted test.mode
expect_out "enumerated value after set" "mode: 1"
run s3 "${mk[@]}" set test.mode=2
expect_out "set enumerated by number" "Set test.mode to Standby"
run s4 "${mk[@]}" set test.flag=true
expect_out "set boolean" "Set test.flag to True"
run s4g "${mk[@]}" get test.flag
expect_out "boolean after set" "flag: True"
run s5 "${mk[@]}" set "test.status=Timeout, Warning"
expect_out "set mask by names" "Set test.status to Timeout, Warning"
run s5g "${mk[@]}" get --unformatted test.status
expect_out "mask after set" "status: 5"
run s6 "${mk[@]}" set "test.offsets=[4, 5.5, 6]"
expect_rc "set numeric array" 0
run s6g "${mk[@]}" get test.offsets
expect_out "numeric array after set" "offsets: [4, 5.5, 6]"
run s7 "${mk[@]}" set "test.name=hello world"
expect_out "set string" "Set test.name to hello world"
run s8 "${mk[@]}" set test.name=17
expect_rc "set string that looks like a number" 0
run s8g "${mk[@]}" get --json test.name
expect_in "a string item keeps the text" "$out" '"value":"17"'
run s9 "${mk[@]}" set --serial -s test setpoint=30 mode=Off
expect_out "set --serial -s STORE" $'Set test.setpoint to 30.0 degC\nSet test.mode to Off'
run s10 "${mk[@]}" set --unformatted test.setpoint=31.5
expect_out "set --unformatted" "Set test.setpoint to 31.5 degC"
run s11 "${mk[@]}" set --terse test.setpoint=32
expect_out "set --terse" "32.0"
run s12 "${mk[@]}" set --json test.setpoint=33
expect_rc "set --json" 0
expect_in "set --json" "$out" '"key":"test.setpoint"'

# Rejected sets: exit 1, "mk: KEY: TYPE: TEXT" on stderr, nothing applied.
run r1 "${mk[@]}" set test.setpoint=200
expect_rc "set above max is rejected" 1
expect_match "rejection on stderr" "$err" '^mk: test\.setpoint: [A-Za-z]+Error: .+'
[[ -z $out ]] && pass "nothing on stdout for a rejected set" || fail "stdout for a rejected set: $out"
run r1g "${mk[@]}" get test.setpoint
expect_out "rejected set left the value" "setpoint: 33.0 degC"
run r2 "${mk[@]}" set test.mode=Bogus
expect_rc "invalid enumerator is rejected" 1
expect_in "invalid enumerator is a KeyError" "$err" "mk: test.mode: KeyError: "
run r3 "${mk[@]}" set --formatted test.mode=Bogus
expect_rc "--formatted invalid enumerator" 1
expect_in "--formatted invalid enumerator names the key" "$err" "mk: test.mode: "
run r4 "${mk[@]}" set test.readonly=6
expect_rc "set of a read-only item" 1
expect_in "read-only is a TypeError" "$err" "mk: test.readonly: TypeError: "
run r5 "${mk[@]}" set test.setpoint=abc
expect_rc "numeric from text is rejected" 1
expect_in "numeric from text is a ValueError" "$err" "mk: test.setpoint: ValueError: "
run r6 "${mk[@]}" set test.mode=Bogus test.setpoint=55
expect_rc "one failed set of two" 1
expect_in "the other set is applied" "$out" "Set test.setpoint to 55.0 degC"

# --no-wait: exits at once; the value lands shortly after (bounded wait).
run nw "${mk[@]}" set --no-wait test.setpoint=60
expect_rc "set --no-wait" 0
landed=no
for _ in $(seq 50); do
  run nwg "${mk[@]}" get test.setpoint
  [[ $out == "setpoint: 60.0 degC" ]] && { landed=yes; break; }
  sleep 0.1
done
[[ $landed == yes ]] && pass "--no-wait set applied" || fail "--no-wait set never applied (last: $out)"

# ---- watch: every type -----------------------------------------------------------
# The first line is a primed value: anything else fails below.
start --first watch '' "${mk[@]}" watch -s test flag mode status setpoint offsets name --no-timestamp
watch_pid=$pid
watch_fd=$fd
next_line() { line=""; read -r -t 10 -u "$watch_fd" line || line="<nothing within 10 s>"; }
primed=("$line")
for _ in 2 3 4 5 6; do next_line; primed+=("$line"); done
expected_prime=("flag: True" "mode: Off" "status: Timeout, Warning" "setpoint: 60.0 degC" "offsets: [4, 5.5, 6]"
  "name: 17")
[[ "${primed[*]}" == "${expected_prime[*]}" ]] && pass "watch primes with current values" ||
  fail "watch prime: ${primed[*]}; expected ${expected_prime[*]}"
watch_step() {  # SET-REQUEST EXPECTED-LINE
  run ws "${mk[@]}" set "$1"
  next_line
  [[ $line == "$2" ]] && pass "watch sees $1" || fail "watch after $1: '$line', expected '$2'"
}
watch_step test.flag=False "flag: False"
watch_step test.mode=On "mode: On"
watch_step test.status=Error "status: Error"
watch_step test.setpoint=61 "setpoint: 61.0 degC"
watch_step "test.offsets=[7, 8]" "offsets: [7, 8]"
watch_step "test.name=bye" "name: bye"
kill -TERM "$watch_pid" || true
wait_exit "$watch_pid" 10
expect_rc "watch ends cleanly on SIGTERM" 0

# Default watch layout: HH:MM:SS.mmm prefix.
try_start --first watcht '' "${mk[@]}" watch test.setpoint || true
watcht_pid=$pid
watch_fd=$fd
expect_match "watch line has a timestamp" "$line" '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} setpoint: 61\.0 degC$'
run ws "${mk[@]}" set test.setpoint=62
next_line
expect_match "watch broadcast line" "$line" '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} setpoint: 62\.0 degC$'
kill -INT "$watcht_pid" || true
wait_exit "$watcht_pid" 10
expect_rc "watch ends cleanly on SIGINT" 0

# ---- list, describe, discover ----------------------------------------------------
run l1 "${mk[@]}" list test
expect_rc "list" 0
expect_match "list shows type and access" "$out" $'(^|\n)test\.setpoint +numeric +rw(\n|$)'
expect_match "list shows read-only" "$out" $'(^|\n)test\.readonly +numeric +r(\n|$)'
expect_match "list shows enumerated" "$out" $'(^|\n)test\.mode +enumerated +rw(\n|$)'
run l2 "${mk[@]}" list -s test --json
expect_rc "list --json" 0
expect_in "list --json" "$out" '"key":"test.flag"'

run d1 "${mk[@]}" describe test.setpoint
expect_rc "describe" 0
expect_in "describe shows the description" "$out" '"description": "heater setpoint"'
expect_in "describe shows units" "$out" '"units": "degC"'
run d2 "${mk[@]}" describe --json test.setpoint
expect_in "describe --json" "$out" '"key":"test.setpoint"'

run disc "$MKTL_BIN/mk" -w 10 discover "$endpoint"
expect_out "discover at an address" "1 store discovered: test"

run disc0 "$MKTL_BIN/mk" -w 2 discover
expect_rc "discover by broadcast succeeds even when it finds little" 0
run d3 "${mk[@]}" describe test
expect_rc "describe a whole store" 0
expect_in "describe a store lists its items" "$out" '"test.offsets"'

# The catalog fetched with --connect is cached: without --connect, mk finds
# the store in the cache (no discovery) and answers.
run cached "$MKTL_BIN/mk" -w 5 get test.setpoint
expect_out "get through the catalog cache" "setpoint: 62.0 degC"

# ---- unreachable daemon: a failed request, not a hang --------------------------
run dead "$MKTL_BIN/mk" -w 2 --connect tcp://127.0.0.1:1 get test.setpoint
expect_rc "unreachable daemon" 1
expect_in "unreachable daemon error names the key" "$err" "mk: test.setpoint: "

finish mk
