#!/usr/bin/env bash
# CLI test of mk with bulk values: the camera example daemon (markd -m
# libcamera_daemon.so) over camerasim publishes uint16 frames; mk get prints
# shape, dtype and min/max/mean, --output writes the raw bytes, --json carries
# shape and dtype, watch shows frames as they come.
# Loopback only, ephemeral ports, a private MKTL_HOME; readiness and frames are
# read from FIFOs with timeouts, never by sleeping.
set -u
: "${MKTL_BIN:?set MKTL_BIN to the bin directory of the build}"
: "${MKTL_SOURCE:?set MKTL_SOURCE to the source tree}"
export MKTL_BROADCAST=${MKTL_BROADCAST:-127.255.255.255}
lib=$MKTL_BIN/../lib
work=$(mktemp -d)
export MKTL_HOME=$work/home
unset MKTL_LOG

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

for need in "$MKTL_BIN/markd" "$MKTL_BIN/mk" "$MKTL_BIN/camerasim" "$lib/libcamera_daemon.so"; do
  [[ -e $need ]] || die "$need is not built"
done

# start NAME REGEX CMD...: runs CMD in the background, waits (at most 20 s)
# for a stdout line matching REGEX; leaves it in $line and the FIFO open on
# $fd so that the process never gets SIGPIPE.
start() {
  local name=$1 re=$2; shift 2
  mkfifo "$work/$name.fifo"
  "$@" >"$work/$name.fifo" 2>"$work/$name.stderr" &
  pids+=("$!")
  exec {fd}<"$work/$name.fifo"
  line=""
  while read -r -t 20 -u "$fd" line; do [[ $line =~ $re ]] && return 0; done
  die "$name did not print /$re/ (last '$line'): $(cat "$work/$name.stderr")"
}

W=64
H=48
start camerasim '^PORT [0-9]+$' "$MKTL_BIN/camerasim" --port 0 --width $W --height $H --seed 3 --stars 8
sim_port=${line#PORT }
printf '{"host": "127.0.0.1", "port": %d}\n' "$sim_port" >"$work/app.json"

start markd '^markd: camera camera1 ready rep=[0-9]+ pub=[0-9]+$' "$MKTL_BIN/markd" --no-discovery \
  --bind 127.0.0.1 --hostname 127.0.0.1 -c "$MKTL_SOURCE/configs/camera.json" -m "$lib/libcamera_daemon.so" \
  -s CameraDaemon -a "$work/app.json" camera camera1
rep=$(sed -n 's/.* rep=\([0-9]*\).*/\1/p' <<<"$line")
mk=("$MKTL_BIN/mk" -w 10 --connect "tcp://127.0.0.1:$rep")

# Watch the frames: the first broadcast carrying data proves frames flow.
summary_re="^frame: shape \\($H, $W\\) dtype uint16 min [0-9.e+-]+ max [0-9.e+-]+ mean [0-9.e+-]+$"
start watch "$summary_re" "${mk[@]}" watch --no-timestamp camera.frame
pass "watch shows a frame summary: $line"

timeout 30 "${mk[@]}" get camera.frame >"$work/get.out" 2>"$work/get.err"
rc=$?
out=$(cat "$work/get.out")
[[ $rc == 0 && $out =~ $summary_re ]] && pass "get of a bulk item: $out" ||
  fail "get camera.frame: exit $rc, '$out', stderr $(cat "$work/get.err")"

timeout 30 "${mk[@]}" get --output "$work/frame.raw" camera.frame >"$work/out.out" 2>"$work/out.err"
rc=$?
size=$(stat -c %s "$work/frame.raw" 2>/dev/null || echo missing)
[[ $rc == 0 && $size == $((W * H * 2)) ]] && pass "--output writes $size raw bytes" ||
  fail "--output: exit $rc, size $size, expected $((W * H * 2)); stderr $(cat "$work/out.err")"

timeout 30 "${mk[@]}" get --json camera.frame >"$work/json.out" 2>"$work/json.err"
rc=$?
out=$(cat "$work/json.out")
[[ $rc == 0 && $out == *"\"shape\":[$H,$W]"* && $out == *'"dtype":"uint16"'* && $out == *"\"bytes\":$((W * H * 2))"* ]] &&
  pass "get --json of a bulk item" || fail "get --json camera.frame: exit $rc, '$out'"

timeout 30 "${mk[@]}" set camera.frame=1 >"$work/set.out" 2>"$work/set.err"
rc=$?
[[ $rc == 1 && $(cat "$work/set.err") == "mk: camera.frame: "* ]] && pass "set of a bulk item is refused (exit 1)" ||
  fail "set camera.frame: exit $rc, stderr $(cat "$work/set.err")"

if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all mk bulk checks passed"
