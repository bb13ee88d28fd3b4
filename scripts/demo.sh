#!/usr/bin/env bash
# mktl demo: a simulated temperature controller (heatersim) served by an mKTL
# daemon (markd + the heater example), found through a registry
# (mkregistryd) and driven with the mk command-line client.
#
# Usage: scripts/demo.sh            installs missing Debian packages, builds
#                                   into ${BUILD:-build}, then runs the demo
#        MKTL_DEMO_NO_BUILD=1 BUILD=/path/to/build scripts/demo.sh
#                                   runs it on an existing build
#
# Everything stays on this machine: discovery goes to 127.255.255.255 and all
# state lives in a temporary MKTL_HOME that is removed at the end. Every
# process the demo starts is stopped when it ends, however it ends.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
BIN="$BUILD/bin"
LIB="$BUILD/lib"

if [[ -z "${MKTL_DEMO_NO_BUILD:-}" ]]; then
  bash "$ROOT/scripts/deps.sh"
  echo "demo: building in $BUILD (this takes a few minutes the first time)" >&2
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target heatersim mkregistryd markd mk heater_daemon >/dev/null
fi

for f in "$BIN/heatersim" "$BIN/mkregistryd" "$BIN/markd" "$BIN/mk" "$LIB/libheater_daemon.so"; do
  if [[ ! -e "$f" ]]; then
    echo "demo: $f is missing; build first:" >&2
    echo "  cmake -S $ROOT -B $BUILD && cmake --build $BUILD -j2" >&2
    exit 2
  fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mktl-demo.XXXXXX")
export MKTL_HOME="$WORK/home"
export MKTL_BROADCAST=127.255.255.255
export PATH="$BIN:$PATH"
mkdir -p "$MKTL_HOME"

PIDS=()
cleanup() {
  local p
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  wait  # the stdout drainers, which end with their writers
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
show() {  # prints a command as typed, then runs it
  printf '\033[36m$ %s\033[0m\n' "$*"
  "$@"
}

# start NAME REGEX CMD...: starts CMD in the background and waits (at most
# 20 s) for a stdout line matching REGEX, left in LINE. Logs in $WORK/NAME.log.
start() {
  local name=$1 re=$2
  shift 2
  mkfifo "$WORK/$name.out"
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  PIDS+=($!)
  local fd
  exec {fd}<"$WORK/$name.out"
  LINE=""
  while IFS= read -r -t 20 -u "$fd" LINE; do [[ "$LINE" =~ $re ]] && break; done
  if ! [[ "$LINE" =~ $re ]]; then
    echo "demo: $name did not start; its log:" >&2
    cat "$WORK/$name.log" >&2
    exit 1
  fi
  cat <&"$fd" >>"$WORK/$name.log" &
  exec {fd}<&-
}

say "A simulated heater controller on a free TCP port (time constant 8 s)"
start heatersim '^PORT [0-9]+$' heatersim --port 0 --time-constant 8
PORT=${LINE#PORT }
echo "heatersim listening on 127.0.0.1:$PORT"

say "A registry, so that clients can find stores"
start mkregistryd '^mkregistryd: ready' mkregistryd
echo "$LINE"

say "The heater daemon: markd loads the HeaterDaemon class from a shared library"
printf '{"host": "127.0.0.1", "port": %s}\n' "$PORT" >"$WORK/heater-app.json"
printf '\033[36m$ %s\033[0m\n' "markd -c configs/heater.json -m lib/libheater_daemon.so -s HeaterDaemon -a heater-app.json heater heater1"
start markd '^markd: heater heater1 ready' \
  markd -c "$ROOT/configs/heater.json" -m "$LIB/libheater_daemon.so" -s HeaterDaemon \
  -a "$WORK/heater-app.json" heater heater1
echo "$LINE"

# The daemon announces itself to the registry and reads the controller
# asynchronously: wait (at most 20 s) until mk shows a temperature and a setpoint.
found=""
for ((i = 0; i < 100; i++)); do
  found=$(mk get --terse heater.temperature heater.setpoint 2>&1) && [[ "$found" =~ [0-9].*$'\n'.*[0-9] ]] && break
  found=""
  sleep 0.2
done
if [[ -z "$found" ]]; then
  echo "demo: mk cannot reach heater.temperature through the registry:" >&2
  mk get heater.temperature >&2 || true
  exit 1
fi

say "Read the current values"
show mk get heater.temperature heater.setpoint heater.power heater.status

say "Ask for 45 degC and switch the heater on"
show mk set heater.setpoint=45
show mk set heater.power=On

say "Watch the temperature climb for 6 seconds"
show timeout 6 mk watch heater.temperature || true

show mk get heater.status

say "The controller's limits are -50..150 degC: this SET is refused"
show mk set heater.setpoint=200 || echo "(exit status $?)"

say "Done; stopping heatersim, mkregistryd and markd"
