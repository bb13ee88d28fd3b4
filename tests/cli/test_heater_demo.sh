#!/usr/bin/env bash
# CLI test of scripts/demo.sh, the README's first command: it must run to the
# end, show the heater warming up through the registry and mk, refuse the
# out-of-range setpoint, and leave no process behind.
#
# Env (set by ctest): MKTL_BIN, MKTL_SOURCE, MKTL_BROADCAST.
set -uo pipefail

BIN=${MKTL_BIN:?MKTL_BIN must name the build\'s bin directory}
SRC=${MKTL_SOURCE:?MKTL_SOURCE must name the source tree}
BUILD=$(cd "$BIN/.." && pwd)

missing=()
for f in bin/heatersim bin/mkregistryd bin/markd bin/mk lib/libheater_daemon.so; do
  [[ -e "$BUILD/$f" ]] || missing+=("$BUILD/$f")
done
if ((${#missing[@]})); then
  echo "SKIP - demo: not built: ${missing[*]}"
  exit 0
fi

OUT=$(mktemp "${TMPDIR:-/tmp}/test_heater_demo.XXXXXX")
trap 'rm -f "$OUT"' EXIT

# Private discovery ports, so that a parallel test's registry is not found.
export MKTL_REGISTRY_PORT=$((20000 + (RANDOM % 20000)))
export MKTL_DAEMON_PORT=$((MKTL_REGISTRY_PORT + 1))
# timeout puts the demo in a process group of its own (id $DEMO): leftovers
# are found there below.
MKTL_DEMO_NO_BUILD=1 BUILD="$BUILD" timeout 120 bash "$SRC/scripts/demo.sh" >"$OUT" 2>&1 </dev/null &
DEMO=$!
wait "$DEMO"
rc=$?
# Strip colours for matching.
text=$(sed 's/\x1b\[[0-9;]*m//g' "$OUT")

FAILS=0
pass() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
expect() {  # expect NAME REGEX (multi-line match against the demo's output)
  if grep -Eq -- "$2" <<<"$text"; then pass "$1"; else fail "$1: no line matches /$2/"; fi
}

[[ $rc == 0 ]] && pass "demo.sh exits 0" || fail "demo.sh exited $rc"
expect "heatersim started" '^heatersim listening on 127\.0\.0\.1:[0-9]+$'
expect "markd ready" '^markd: heater heater1 ready rep=[0-9]+ pub=[0-9]+'
expect "mk get shows the temperature" '^(heater\.)?temperature: -?[0-9]+\.[0-9]{2}'
expect "the setpoint SET is shown" '^\$ mk set heater\.setpoint=45$'
expect "the power SET is shown" '^\$ mk set heater\.power=On$'
watch_lines=$(sed -n '/^\$ timeout 6 mk watch heater.temperature$/,/^\$ /p' <<<"$text" | grep -cE 'temperature: -?[0-9]+\.[0-9]{2}')
if ((watch_lines >= 4)); then pass "mk watch shows $watch_lines readings"; else fail "mk watch shows $watch_lines readings"; fi
expect "status shows regulation" '^(heater\.)?status: (heating|at setpoint)'
expect "the setpoint 200 is refused" 'heater\.setpoint.*(200|limit)'
expect "the refusal exits 1" '^\(exit status 1\)$'
expect "the demo ends" '^# Done'

# Nothing the demo started may survive it.
if pgrep -g "$DEMO" >/dev/null 2>&1; then
  fail "processes left behind: $(pgrep -g "$DEMO" -a)"
  kill $(pgrep -g "$DEMO") 2>/dev/null
else
  pass "no process left behind"
fi

if ((FAILS)); then
  echo "--- demo output:"; cat "$OUT"
  exit 1
fi
echo "all demo checks passed"
