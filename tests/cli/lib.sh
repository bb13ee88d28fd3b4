# Shared helpers of the CLI tests (tests/cli/test_*.sh), sourced by each one:
#   set -euo pipefail
#   source "$(dirname "$0")/lib.sh"
#   cli_init NAME
# Not a test itself: the ctest glob only takes test_*.sh.
#
# Env (set by ctest): MKTL_BIN (the build's bin dir), MKTL_SOURCE (the source
# tree), MKTL_BROADCAST (127.255.255.255: nothing leaves this machine).
#
# Every helper is safe under `set -e`: expected failures are caught and left
# in $rc, never allowed to end the script by accident.

# cli_init NAME: checks the environment, makes the scratch dir $work with a
# private MKTL_HOME ($work/home), and installs the cleanup trap. Sets BIN,
# LIB (the build's lib dir), work; SRC if MKTL_SOURCE is set.
cli_init() {
  BIN=${MKTL_BIN:?set MKTL_BIN to the bin directory of the build}
  SRC=${MKTL_SOURCE:-}
  LIB=$(cd "$BIN/../lib" 2>/dev/null && pwd || echo "$BIN/../lib")
  export MKTL_BROADCAST=${MKTL_BROADCAST:-127.255.255.255}
  unset MKTL_LOG  # the tests read the tools' normal output
  # ctest runs two tests at a time on CI's two cores, beside ASan or
  # chromium: a daemon there can be off the CPU for more than the usual
  # 0.1 s. What the tests check is not the ACK timeout, so they give it 0.5 s
  # (a test that sets its own keeps it).
  export MKTL_ACK_TIMEOUT=${MKTL_ACK_TIMEOUT:-0.5}
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  export MKTL_HOME=$work/home
  mkdir -p "$MKTL_HOME"
  trap cli_cleanup EXIT
}

# need_source: the tests that read configs or scripts from the tree.
need_source() {
  SRC=${MKTL_SOURCE:?set MKTL_SOURCE to the source tree}
}

# private_discovery_ports: parallel tests must not find each other's daemons
# or registries.
private_discovery_ports() {
  export MKTL_REGISTRY_PORT=$((20000 + RANDOM % 20000))
  export MKTL_DAEMON_PORT=$((MKTL_REGISTRY_PORT + 1))
}

