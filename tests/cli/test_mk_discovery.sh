#!/usr/bin/env bash
# CLI test of mk without --connect: markd announces its catalog to a registry
# (mkregistryd), mk finds the store by UDP discovery on 127.255.255.255, then
# from its catalog cache; after markd restarts on new ports, the stale cache
# is noticed and mk still answers. mk discover lists the registry's stores.
# Private discovery ports (parallel tests never see each other), loopback
# only, a private MKTL_HOME; readiness is read from FIFOs with timeouts.
set -u
: "${MKTL_BIN:?set MKTL_BIN to the bin directory of the build}"
export MKTL_BROADCAST=127.255.255.255
work=$(mktemp -d)
export MKTL_HOME=$work/home
export MKTL_REGISTRY_PORT=$((20000 + RANDOM % 20000))
export MKTL_DAEMON_PORT=$((MKTL_REGISTRY_PORT + 1))
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

for need in markd mk mkregistryd; do [[ -x $MKTL_BIN/$need ]] || die "$MKTL_BIN/$need is not built"; done

# start NAME REGEX CMD...: runs CMD in the background and waits (at most 20 s)
# for a stdout line matching REGEX; sets $line and $pid; the FIFO stays open.
start() {
  local name=$1 re=$2; shift 2
  mkfifo "$work/$name.fifo"
  "$@" >"$work/$name.fifo" 2>"$work/$name.stderr" &
  pid=$!
  pids+=("$pid")
  exec {fd}<"$work/$name.fifo"
  line=""
  while read -r -t 20 -u "$fd" line; do [[ $line =~ $re ]] && return 0; done
  die "$name did not print /$re/ (last '$line'): $(cat "$work/$name.stderr")"
}

run() {  # NAME CMD...: runs CMD (bounded), leaving $rc, $out, $err
  local name=$1; shift
  timeout 30 "$@" >"$work/$name.stdout" 2>"$work/$name.stderr"
  rc=$?
  out=$(cat "$work/$name.stdout")
  err=$(cat "$work/$name.stderr")
}
expect_out() {  # NAME EXPECTED-STDOUT (exact), exit 0
  if [[ $rc == 0 && $out == "$2" ]]; then pass "$1"; else fail "$1: exit $rc, stdout '$out', expected '$2'; stderr: $err"; fi
}

wait_exit() {  # PID SECONDS: bounded wait for PID to end; sets $rc
  local p=$1 deadline=$((SECONDS + $2))
  while kill -0 "$p" 2>/dev/null; do
    if ((SECONDS >= deadline)); then rc=timeout; return; fi
    sleep 0.05
  done
  wait "$p"
  rc=$?
}

cat >"$work/test.json" <<'EOF'
{"setpoint": {"type": "numeric", "format": "%.1f", "units": "degC", "initial": 20}}
EOF

start registry '^mkregistryd: ready rep=[0-9]+ udp=[0-9]+$' "$MKTL_BIN/mkregistryd" --bind 127.0.0.1 \
  --hostname 127.0.0.1
registry_rep=$(sed -n 's/.* rep=\([0-9]*\).*/\1/p' <<<"$line")
pass "registry: $line"

markd_args=(--bind 127.0.0.1 --hostname 127.0.0.1 --broadcast 127.255.255.255 -c "$work/test.json" test test1)
start markd '^markd: test test1 ready rep=[0-9]+ pub=[0-9]+$' "$MKTL_BIN/markd" "${markd_args[@]}"
pass "markd with discovery: $line"

run g1 "$MKTL_BIN/mk" -w 10 get test.setpoint
expect_out "get finds the store through the registry" "setpoint: 20.0 degC"
[[ -n $(ls "$MKTL_HOME/client/cache/test" 2>/dev/null) ]] && pass "the catalog is cached" || fail "no catalog cache"

run s1 "$MKTL_BIN/mk" -w 10 set test.setpoint=42
expect_out "set through the cached catalog" "Set test.setpoint to 42.0 degC"
run g2 "$MKTL_BIN/mk" -w 10 get test.setpoint
expect_out "get through the cached catalog" "setpoint: 42.0 degC"

run d1 "$MKTL_BIN/mk" -w 10 discover "tcp://127.0.0.1:$registry_rep"
expect_out "discover at the registry" "1 store discovered: test"
run d2 "$MKTL_BIN/mk" -w 10 discover
expect_out "discover by broadcast" "1 store discovered: test"

# Restart markd (new ephemeral ports): the cached address is stale.
kill -TERM "$pid"
wait_exit "$pid" 20
[[ $rc == 0 ]] && pass "markd stops on SIGTERM" || fail "markd stop: exit $rc"
start markd2 '^markd: test test1 ready rep=[0-9]+ pub=[0-9]+$' "$MKTL_BIN/markd" "${markd_args[@]}"
pass "markd restarted: $line"
run g3 "$MKTL_BIN/mk" -w 10 get test.setpoint
expect_out "get after the daemon moved" "setpoint: 20.0 degC"

if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all mk discovery checks passed"
