#!/bin/bash
# Installs the Debian 12 packages mktl needs to build and test, if any is missing.
# Safe to run again: it does nothing when everything is there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  help2man  # the man pages, made from each program's --help at build time
  cppzmq-dev libzmq3-dev nlohmann-json3-dev libsqlite3-dev libavahi-client-dev libspdlog-dev libtomlplusplus-dev catch2
  libcsv-dev  # mk reads CSV files of transactions for record items
  libboost-dev  # mkweb: HTTP and WebSocket with Boost.Beast (header-only, with Asio)
  curl  # tests/cli/test_mkweb.sh talks HTTP to mkweb
  # Test-only: a real avahi-daemon and dbus for the DNS-SD tests, python3-zmq for
  # CLI tests that speak protocol 'a' by hand, iproute2 for network namespaces;
  # python3-numpy for the Python reference in the interop tests (which then need
  # only its checkout, MKTL_REFERENCE).
  avahi-daemon dbus python3 python3-zmq python3-numpy iproute2 procps
  man-db  # test_install.sh renders the installed man pages with man -l
  clang-14 libfuzzer-14-dev  # scripts/fuzz.sh: the libFuzzer targets of tests/fuzz/
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "mktl: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# tests/web, the browser test of mkweb: Debian's chromium, node (18 or later)
# with npm, and puppeteer-core from npm as tests/web/package-lock.json pins
# it. A node that is already there (one that bundles its own npm, say) is kept.
web=()
dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed" || web+=(chromium)
command -v node >/dev/null || web+=(nodejs)
command -v npm >/dev/null || web+=(npm)
if ((${#web[@]})); then
  echo "mktl: installing ${web[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${web[@]}" >/dev/null
fi
web_dir=$(cd "$(dirname "$0")/../tests/web" && pwd)
if [[ $web_dir/package-lock.json -nt $web_dir/node_modules/.package-lock.json ]]; then
  echo "mktl: npm ci in tests/web (puppeteer-core)" >&2
  (cd "$web_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
