#!/usr/bin/env bash
# Browser test of mkweb (ctest web.browser): the heater and camera examples
# (simulators + markd on loopback), mkweb on an ephemeral port with --allow-set
# and a token, then Debian's chromium, headless, driven by puppeteer-core
# (browser.test.mjs) through the page: the store list, live values, SETs
# through the forms (checked with mk get), the daemon's error beside the
# field, the camera frame on a canvas. Screenshots go to $SCREENSHOT_DIR
# (default: the build's web/ directory; SCREENSHOT_DIR=docs refreshes
# docs/mkweb.png).
#
# Exit 77 (ctest "Skipped") with one line when node or chromium cannot run
# here, or when mkweb is not built; any other problem is a failure.
#
# Env (set by ctest): MKTL_BIN (the build's bin dir), MKTL_SOURCE (the source
# tree), MKTL_BROADCAST (127.255.255.255: nothing leaves this machine).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../cli/lib.sh"
cli_init web_browser
need_source

# ---- can the browser side run here? ---------------------------------------------
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || skip "node cannot run here (apt-get install nodejs)"
((node_major >= 18)) || skip "node $(node --version) is too old for puppeteer-core (18 or later)"
CHROMIUM=$(command -v chromium || true)
[[ -n $CHROMIUM ]] || skip "chromium is not installed (apt-get install chromium)"
sandbox=()
(($(id -u) == 0)) && sandbox=(--no-sandbox)  # chromium refuses to run as root with its sandbox
if ! probe=$(timeout 30 "$CHROMIUM" --headless "${sandbox[@]}" --disable-gpu --user-data-dir="$work/probe" \
  --dump-dom 'data:text/html,<p>mktl</p>' 2>"$work/chromium-probe.stderr") || [[ $probe != *mktl* ]]; then
  skip "chromium cannot run here: $(grep -v -e dbus -e '^$' "$work/chromium-probe.stderr" | tail -n1)"
fi
[[ -d $here/node_modules/puppeteer-core ]] ||
  die "tests/web/node_modules has no puppeteer-core: run scripts/deps.sh (npm ci in tests/web)"
skip_rest_unless_built "mkweb" "$BIN/mkweb"
for f in "$BIN/markd" "$BIN/mk" "$BIN/heatersim" "$BIN/camerasim" "$LIB/libheater_daemon.so" "$LIB/libcamera_daemon.so"; do
  [[ -e $f ]] || die "$f is not built"
done

# ---- the examples and mkweb -------------------------------------------------------
private_discovery_ports
start_drained heatersim '^PORT [0-9]+$' "$BIN/heatersim" --port 0 --seed 7 --time-constant 2
start_example markd-heater heater HeaterDaemon "${line#PORT }"
heater_mk=("${MK[@]}")
# Stars on a sky: a frame whose pixels differ, for the canvas check.
start_drained camerasim '^PORT [0-9]+$' "$BIN/camerasim" --port 0 --width 160 --height 120 --seed 5 --stars 25
start_example markd-camera camera CameraDaemon "${line#PORT }"
camera_mk=("${MK[@]}")

token=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
(umask 077 && printf '%s\n' "$token" >"$work/token")
start_drained mkweb '^mkweb: listening on (http://127\.0\.0\.1:[0-9]+/)$' "$BIN/mkweb" --listen 127.0.0.1:0 \
  --connect "${heater_mk[2]}" --connect "${camera_mk[2]}" --allow-set --token-file "$work/token"
MKWEB_PID=$pid
url=${line#mkweb: listening on }
pass "mkweb listens at $url"

# ---- the browser ---------------------------------------------------------------
shots=${SCREENSHOT_DIR:-$BIN/../web}
mkdir -p "$shots"
rc=0
MKWEB_URL=$url MKWEB_TOKEN=$token CHROMIUM=$CHROMIUM CHROME_PROFILE=$work/chrome SCREENSHOT_DIR=$(cd "$shots" && pwd) \
  MK=$(printf '%s\n' "${heater_mk[@]}" | node -e 'console.log(JSON.stringify(require("fs").readFileSync(0, "utf8").trim().split("\n")))') \
  timeout -k 5 50 node "$here/browser.test.mjs" || rc=$?
((rc == 0)) || fail "the browser checks (exit $rc); mkweb's stderr: $(head -n 40 "$work/mkweb.stderr")"

stop "$MKWEB_PID"
expect_eq "mkweb exits 0 on SIGTERM" "$rc" "0"
finish "web browser"
