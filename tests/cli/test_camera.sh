#!/usr/bin/env bash
# CLI test of the camera: camerasim's line protocol over TCP (frame size, EXPOSE
# byte count, pixel levels), then the camera example daemon end to end.
#
# Env (set by ctest): MKTL_BIN (the build's bin dir), MKTL_SOURCE (the source
# tree), MKTL_BROADCAST (127.255.255.255: nothing leaves this machine).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_camera
need_source

###########################################################################
# 1. camerasim on its own
###########################################################################
[[ -x "$BIN/camerasim" ]] || die "$BIN/camerasim is not built"

W=64 H=48 NBYTES=$((64 * 48 * 2))
start_drained camerasim '^PORT [0-9]+$' "$BIN/camerasim" --port 0 --width $W --height $H --seed 3 --stars 8
SIM_PID=$pid
SIM_PORT=${line#PORT }
pass "camerasim listens on port $SIM_PORT"
exec 3<>"/dev/tcp/127.0.0.1/$SIM_PORT" || die "cannot connect to camerasim"

ask 3 'SIZE?';          expect_eq "SIZE? reports --width/--height" "$REPLY" "SIZE $W $H"
ask 3 'EXPTIME?';       expect_eq "EXPTIME? default" "$REPLY" "EXPTIME 0.1"
ask 3 'GAIN?';          expect_eq "GAIN? default" "$REPLY" "GAIN 1.0"
ask 3 'FRAMENO?';       expect_eq "FRAMENO? before any frame" "$REPLY" "FRAMENO 0"
ask 3 'EXPTIME -1';     expect_match "negative exposure time rejected" "$REPLY" '^ERR .*range'
ask 3 'EXPTIME 4000';   expect_match "exposure time above 3600 rejected" "$REPLY" '^ERR .*range'
ask 3 'EXPTIME long';   expect_match "exposure time not a number rejected" "$REPLY" '^ERR bad number'
ask 3 'GAIN 0';         expect_match "gain 0 rejected" "$REPLY" '^ERR .*range'
ask 3 'SNAP';           expect_match "unknown command rejected" "$REPLY" '^ERR unknown command'
ask 3 'EXPTIME 0';      expect_eq "EXPTIME 0" "$REPLY" "OK"

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
    awk '{ for (i = 1; i <= NF; i++) { s += $i; n++; if ($i > m) m = $i } } END { printf "%d %d %d\n", n, (n ? s / n : 0), m }'
}

expose 3 "$work/bias.raw"
expect_eq "EXPOSE header" "$REPLY" "FRAME 1 $W $H $NBYTES"
expect_eq "EXPOSE sends exactly nbytes" "$(wc -c <"$work/bias.raw")" "$NBYTES"
read -r count mean max < <(stats "$work/bias.raw")
expect_eq "frame holds width*height pixels" "$count" "$((W * H))"
expect_match "a zero-second frame sits at the bias (~500 ADU)" "$mean" '^(49[5-9]|50[0-5])$'
ask 3 'FRAMENO?';       expect_eq "the connection is in step after a frame" "$REPLY" "FRAMENO 1"

ask 3 'EXPTIME 10';     expect_eq "EXPTIME 10" "$REPLY" "OK"
ask 3 'GAIN 2';         expect_eq "GAIN 2" "$REPLY" "OK"
ask 3 'GAIN?';          expect_eq "GAIN? after set" "$REPLY" "GAIN 2.0"
expose 3 "$work/sky.raw"
expect_eq "second EXPOSE header" "$REPLY" "FRAME 2 $W $H $NBYTES"
read -r count mean2 max2 < <(stats "$work/sky.raw")
# Sky alone: 20 e/s * 10 s * gain 2 = 400 ADU above the bias.
if ((mean2 >= 880)); then pass "signal scales with exptime x gain (mean $mean2)"; else fail "mean $mean2 < 880 at 10 s, gain 2"; fi
if ((max2 > mean2 + 500)); then pass "stars stand out of the sky (max $max2)"; else fail "no star above the sky: max $max2, mean $mean2"; fi

# The same seed gives the same frames.
start_drained camerasim2 '^PORT [0-9]+$' "$BIN/camerasim" --port 0 --width $W --height $H --seed 3 --stars 8
exec 5<>"/dev/tcp/127.0.0.1/${line#PORT }" || die "cannot connect to the second camerasim"
ask 5 'EXPTIME 0'; expose 5 "$work/bias2.raw"
if cmp -s "$work/bias.raw" "$work/bias2.raw"; then pass "--seed makes frames reproducible"; else fail "same seed, different frames"; fi
exec 5>&-

ask 3 'EXPTIME 0.1'; ask 3 'GAIN 1'
exec 3>&-

run badwidth "$BIN/camerasim" --width 0; expect_eq "bad --width exits 2" "$rc" "2"

###########################################################################
# 2. The camera example daemon end to end: markd + mk
###########################################################################
skip_rest_unless_built "camera end-to-end" "$BIN/markd" "$BIN/mk" "$LIB/libcamera_daemon.so"

private_discovery_ports

start_example markd camera CameraDaemon "$SIM_PORT"
MARKD_PID=$pid
pass "markd serves the camera ($line)"
frameno_ok() { mk_ok get camera.frameno; ((rc == 0)) && [[ "$OUT" =~ frameno:\ [1-9] ]]; }
if wait_for 20 frameno_ok; then pass "frames are taken (frameno: $OUT)"; else
  die "mk get camera.frameno never showed a frame: $OUT"; fi

mk_ok set camera.exptime=0.5
expect_eq "mk set camera.exptime=0.5 exits 0" "$rc" "0"
exec 3<>"/dev/tcp/127.0.0.1/$SIM_PORT"
ask 3 'EXPTIME?'; expect_eq "exptime reached the camera" "$REPLY" "EXPTIME 0.5"
mk_ok set camera.gain=0
expect_eq "gain 0 is rejected with exit 1" "$rc" "1"
expect_match "the rejection says why" "$OUT" 'gain'
mk_ok set camera.frameno=3; expect_eq "frameno is read-only (exit 1)" "$rc" "1"
mk_ok get camera.frame; expect_eq "mk get camera.frame exits 0" "$rc" "0"

mk_ok set camera.rate=5; expect_eq "mk set camera.rate=5 exits 0" "$rc" "0"
timeout 2 "${MK[@]}" watch camera.frameno >"$work/watch.out" 2>&1 || true  # timeout ends it
lines=$(grep -cE 'frameno: [0-9]+' "$work/watch.out" || true)
if ((lines >= 5)); then pass "mk watch shows $lines frame numbers in 2 s at 5 Hz"; else
  fail "mk watch showed $lines frame numbers in 2 s at 5 Hz:"; cat "$work/watch.out"; fi

mk_ok set camera.rate=0; expect_eq "mk set camera.rate=0 exits 0" "$rc" "0"
ask 3 'FRAMENO?'; before=$REPLY
sleep 1.5  # not synchronisation: the check is that nothing happens meanwhile
ask 3 'FRAMENO?'
expect_eq "rate 0 stops the frames" "$REPLY" "$before"
exec 3>&-

stop "$MARKD_PID"
expect_eq "markd exits 0 on SIGTERM" "$rc" "0"

finish camera
