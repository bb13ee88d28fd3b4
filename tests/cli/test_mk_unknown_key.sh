#!/usr/bin/env bash
# CLI test of an unknown key with --connect (issue 14, "Found from outside"):
# `mk get STORE.nosuch --connect ADDR` took 0.53 s where other errors took
# 0.03 s, because mk asked the network (a UDP discovery call and its 0.5 s
# wait) for another daemon of the store. With --connect the given addresses
# are all mk uses, so the unknown key fails at once, with the same error.
# Checked by outcome: the error text and exit status, and no discovery call in
# mk's debug log (the line "discovery: N answer(s) on UDP port P" is logged at
# the end of every call; a run without --connect shows it, so the check can
# fail). Loopback, private discovery ports, readiness read from a FIFO.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_mk_unknown_key
private_discovery_ports

cat >"$work/items.json" <<'EOF2'
{"setpoint": {"type": "numeric", "initial": 20}}
EOF2
start markd '^markd: found found1 ready rep=([0-9]+) pub=[0-9]+$' "$MKTL_BIN/markd" --no-discovery \
  --bind 127.0.0.1 --hostname 127.0.0.1 -c "$work/items.json" found found1
port=${BASH_REMATCH[1]}
connect=(--connect "tcp://127.0.0.1:$port")
discovery_line='answer(s) on UDP port'

run known "$MKTL_BIN/mk" "${connect[@]}" get found.setpoint
expect_out "a known key answers" "setpoint: 20"

run unknown "$MKTL_BIN/mk" -d "${connect[@]}" get found.nosuch
expect_rc "an unknown key fails" 1
expect_in "the error names the store and the key" "$err" "found.nosuch: KeyError: \"store 'found' has no key 'nosuch'\""
if grep -qF "$discovery_line" <<<"$err"; then
  fail "an unknown key with --connect made a discovery call: $err"
else
  pass "an unknown key with --connect makes no discovery call"
fi

# Upper case travels lower case: the same answer.
run upper "$MKTL_BIN/mk" "${connect[@]}" get FOUND.NoSuch
expect_rc "an unknown key in upper case fails" 1
expect_in "and names it in lower case" "$err" "store 'found' has no key 'nosuch'"

# A known key next to an unknown one: the known one is still answered.
run mixed "$MKTL_BIN/mk" "${connect[@]}" get found.nosuch found.setpoint
expect_rc "one unknown key of two fails the command" 1
expect_eq "the known key is still answered" "$out" "setpoint: 20"

# Without --connect, the same unknown key is looked for on the network (the
# cache written by markd tells mk where the store is; the key may belong to
# another daemon of the store): the debug log shows the discovery call.
run network env MKTL_HOME="$MKTL_HOME" "$MKTL_BIN/mk" -d get found.nosuch
expect_rc "without --connect an unknown key fails too" 1
expect_in "with the same error" "$err" "found.nosuch: KeyError: \"store 'found' has no key 'nosuch'\""
if grep -qF "$discovery_line" <<<"$err"; then
  pass "without --connect mk asks the network (the check above can fail)"
else
  fail "without --connect no discovery call was logged: the check for its absence proves nothing: $err"
fi

finish test_mk_unknown_key
