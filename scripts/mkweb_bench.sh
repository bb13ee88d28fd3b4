#!/usr/bin/env bash
# Builds mkweb and mkweb_bench (Release, build-release/ like scripts/bench.sh)
# and runs the gateway benchmark: 100 WebSocket clients watching one item
# published at 1 kHz through mkweb, all on loopback (bench/mkweb_bench.cpp says
# what is measured). Writes the figures into docs/performance.md between the
# mkweb-bench:begin/end markers, if the file has them.
#
#   scripts/mkweb_bench.sh [mkweb_bench options]   e.g. --clients 100 --rate 1000 --seconds 10
#
# Environment: BUILD_DIR (default build-release), JOBS (default 2), NO_DOC=1 to
# leave docs/performance.md alone.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-release}
jobs=${JOBS:-2}
doc=$root/docs/performance.md

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMKTL_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j"$jobs" --target mkweb mkweb_bench

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export MKTL_HOME=$scratch/home  # mkweb finds nothing of this user's: it is given the daemon's address
unset MKTL_LOG
status=0
"$build/bin/mkweb_bench" --mkweb "$build/bin/mkweb" --markdown "$scratch/table.md" "$@" || status=$?

if [[ -z ${NO_DOC:-} && -s $scratch/table.md ]] && grep -q '<!-- mkweb-bench:begin' "$doc" 2>/dev/null; then
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  {
    echo "<!-- mkweb-bench:begin (written by scripts/mkweb_bench.sh; edits here are overwritten) -->"
    echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC') on \`$(uname -srm)\`, $(nproc) CPUs ($cpu),"
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end of the run; options: ${*:-(defaults)}."
    echo
    cat "$scratch/table.md"
    echo "<!-- mkweb-bench:end -->"
  } >"$scratch/section.md"
  awk -v section="$scratch/section.md" '
    /<!-- mkweb-bench:begin/ { while ((getline line < section) > 0) print line; skip = 1; next }
    /<!-- mkweb-bench:end -->/ { skip = 0; next }
    !skip { print }' "$doc" >"$scratch/doc.md" && cp "$scratch/doc.md" "$doc"
  echo "mkweb_bench.sh: results written to ${doc#"$root"/}"
fi
exit $status
