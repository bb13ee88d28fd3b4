#!/bin/bash
# Builds the libFuzzer targets of tests/fuzz/ with clang-14 (their own build
# directory: libmktl and the targets only, -O1, ASan + UBSan) and runs each
# for a bounded time, from its seed corpus and regressions, with its
# dictionary and -timeout=5. A crash, leak, UB report, hang or broken
# invariant fails the script (exit 1), naming the input libFuzzer saved.
#
# Usage: scripts/fuzz.sh [--seconds N] [--runs R] [--target NAME]... [--parallel P] [--build-dir DIR]
#   --seconds N   time per target (default $MKTL_FUZZ_SECONDS, else 15)
#   --runs R      stop a target after R executions (the long run: 10000000),
#                 or at --seconds, whichever comes first
#   --target NAME run only this target (daemon_request, expr, ...); repeatable
#   --parallel P  targets run at a time (default 2)
# scripts/test.sh runs it as its last stage; a long run is the same command
# with more seconds (docs/reliability.md, "Fuzzing"). Each target's log is
# DIR/logs/NAME.log, its grown corpus DIR/corpus/NAME, failing inputs
# DIR/artifacts/NAME/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${MKTL_FUZZ_SECONDS:-15}
parallel=2
runs=
dir=build-fuzz
targets=()
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --build-dir) dir=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "fuzz.sh: --seconds needs a positive integer" >&2; exit 2; }
[[ $parallel =~ ^[0-9]+$ && $parallel -gt 0 ]] || { echo "fuzz.sh: --parallel needs a positive integer" >&2; exit 2; }
[[ -z $runs || ( $runs =~ ^[0-9]+$ && $runs -gt 0 ) ]] || { echo "fuzz.sh: --runs needs a positive integer" >&2; exit 2; }

if ! command -v clang++-14 >/dev/null || ! dpkg-query -W -f='${Status}' libfuzzer-14-dev 2>/dev/null | grep -q "ok installed"; then
  echo "fuzz.sh: needs clang-14 and libfuzzer-14-dev (scripts/deps.sh installs them)" >&2
  exit 2
fi

if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/fuzz_*.cpp; do
    f=${f##*/fuzz_}
    targets+=("${f%.cpp}")
  done
fi
for t in "${targets[@]}"; do
  [[ -f tests/fuzz/fuzz_$t.cpp ]] || { echo "fuzz.sh: no target '$t' (tests/fuzz/fuzz_$t.cpp)" >&2; exit 2; }
done

echo "== fuzz: build ($dir, clang-14)"
CC=clang-14 CXX=clang++-14 cmake -S . -B "$dir" -DMKTL_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DMKTL_BUILD_TESTS=OFF -DMKTL_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

mkdir -p "$dir/logs"
export MKTL_BROADCAST=${MKTL_BROADCAST:-127.255.255.255}   # nothing leaves the host
# Leaks are findings; a daemon's threads at exit are not.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_target() {
  local t=$1 corpus=$dir/corpus/$1 artifacts=$dir/artifacts/$1/
  mkdir -p "$corpus" "$artifacts"
  local args=(-max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$artifacts")
  [[ -n $runs ]] && args+=(-runs="$runs")
  # Its daemon keeps rows from input to input (renewed every 256), so
  # libFuzzer's leak check would run after nearly every input at half the
  # rate; ASan's check at exit still reports what leaked.
  [[ $t == collection_request ]] && args+=(-detect_leaks=0)
  [[ -f tests/fuzz/dict/$t.dict ]] && args+=(-dict="tests/fuzz/dict/$t.dict")
  local seeds=(tests/fuzz/corpus/"$t")
  [[ -d tests/fuzz/regressions/$t ]] && seeds+=(tests/fuzz/regressions/"$t")
  # New inputs go to the first directory (the build's), never into the tree.
  "$dir/bin/fuzz_$t" "${args[@]}" "$corpus" "${seeds[@]}" >"$dir/logs/$t.log" 2>&1
}

summary() {
  local t=$1 log=$dir/logs/$1.log
  local execs rate cov
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1)
  printf '   %-20s %10s execs %7s/s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}"
}

echo "== fuzz: ${#targets[@]} target(s), ${seconds}s each${runs:+ or $runs executions}, $parallel at a time"
failed=()
pids=() names=()
wait_one() {
  local pid=${pids[0]} t=${names[0]}
  pids=("${pids[@]:1}") names=("${names[@]:1}")
  if wait "$pid"; then summary "$t"; else
    failed+=("$t")
    echo "!! fuzz_$t failed: $dir/logs/$t.log; input(s) in $dir/artifacts/$t/:"
    ls "$dir/artifacts/$t/" | sed 's/^/     /'
    grep -E -m 20 'ERROR|SUMMARY|runtime error|invariant|Test unit written|==[0-9]+==' "$dir/logs/$t.log" | sed 's/^/     /' || true
  fi
}
for t in "${targets[@]}"; do
  ((${#pids[@]} >= parallel)) && wait_one
  run_target "$t" &
  pids+=($!) names+=("$t")
done
while ((${#pids[@]})); do wait_one; done

if ((${#failed[@]})); then
  echo "== fuzz: FAILED: ${failed[*]} (add each input to tests/fuzz/regressions/TARGET/ with its fix)"
  exit 1
fi
echo "== fuzz: no findings"
