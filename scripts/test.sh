#!/bin/bash
# The test command: installs what is missing, builds with warnings as errors,
# runs the whole suite, then builds and runs it again under AddressSanitizer
# and UBSan, then fuzzes every tests/fuzz/ target for a bounded time
# (scripts/fuzz.sh; MKTL_FUZZ_SECONDS per target, default 15).
# Usage: scripts/test.sh [--quick]   (--quick skips the sanitizer pass and the fuzz stage)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

jobs=$(nproc)
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DMKTL_WERROR=ON -DMKTL_BUILD_BENCH=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  local rc=0
  (cd "$dir" && ctest -j2 --output-on-failure --timeout 300) | tee "$dir/ctest.log" || rc=$?
  # Skipped tests did not run (no MKTL_REFERENCE, not root, ...): say which, so
  # that nobody reads them as passes. ctest lists them as "  N - NAME (Skipped)".
  local skipped
  skipped=$(sed -n 's/^[[:space:]]*[0-9]* - \(.*\) (Skipped)$/\1/p' "$dir/ctest.log")
  if [[ -n $skipped ]]; then
    echo "== skipped in $dir, $(wc -l <<<"$skipped") test(s) that did not run:"
    sed 's/^/   /' <<<"$skipped"
  else
    echo "== skipped in $dir: none"
  fi
  return "$rc"
}

echo "== build and test (RelWithDebInfo, -Werror)"
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo

if [[ "${1:-}" != "--quick" ]]; then
  echo "== build and test under AddressSanitizer + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DMKTL_SANITIZE=ON
  # A bounded fuzz run of every tests/fuzz/ target (clang-14 + libFuzzer, which
  # deps.sh installs): MKTL_FUZZ_SECONDS per target (default 15), two at a time.
  if command -v clang++-14 >/dev/null && dpkg-query -W -f='${Status}' libfuzzer-14-dev 2>/dev/null | grep -q "ok installed"; then
    bash scripts/fuzz.sh --seconds "${MKTL_FUZZ_SECONDS:-15}"
  else
    echo "== fuzz stage skipped: clang-14 or libfuzzer-14-dev is missing"
  fi
fi
echo "== all tests passed"
