#!/usr/bin/env bash
# CLI tests of markd: usage and configuration errors (exit 2 and 78), --check,
# the ready line, serving, a port conflict (exit 1), the stored catalog copy,
# and a clean stop on SIGTERM and SIGINT (exit 0).
# Loopback only, ephemeral ports, a private MKTL_HOME; readiness is the ready
# line read from a FIFO with a timeout, never a sleep.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_markd

# start_markd NAME ARGS...: starts markd (try_start: its first line must be
# the ready line). Sets $pid, $rep, $pub, $ready; returns 1 (a fail) if markd
# exits or stays silent instead.
start_markd() {
  local name=$1; shift
  try_start --first "$name" '^markd: ([^ ]+) ([^ ]+) ready rep=([0-9]+) pub=([0-9]+)$' "$MKTL_BIN/markd" "$@" ||
    return 1
  ready=$line
  rep=${BASH_REMATCH[3]}
  pub=${BASH_REMATCH[4]}
}

markd=$MKTL_BIN/markd
common=(--no-discovery --bind 127.0.0.1 --hostname 127.0.0.1)

cat >"$work/good.json" <<'EOF'
{
  "setpoint": {"type": "numeric", "format": "%.1f", "units": "degC", "initial": 20},
  "mode": {"type": "enumerated", "enumerators": {"0": "Off", "1": "On"}}
}
EOF
cat >"$work/badtype.json" <<'EOF'
{"setpoint": {"type": "numeric"}, "heater": {"type": "bogus"}}
EOF
printf '{"setpoint": {"type": "numeric",}' >"$work/syntax.json"
echo '{"interval": 2}' >"$work/app.json"
echo '{"interval": ' >"$work/badapp.json"

# ---- help and usage ------------------------------------------------------------
run help "$markd" --help
expect_rc "--help" 0
expect_in "--help has an Exit status section" "$out" "Exit status"
expect_in "--help names exit 78" "$out" "78"

run noargs "$markd"
expect_rc "no STORE ALIAS is a usage error" 2
expect_in "usage message" "$err" "usage: markd"
run onearg "$markd" "${common[@]}" teststore
expect_rc "STORE without ALIAS is a usage error" 2
run unknownopt "$markd" --bogus-option -c "$work/good.json" teststore one
expect_rc "unknown option is a usage error" 2
expect_in "unknown option is named" "$err" "--bogus-option"
run badport "$markd" --rep-port notanumber -c "$work/good.json" teststore one
expect_rc "bad --rep-port is a usage error" 2
run nosubclass "$markd" -m "$work/libnothing.so" -c "$work/good.json" teststore one
expect_rc "--module without --subclass is a usage error" 2

# ---- configuration errors: exit 78, naming the file and the field ------------
run badtype "$markd" "${common[@]}" -c "$work/badtype.json" teststore one
expect_rc "bad item type is a config error" 78
expect_in "bad catalog names the file" "$err" "$work/badtype.json"
expect_in "bad catalog names the JSON pointer" "$err" "/heater/type"

run syntax "$markd" "${common[@]}" -c "$work/syntax.json" teststore one
expect_rc "catalog JSON syntax error is a config error" 78
expect_in "syntax error names the file" "$err" "$work/syntax.json"

run missing "$markd" "${common[@]}" -c "$work/nonexistent.json" teststore one
expect_rc "missing catalog file is a config error" 78
expect_in "missing catalog names the file" "$err" "nonexistent.json"

run nostored "$markd" "${common[@]}" teststore never
expect_rc "no stored catalog is a config error" 78
expect_in "no stored catalog names the path" "$err" "daemon/store/teststore/never.json"

run noappconfig "$markd" "${common[@]}" -c "$work/good.json" -a "$work/noapp.json" teststore one
expect_rc "missing appconfig is a config error" 78
expect_in "missing appconfig names the file" "$err" "noapp.json"
run badappconfig "$markd" "${common[@]}" -c "$work/good.json" -a "$work/badapp.json" teststore one
expect_rc "invalid appconfig is a config error" 78
expect_in "invalid appconfig names the file" "$err" "badapp.json"

run nomodule "$markd" "${common[@]}" -c "$work/good.json" -m "$work/libnosuchmodule.so" -s Heater teststore one
expect_rc "module not found is a config error" 78
expect_in "module not found names the module" "$err" "libnosuchmodule.so"

# A real shared library that registers no such subclass.
libmktl=$(ls "$MKTL_BIN"/../lib/libmktl.so* 2>/dev/null | head -n 1 || true)
if [[ -n $libmktl ]]; then
  run nosuchsubclass "$markd" "${common[@]}" -c "$work/good.json" -m "$libmktl" -s NoSuchDaemon teststore one
  expect_rc "subclass not found is a config error" 78
  expect_in "subclass not found names the subclass" "$err" "NoSuchDaemon"
  expect_in "subclass not found names the field" "$err" "--subclass"
else
  fail "libmktl.so not found next to $MKTL_BIN"
fi

# ---- --check ---------------------------------------------------------------
run check "$markd" "${common[@]}" --check -c "$work/good.json" -a "$work/app.json" teststore one
expect_rc "--check of a good configuration" 0
expect_in "--check reports OK" "$out" "configuration OK"
[[ $out != *ready* ]] && pass "--check does not serve" || fail "--check served: $out"
run checkbad "$markd" "${common[@]}" --check -c "$work/badtype.json" teststore one
expect_rc "--check of a bad catalog" 78

# ---- serving, SIGTERM -------------------------------------------------------
if start_markd serve1 "${common[@]}" -c "$work/good.json" -a "$work/app.json" TestStore One; then
  pass "ready line: $ready"
  expect_in "ready line names store and alias (lower case)" "$ready" "markd: teststore one ready"
  [[ $rep != 0 && $pub != 0 && $rep != "$pub" ]] && pass "real ports rep=$rep pub=$pub" || fail "ports: $ready"
  [[ -f $MKTL_HOME/daemon/store/teststore/one.json ]] && pass "catalog stored under MKTL_HOME" ||
    fail "no stored catalog copy"

  # The daemon answers: a get through mk (when it is built).
  if [[ -x $MKTL_BIN/mk ]]; then
    run serveget "$MKTL_BIN/mk" -w 5 --connect "tcp://127.0.0.1:$rep" get teststore.setpoint
    expect_rc "the daemon answers a get" 0
    expect_in "the daemon serves the catalog's initial value" "$out" "setpoint: 20.0 degC"
  fi

  # Port conflict: a runtime failure, exit 1 (not 78: a restart may help).
  run conflict "$markd" "${common[@]}" --rep-port "$rep" -c "$work/good.json" teststore two
  expect_rc "port already in use is a runtime failure" 1

  serve_pid=$pid
  kill -TERM "$serve_pid"
  wait_exit "$serve_pid" 20
  expect_rc "SIGTERM stops markd cleanly" 0
fi

# ---- the stored catalog serves without --catalog; STORE:ALIAS; SIGINT ---------
if start_markd serve2 "${common[@]}" teststore:one; then
  pass "STORE:ALIAS with the stored catalog: $ready"
  expect_in "STORE:ALIAS ready line" "$ready" "markd: teststore one ready"
  serve_pid=$pid
  kill -INT "$serve_pid"
  wait_exit "$serve_pid" 20
  expect_rc "SIGINT stops markd cleanly" 0
fi

finish markd
