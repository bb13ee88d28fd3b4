#!/usr/bin/env bash
# Builds mktl in Release (build-release/) and runs every benchmark against a
# raw ZeroMQ baseline measured in the same run; prints medians, min-max and
# PASS/MISS per target, and writes the results into docs/performance.md
# (between the bench:begin/bench:end markers; the analysis around them stays).
#
#   scripts/bench.sh [mktl_bench options]      e.g. --reps 7, --only rt,bcast
#
# Environment: BUILD_DIR (default build-release), JOBS (default 2),
# NO_DOC=1 to leave docs/performance.md alone, MKTL_REFERENCE=/path/to/mKTL
# to run the same workloads against the Python reference too.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-release}
jobs=${JOBS:-2}
doc=$root/docs/performance.md

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMKTL_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j"$jobs" --target mktl_bench mktl_bench_raw_server mktl_bench_daemon
# mk and markd are measured too when they build; the rest runs without them.
for tool in mk markd; do
  cmake --build "$build" -j"$jobs" --target "$tool" >/dev/null 2>&1 || echo "bench.sh: $tool did not build; its benchmark is skipped" >&2
done

table=$(mktemp)
trap 'rm -f "$table"' EXIT
status=0
"$build/bin/mktl_bench" --markdown "$table" "$@" || status=$?

if [[ -z ${NO_DOC:-} && -s $table ]]; then
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  section=$(mktemp)
  {
    echo "<!-- bench:begin (written by scripts/bench.sh; edits here are overwritten) -->"
    echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC') on \`$(uname -srm)\`, $(nproc) CPUs ($cpu),"
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end of the run."
    echo
    cat "$table"
    echo "<!-- bench:end -->"
  } >"$section"
  if [[ -f $doc ]] && grep -q '<!-- bench:begin' "$doc" && grep -q '<!-- bench:end -->' "$doc"; then
    awk -v section="$section" '
      /<!-- bench:begin/ { while ((getline line < section) > 0) print line; skip = 1; next }
      /<!-- bench:end -->/ { skip = 0; next }
      !skip { print }' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
  else
    { echo "# Performance"; echo; cat "$section"; } >"$doc"
  fi
  rm -f "$section"
  echo "bench.sh: results written to ${doc#$root/}"
fi
exit $status