# Processes to stop at exit: $pids (one process each), $groups (process
# groups, for setsid children that start their own).
pids=()
groups=()
cli_cleanup() {
  set +e
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${groups[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
  wait 2>/dev/null  # also the stdout drainers, which end with their writers
  for p in "${groups[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
  [[ -n ${work:-} ]] && rm -rf "$work"
}

# ---- results ------------------------------------------------------------------
failures=0
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
die() { echo "FAIL: $*" >&2; exit 1; }

expect_eq() {  # NAME GOT WANT
  if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}
expect_match() {  # NAME TEXT REGEX
  if [[ $2 =~ $3 ]]; then pass "$1"; else fail "$1: '$2' does not match /$3/"; fi
}
expect_in() {  # NAME HAYSTACK NEEDLE
  if [[ $2 == *"$3"* ]]; then pass "$1"; else fail "$1: '$3' not in: $2"; fi
}
expect_rc() {  # NAME EXPECTED: the $rc left by run (or wait_exit)
  if [[ $rc == "$2" ]]; then pass "$1 (exit $rc)"; else
    fail "$1: exit $rc, expected $2; stdout: ${out:-}; stderr: ${err:-}"; fi
}
expect_out() {  # NAME EXPECTED-STDOUT (exact): also expects exit 0
  if [[ $rc == 0 && $out == "$2" ]]; then pass "$1"; else
    fail "$1: exit $rc, stdout '$out', expected '$2'; stderr: $err"; fi
}

# finish WHAT: the summary line and the exit status.
finish() {
  if ((failures)); then
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  echo "all $1 checks passed"
}

# ---- running processes ------------------------------------------------------------
# run NAME CMD...: runs CMD (bounded), leaving $rc, $out, $err (also in
# $work/NAME.stdout and $work/NAME.stderr).
run() {
  local name=$1; shift
  rc=0
  timeout "${RUN_TIMEOUT:-30}" "$@" >"$work/$name.stdout" 2>"$work/$name.stderr" || rc=$?
  out=$(cat "$work/$name.stdout")
  err=$(cat "$work/$name.stderr")
}

# try_start [--first] NAME REGEX CMD...: starts CMD in the background and
# waits (at most 20 s) for a stdout line matching REGEX (with --first, the
# first line must match). Leaves the line in $line (BASH_REMATCH holds its
# groups), the process in $pid, and the FIFO's read end open on $fd so that
# the process never gets SIGPIPE (read more lines from it, or drain it).
# On failure says why (a fail) and returns 1.
try_start() {
  local first=no
  if [[ $1 == --first ]]; then first=yes; shift; fi
  local name=$1 re=$2; shift 2
  mkfifo "$work/$name.fifo"
  "$@" >"$work/$name.fifo" 2>"$work/$name.stderr" &
  pid=$!
  pids+=("$pid")
  # Opening the FIFO returns once the child has opened it for writing.
  exec {fd}<"$work/$name.fifo"
  line=""
  while read -r -t 20 -u "$fd" line; do
    [[ $line =~ $re ]] && return 0
    [[ $first == yes ]] && break
  done
  fail "$name did not print /$re/ (got '$line'); stderr: $(cat "$work/$name.stderr")"
  return 1
}
# start: try_start, ending the test if the process does not come up.
start() {
  try_start "$@" || exit 1
}
# start_drained: start, then keep reading the rest of its stdout (into
# $work/NAME.log) so that a chatty process never blocks on a full pipe.
start_drained() {
  start "$@"
  local a name
  for a in "$@"; do [[ $a == --first ]] || { name=$a; break; }; done
  cat <&"$fd" >>"$work/$name.log" &
  exec {fd}<&-
}

# wait_for SECONDS CMD...: retries CMD every 0.1 s until it succeeds; returns 1
# if it never does within SECONDS.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# wait_exit PID SECONDS: waits (bounded) for PID to end; sets $rc to its exit
# status ("timeout" if it did not end).
wait_exit() {
  local p=$1 deadline=$((SECONDS + $2))
  while kill -0 "$p" 2>/dev/null; do
    if ((SECONDS >= deadline)); then rc=timeout; return 0; fi
    sleep 0.05
  done
  rc=0
  wait "$p" || rc=$?
}

# stop PID: SIGTERM, then the bounded wait_exit (20 s); sets $rc.
stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait_exit "$1" 20
}

# ask FD LINE: one command to a simulator's line protocol, its answer in REPLY.
ask() {
  printf '%s\n' "$2" >&"$1"
  REPLY=""
  IFS= read -r -t 5 -u "$1" REPLY || die "no answer to '$2'"
}

# rep_port LINE: the rep= port of a ready line.
rep_port() {
  sed -n 's/.* rep=\([0-9]*\).*/\1/p' <<<"$1"
}

# need_reference: the interop tests need a checkout of the Python reference
# (MKTL_REFERENCE; skipped without it) and Debian's python3-zmq and -numpy.
# Sets PY.
need_reference() {
  : "${MKTL_BIN:?set MKTL_BIN to the bin directory of the build}"
  : "${MKTL_SOURCE:?set MKTL_SOURCE to the source tree}"
  if [ -z "${MKTL_REFERENCE:-}" ]; then
    skip "MKTL_REFERENCE is not set: no reference checkout to test against"
  fi
  PY=/usr/bin/python3
  if ! $PY -c 'import zmq, numpy' 2>/dev/null; then
    echo "FAIL: $PY needs zmq and numpy (apt-get install python3-zmq python3-numpy)" >&2
    exit 1
  fi
}

# skip WHY: ends the test as skipped: exit status 77, which ctest reports as
# "Skipped" (SKIP_RETURN_CODE in tests/CMakeLists.txt), not as a pass. Fails
# instead if an earlier check failed.
skip() {
  if ((failures)); then
    echo "$failures check(s) failed before the skip ($*)" >&2
    exit 1
  fi
  echo "SKIP: $*"
  exit 77
}

# skip_rest_unless_built WHAT PATH...: if a PATH is missing, skips the rest of
# the test (the test as a whole is reported skipped).
skip_rest_unless_built() {
  local what=$1 f; shift
  local missing=()
  for f in "$@"; do [[ -e $f ]] || missing+=("$f"); done
  ((${#missing[@]} == 0)) && return 0
  skip "$what: not built: ${missing[*]}"
}

# ---- the example daemons (camera, heater) ----------------------------------------
# start_example NAME STORE SUBCLASS SIM_PORT: markd serving the example daemon
# STORE (alias STORE1, module libSTORE_daemon.so) over the simulator at
# SIM_PORT. Sets pid, line, and MK: mk talking straight to that markd (these
# tests are about the daemon, not discovery).
start_example() {
  local name=$1 store=$2 subclass=$3
  printf '{"host": "127.0.0.1", "port": %d}\n' "$4" >"$work/$store-app.json"
  start_drained "$name" "^markd: $store ${store}1 ready" "$BIN/markd" -c "$SRC/configs/$store.json" \
    -m "$LIB/lib${store}_daemon.so" -s "$subclass" -a "$work/$store-app.json" "$store" "${store}1"
  MK=("$BIN/mk" --connect "tcp://127.0.0.1:$(rep_port "$line")")
}
# mk_ok ARGS...: runs mk with MK; its output (stdout and stderr) in OUT, its
# exit status in rc.
mk_ok() {
  rc=0
  OUT=$("${MK[@]}" "$@" 2>&1) || rc=$?
}
