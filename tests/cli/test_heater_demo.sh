#!/usr/bin/env bash
# CLI test of scripts/demo.sh, the README's first command: it must run to the
# end, show the heater warming up through the registry and mk, refuse the
# out-of-range setpoint, and leave no process behind.
#
# Env (set by ctest): MKTL_BIN, MKTL_SOURCE, MKTL_BROADCAST.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_heater_demo
need_source
BUILD=$(cd "$BIN/.." && pwd)

skip_rest_unless_built demo "$BUILD"/bin/{heatersim,mkregistryd,markd,mk} "$BUILD/lib/libheater_daemon.so"

OUT=$work/demo.out
# Private discovery ports, so that a parallel test's registry is not found.
private_discovery_ports
# timeout puts the demo in a process group of its own (id $DEMO): leftovers
# are found there below.
MKTL_DEMO_NO_BUILD=1 BUILD="$BUILD" timeout 120 bash "$SRC/scripts/demo.sh" >"$OUT" 2>&1 </dev/null &
DEMO=$!
rc=0
wait "$DEMO" || rc=$?
# Strip colours for matching.
text=$(sed 's/\x1b\[[0-9;]*m//g' "$OUT")

expect() {  # expect NAME REGEX (multi-line match against the demo's output)
  if grep -Eq -- "$2" <<<"$text"; then pass "$1"; else fail "$1: no line matches /$2/"; fi
}

[[ $rc == 0 ]] && pass "demo.sh exits 0" || fail "demo.sh exited $rc"
expect "heatersim started" '^heatersim listening on 127\.0\.0\.1:[0-9]+$'
expect "markd ready" '^markd: heater heater1 ready rep=[0-9]+ pub=[0-9]+'
expect "mk get shows the temperature" '^(heater\.)?temperature: -?[0-9]+\.[0-9]{2}'
expect "the setpoint SET is shown" '^\$ mk set heater\.setpoint=45$'
expect "the power SET is shown" '^\$ mk set heater\.power=On$'
watch_lines=$(sed -n '/^\$ timeout 6 mk watch heater.temperature$/,/^\$ /p' <<<"$text" | grep -cE 'temperature: -?[0-9]+\.[0-9]{2}' || true)
if ((watch_lines >= 4)); then pass "mk watch shows $watch_lines readings"; else fail "mk watch shows $watch_lines readings"; fi
expect "status shows regulation" '^(heater\.)?status: (heating|at setpoint)'
expect "the setpoint 200 is refused" 'heater\.setpoint.*(200|limit)'
expect "the refusal exits 1" '^\(exit status 1\)$'
expect "the demo ends" '^# Done'

# Nothing the demo started may survive it.
if pgrep -g "$DEMO" >/dev/null 2>&1; then
  fail "processes left behind: $(pgrep -g "$DEMO" -a)"
  kill $(pgrep -g "$DEMO") 2>/dev/null || true
else
  pass "no process left behind"
fi

if ((failures)); then
  echo "--- demo output:"; cat "$OUT"
fi
finish demo
