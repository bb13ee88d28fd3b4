#!/usr/bin/env bash
# Interop of the real binaries with the Python mKTL reference (see
# docs/interop.md): the reference client (tests/interop/ref_client.py) against
# markd, and mk against the reference daemon (sbin/mkd). Skipped (exit 77, see
# lib.sh) unless MKTL_REFERENCE names a checkout of KeckObservatory/mKTL.
# The reference's discovery is redirected to $MKTL_BROADCAST (127.255.255.255)
# by tests/interop/local_broadcast.py, which both driver scripts import.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_reference
cli_init test_interop
need_source
interop=$SRC/tests/interop

# ---- 1. the reference client against markd -----------------------------------
mkdir -p "$work/markd-home" "$work/pyclient"
MKTL_HOME=$work/markd-home setsid "$MKTL_BIN/markd" interop interop1 -c "$interop/items.json" \
  --bind 127.0.0.1 --hostname 127.0.0.1 --no-discovery >"$work/markd.out" 2>"$work/markd.err" </dev/null &
groups+=($!)
ready() { grep -q "ready rep=" "$work/markd.out"; }
if ! wait_for 30 ready; then
  fail "markd did not become ready: $(cat "$work/markd.err")"
else
  port=$(sed -n 's/.* ready rep=\([0-9]*\) .*/\1/p' "$work/markd.out")
  rc=0
  MKTL_HOME=$work/pyclient timeout 150 $PY "$interop/ref_client.py" 127.0.0.1 "$port" interop interop1 \
    >"$work/client.out" 2>"$work/client.err" || rc=$?
  [ $rc -eq 0 ] || fail "ref_client.py against markd exited $rc: $(tail -5 "$work/client.err")"
  # step -> expected result (compact JSON, sorted keys, as the driver prints it)
  $PY - "$work/client.out" <<'EOF' && pass "reference client against markd ($(wc -l <"$work/client.out") steps)" \
    || failures=$((failures + 1))
import json, sys
got = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    got[j['step']] = j['result']
expected = {
    'hash.shape': {'hash_equals_block': True, 'hash_has_store': True, 'store_hash_equals_block': True},
    'cache.refresh': {'refreshed_has_count': True, 'refreshed_hash_matches': True},
    'get.count': {'int': 5},
    'get.flag': {'bool': False},
    'formatted.mode': {'str': 'Off'},
    'set.00.count="17"': {'readback': {'int': 17}},
    'set.03.count="abc"': {'exc': 'RuntimeError',
                           'text': "SET of count failed: ValueError: could not convert string to float: 'abc'"},
    'set.26.ro=5': {'exc': 'RuntimeError', 'text': 'SET of ro failed: TypeError: ro is not a settable item'},
    'raw.get_other_store': {'remote_error': {'type': 'ValueError',
                            'text': "this request is for 'otherstore', but this daemon is in 'interop'"}},
    'subscribe.count': {'first': {'int': 99}, 'received': True},
    'subscribe.heartbeat': {'received': True},
    'done': True,
}
bad = 0
for step, want in expected.items():
    if got.get(step) != want:
        print('FAIL: ref_client against markd: %s: got %r, want %r' % (step, got.get(step), want), file=sys.stderr)
        bad += 1
for step in ('bulk.int16_3x4', 'bulk.float64', 'subscribe.bulk'):
    if 'exc' in got.get(step, {'exc': 'missing'}):
        print('FAIL: ref_client against markd: %s: %r' % (step, got.get(step)), file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
EOF
fi

# ---- 2. mk against the reference daemon ----------------------------------------
mkdir -p "$work/refd-home" "$work/mk-home"
MKTL_HOME=$work/refd-home PYTHONPATH=$MKTL_REFERENCE/src:$interop setsid $PY "$MKTL_REFERENCE/sbin/mkd" \
  interop interop1 -c "$interop/items.json" -m ref_daemon -s InteropDaemon \
  >"$work/refd.out" 2>"$work/refd.err" </dev/null &
groups+=($!)
port_file() { ls "$work"/refd-home/daemon/port/interop/*.req >/dev/null 2>&1; }
if ! wait_for 30 port_file; then
  fail "the reference daemon did not start: $(tail -5 "$work/refd.err")"
else
  rport=$(cat "$work"/refd-home/daemon/port/interop/*.req)
  export MKTL_HOME=$work/mk-home
  mk() { timeout 30 "$MKTL_BIN/mk" --connect "tcp://127.0.0.1:$rport" "$@"; }
  answers() { [ "$(mk --terse --unformatted get interop.count 2>/dev/null)" = "5" ]; }
  wait_for 30 answers || fail "the reference daemon does not answer mk"

  out=$(mk --json get interop.count interop.temp interop.flag interop.mode interop.vec interop.name 2>&1 || true)
  if printf '%s\n' "$out" | $PY -c '
import json, sys
got = {j["key"]: j["value"] for j in map(json.loads, sys.stdin)}
want = {"interop.count": 5, "interop.temp": 20.5, "interop.flag": False, "interop.mode": 0,
        "interop.vec": [1, 2.5, 3], "interop.name": "hello"}
sys.exit(0 if got == want and type(got["interop.count"]) is int else 1)'; then
    pass "mk get of the reference daemon"
  else
    fail "mk get: $out"
  fi

  mk --unformatted set 'interop.count="17"' >/dev/null 2>&1 \
    && [ "$(mk --terse --unformatted get interop.count 2>&1)" = "17" ] && pass "mk set with coercion by the reference" \
    || fail "mk set count=\"17\""

  for i in 1 2 3 4 5; do  # the rejected set used to crash mk now and then (set_async race)
    rc=0; err=$(mk set interop.count=abc 2>&1 >/dev/null) || rc=$?
    [ $rc -eq 1 ] && [ "$err" = "mk: interop.count: ValueError: could not convert string to float: 'abc'" ] \
      || { fail "mk set count=abc (try $i): rc=$rc $err"; break; }
  done
  [ $rc -eq 1 ] && pass "mk shows the reference's ValueError"

  rc=0; err=$(mk set interop.ro=5 2>&1 >/dev/null) || rc=$?
  [ $rc -eq 1 ] && [ "$err" = "mk: interop.ro: TypeError: ro is not a settable item" ] && pass "read-only item" \
    || fail "mk set ro: rc=$rc $err"
  rc=0; err=$(mk set interop.limit=500 2>&1 >/dev/null) || rc=$?
  [ $rc -eq 1 ] && [ "$err" = "mk: interop.limit: ValueError: limit must be below 100" ] && pass "validate hook error" \
    || fail "mk set limit: rc=$rc $err"
  rc=0; err=$(mk get interop.hidden 2>&1 >/dev/null) || rc=$?
  [ $rc -eq 1 ] && [ "$err" = "mk: interop.hidden: TypeError: hidden is not a gettable item" ] && pass "ungettable item" \
    || fail "mk get hidden: rc=$rc $err"

  # The heartbeat: watch prints the current value, then every broadcast.
  timeout 4 "$MKTL_BIN/mk" --connect "tcp://127.0.0.1:$rport" --no-timestamp watch interop._interop1clk \
    >"$work/watch.out" 2>"$work/watch.err" || true  # timeout ends it
  lines=$(grep -c "_interop1clk" "$work/watch.out" || true)
  [ "$lines" -ge 3 ] && pass "mk watch of the reference's heartbeat ($lines lines)" \
    || fail "mk watch heartbeat: $lines lines: $(cat "$work/watch.err")"
fi

finish interop
