#!/usr/bin/env bash
# CLI test of the camera: camerasim's line protocol over TCP (frame size, EXPOSE
# byte count, pixel levels), then the camera example daemon end to end.
#
# Env (set by ctest): MKTL_BIN (the build's bin dir), MKTL_SOURCE (the source
# tree), MKTL_BROADCAST (127.255.255.255: nothing leaves this machine).
set -uo pipefail

BIN=${MKTL_BIN:?MKTL_BIN must name the build\'s bin directory}
SRC=${MKTL_SOURCE:?MKTL_SOURCE must name the source tree}
LIB=$(cd "$BIN/../lib" 2>/dev/null && pwd || echo "$BIN/../lib")
export MKTL_BROADCAST=${MKTL_BROADCAST:-127.255.255.255}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/test_camera.XXXXXX")
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
# 1. camerasim on its own
###########################################################################
[[ -x "$BIN/camerasim" ]] || die "$BIN/camerasim is not built"

W=64 H=48 NBYTES=$((64 * 48 * 2))
start_with_line camerasim '^PORT [0-9]+$' "$BIN/camerasim" --port 0 --width $W --height $H --seed 3 --stars 8
SIM_PID=$START_PID
SIM_PORT=${START_LINE#PORT }
pass "camerasim listens on port $SIM_PORT"
exec 3<>"/dev/tcp/127.0.0.1/$SIM_PORT" || die "cannot connect to camerasim"

ask 3 'SIZE?';          check_eq "SIZE? reports --width/--height" "$REPLY" "SIZE $W $H"
ask 3 'EXPTIME?';       check_eq "EXPTIME? default" "$REPLY" "EXPTIME 0.1"
ask 3 'GAIN?';          check_eq "GAIN? default" "$REPLY" "GAIN 1.0"
ask 3 'FRAMENO?';       check_eq "FRAMENO? before any frame" "$REPLY" "FRAMENO 0"
ask 3 'EXPTIME -1';     check_re "negative exposure time rejected" "$REPLY" '^ERR .*range'
ask 3 'EXPTIME 4000';   check_re "exposure time above 3600 rejected" "$REPLY" '^ERR .*range'
ask 3 'EXPTIME long';   check_re "exposure time not a number rejected" "$REPLY" '^ERR bad number'
ask 3 'GAIN 0';         check_re "gain 0 rejected" "$REPLY" '^ERR .*range'
ask 3 'SNAP';           check_re "unknown command rejected" "$REPLY" '^ERR unknown command'
ask 3 'EXPTIME 0';      check_eq "EXPTIME 0" "$REPLY" "OK"

# expose FD FILE: EXPOSE, header in REPLY, pixels into FILE.
expose() {
  ask "$1" 'EXPOSE'
  local n=${REPLY##* }
  [[ "$n" =~ ^[0-9]+$ ]] || { fail "EXPOSE answered '$REPLY'"; : >"$2"; return; }
  head -c "$n" <&"$1" >"$2"
}
# stats FILE: "count mean max" of the little-endian uint16 pixels.
stats() {
  od -An -v --endian=little -tu2 "$1" |
    awk '{ for (i = 1; i <= NF; i++) { s += $i; n++; if ($i > m) m = $i } } END { printf "%d %d %d", n, (n ? s / n : 0), m }'
}

expose 3 "$WORK/bias.raw"
check_eq "EXPOSE header" "$REPLY" "FRAME 1 $W $H $NBYTES"
check_eq "EXPOSE sends exactly nbytes" "$(wc -c <"$WORK/bias.raw")" "$NBYTES"
read -r count mean max < <(stats "$WORK/bias.raw")
check_eq "frame holds width*height pixels" "$count" "$((W * H))"
check_re "a zero-second frame sits at the bias (~500 ADU)" "$mean" '^(49[5-9]|50[0-5])$'
ask 3 'FRAMENO?';       check_eq "the connection is in step after a frame" "$REPLY" "FRAMENO 1"

ask 3 'EXPTIME 10';     check_eq "EXPTIME 10" "$REPLY" "OK"
ask 3 'GAIN 2';         check_eq "GAIN 2" "$REPLY" "OK"
ask 3 'GAIN?';          check_eq "GAIN? after set" "$REPLY" "GAIN 2.0"
expose 3 "$WORK/sky.raw"
check_eq "second EXPOSE header" "$REPLY" "FRAME 2 $W $H $NBYTES"
read -r count mean2 max2 < <(stats "$WORK/sky.raw")
# Sky alone: 20 e/s * 10 s * gain 2 = 400 ADU above the bias.
if ((mean2 >= 880)); then pass "signal scales with exptime x gain (mean $mean2)"; else fail "mean $mean2 < 880 at 10 s, gain 2"; fi
if ((max2 > mean2 + 500)); then pass "stars stand out of the sky (max $max2)"; else fail "no star above the sky: max $max2, mean $mean2"; fi

# The same seed gives the same frames.
start_with_line camerasim2 '^PORT [0-9]+$' "$BIN/camerasim" --port 0 --width $W --height $H --seed 3 --stars 8
exec 5<>"/dev/tcp/127.0.0.1/${START_LINE#PORT }" || die "cannot connect to the second camerasim"
ask 5 'EXPTIME 0'; expose 5 "$WORK/bias2.raw"
if cmp -s "$WORK/bias.raw" "$WORK/bias2.raw"; then pass "--seed makes frames reproducible"; else fail "same seed, different frames"; fi
exec 5>&-

ask 3 'EXPTIME 0.1'; ask 3 'GAIN 1'
exec 3>&-

"$BIN/camerasim" --width 0 >/dev/null 2>&1; check_eq "bad --width exits 2" "$?" "2"

###########################################################################
# 2. The camera example daemon end to end: markd + mk
###########################################################################
missing=()
for exe in markd mk; do [[ -x "$BIN/$exe" ]] || missing+=("$BIN/$exe"); done
[[ -f "$LIB/libcamera_daemon.so" ]] || missing+=("$LIB/libcamera_daemon.so")
if ((${#missing[@]})); then
  echo "SKIP - camera end-to-end: not built: ${missing[*]}"
  ((FAILS == 0)) || exit 1
  exit 0
fi

export MKTL_HOME="$WORK/home"
mkdir -p "$MKTL_HOME"
# Private discovery ports: parallel tests must not find each other's daemons.
export MKTL_REGISTRY_PORT=$((20000 + (RANDOM % 20000)))
export MKTL_DAEMON_PORT=$((MKTL_REGISTRY_PORT + 1))
printf '{"host": "127.0.0.1", "port": %d}\n' "$SIM_PORT" >"$WORK/camera-app.json"

start_with_line markd '^markd: camera camera1 ready' "$BIN/markd" -c "$SRC/configs/camera.json" \
  -m "$LIB/libcamera_daemon.so" -s CameraDaemon -a "$WORK/camera-app.json" camera camera1
MARKD_PID=$START_PID
pass "markd serves the camera ($START_LINE)"

# Straight to the daemon: this test is about the daemon, not discovery
# (scripts/demo.sh, checked by test_heater_demo.sh, goes through the registry).
REP=$(sed -n 's/.* rep=\([0-9]*\).*/\1/p' <<<"$START_LINE")
MK=("$BIN/mk" --connect "tcp://127.0.0.1:$REP")
mk_ok() { OUT=$("${MK[@]}" "$@" 2>&1); }
frameno_ok() { mk_ok get camera.frameno && [[ "$OUT" =~ frameno:\ [1-9] ]]; }
if wait_until "frames flow" 20 frameno_ok; then pass "frames are taken (frameno: $OUT)"; else
  die "mk get camera.frameno never showed a frame: $OUT"; fi

mk_ok set camera.exptime=0.5; rc=$?
check_eq "mk set camera.exptime=0.5 exits 0" "$rc" "0"
exec 3<>"/dev/tcp/127.0.0.1/$SIM_PORT"
ask 3 'EXPTIME?'; check_eq "exptime reached the camera" "$REPLY" "EXPTIME 0.5"
mk_ok set camera.gain=0; rc=$?
check_eq "gain 0 is rejected with exit 1" "$rc" "1"
check_re "the rejection says why" "$OUT" 'gain'
mk_ok set camera.frameno=3; check_eq "frameno is read-only (exit 1)" "$?" "1"
mk_ok get camera.frame; check_eq "mk get camera.frame exits 0" "$?" "0"

mk_ok set camera.rate=5; check_eq "mk set camera.rate=5 exits 0" "$?" "0"
timeout 2 "${MK[@]}" watch camera.frameno >"$WORK/watch.out" 2>&1
lines=$(grep -cE 'frameno: [0-9]+' "$WORK/watch.out")
if ((lines >= 5)); then pass "mk watch shows $lines frame numbers in 2 s at 5 Hz"; else
  fail "mk watch showed $lines frame numbers in 2 s at 5 Hz:"; cat "$WORK/watch.out"; fi

mk_ok set camera.rate=0; check_eq "mk set camera.rate=0 exits 0" "$?" "0"
ask 3 'FRAMENO?'; before=$REPLY
sleep 1.5  # not synchronisation: the check is that nothing happens meanwhile
ask 3 'FRAMENO?'
check_eq "rate 0 stops the frames" "$REPLY" "$before"
exec 3>&-

kill "$MARKD_PID"; wait "$MARKD_PID" 2>/dev/null
check_eq "markd exits 0 on SIGTERM" "$?" "0"

((FAILS == 0)) || { echo "$FAILS check(s) failed"; exit 1; }
echo "all camera checks passed"
