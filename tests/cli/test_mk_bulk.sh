#!/usr/bin/env bash
# CLI test of mk with bulk values: the camera example daemon (markd -m
# libcamera_daemon.so) over camerasim publishes uint16 frames; mk get prints
# shape, dtype and min/max/mean, --output writes the raw bytes, --json carries
# shape and dtype, watch shows frames as they come.
# Loopback only, ephemeral ports, a private MKTL_HOME; readiness and frames are
# read from FIFOs with timeouts, never by sleeping.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_mk_bulk
need_source
lib=$LIB

for need in "$MKTL_BIN/markd" "$MKTL_BIN/mk" "$MKTL_BIN/camerasim" "$lib/libcamera_daemon.so"; do
  [[ -e $need ]] || die "$need is not built"
done

W=64
H=48
start camerasim '^PORT [0-9]+$' "$MKTL_BIN/camerasim" --port 0 --width $W --height $H --seed 3 --stars 8
sim_port=${line#PORT }
printf '{"host": "127.0.0.1", "port": %d}\n' "$sim_port" >"$work/app.json"

start markd '^markd: camera camera1 ready rep=[0-9]+ pub=[0-9]+$' "$MKTL_BIN/markd" --no-discovery \
  --bind 127.0.0.1 --hostname 127.0.0.1 -c "$MKTL_SOURCE/configs/camera.json" -m "$lib/libcamera_daemon.so" \
  -s CameraDaemon -a "$work/app.json" camera camera1
rep=$(rep_port "$line")
mk=("$MKTL_BIN/mk" -w 10 --connect "tcp://127.0.0.1:$rep")

# Watch the frames: the first broadcast carrying data proves frames flow.
summary_re="^frame: shape \\($H, $W\\) dtype uint16 min [0-9.e+-]+ max [0-9.e+-]+ mean [0-9.e+-]+$"
start watch "$summary_re" "${mk[@]}" watch --no-timestamp camera.frame
pass "watch shows a frame summary: $line"

run get "${mk[@]}" get camera.frame
[[ $rc == 0 && $out =~ $summary_re ]] && pass "get of a bulk item: $out" ||
  fail "get camera.frame: exit $rc, '$out', stderr $err"

run out "${mk[@]}" get --output "$work/frame.raw" camera.frame
size=$(stat -c %s "$work/frame.raw" 2>/dev/null || echo missing)
[[ $rc == 0 && $size == $((W * H * 2)) ]] && pass "--output writes $size raw bytes" ||
  fail "--output: exit $rc, size $size, expected $((W * H * 2)); stderr $err"

run json "${mk[@]}" get --json camera.frame
[[ $rc == 0 && $out == *"\"shape\":[$H,$W]"* && $out == *'"dtype":"uint16"'* && $out == *"\"bytes\":$((W * H * 2))"* ]] &&
  pass "get --json of a bulk item" || fail "get --json camera.frame: exit $rc, '$out'"

run set "${mk[@]}" set camera.frame=1
[[ $rc == 1 && $err == "mk: camera.frame: "* ]] && pass "set of a bulk item is refused (exit 1)" ||
  fail "set camera.frame: exit $rc, stderr $err"

finish "mk bulk"
