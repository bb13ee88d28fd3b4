#!/usr/bin/env bash
# CLI test of the log under a flood of bad frames (issue 14, "Found from
# outside"): a fuzz run made markd write 16,000 warning lines (2 MB). Each
# warning site a peer can hit is now rate-limited (5 lines per 10 s), and the
# lines left out are counted: the next line let through, or the daemon's stop,
# says "(N similar messages suppressed in the last T s)". 3000 unreadable
# frames give at most a few lines, and the lines shown plus the counts
# reported add up to 3000. Real markd; frames from Debian's python3-zmq;
# bounded waits only.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_markd_log_flood

python=/usr/bin/python3
[[ -x $python ]] || python=python3
if ! "$python" -c 'import zmq' 2>/dev/null; then
  echo "FAIL: $python has no zmq module (install python3-zmq)" >&2
  exit 1
fi
echo '{"note": {"type": "string", "initial": "hi"}}' >"$work/items.json"

start markd '^markd: lf lf1 ready rep=([0-9]+) pub=[0-9]+$' "$MKTL_BIN/markd" --no-discovery --bind 127.0.0.1 \
  --hostname 127.0.0.1 -c "$work/items.json" lf lf1
port=${BASH_REMATCH[1]}

run flood "$python" - "$port" <<'PY'
import sys, zmq
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect('tcp://127.0.0.1:%s' % sys.argv[1])
for i in range(3000):
    s.send(b'junk %d' % i)  # one frame: no id to answer to
# Requests are taken in order: the answer to this GET means every junk frame was read.
s.send_multipart([b'a', b'done', b'GET', b'lf.note', b'', b''])
if not s.poll(30000):
    sys.exit('no answer')
while True:
    f = s.recv_multipart()
    if f[2] == b'REP':
        print(f[5].decode())
        break
    if not s.poll(30000):
        sys.exit('no REP')
PY
expect_in "the daemon answers after 3000 bad frames" "$out" '"value":"hi"'
stop "$pid"
expect_rc "markd stops cleanly" 0

log=$(cat "$work/markd.stderr")
# The lines let through (the report at the stop quotes the message: not one of them).
shown=$(grep 'dropped a malformed request without a readable id' <<<"$log" |
  grep -vc 'similar messages suppressed in the last [0-9]* s ("' || true)
suppressed=$(grep -o '[0-9,]* similar messages suppressed' <<<"$log" | tr -d , | awk '{s += $1} END {print s + 0}')
echo "warning lines: $shown, reported as suppressed: $suppressed, log lines in all: $(wc -l <<<"$log")"
if ((shown >= 1 && shown <= 15)); then pass "a few warning lines, not 3000 ($shown)"; else
  fail "$shown warning lines for 3000 bad frames"; fi
expect_eq "the lines shown and the suppressed counts add up to 3000" "$((shown + suppressed))" 3000
expect_match "the suppressed count is told in the log" "$log" 'similar messages suppressed in the last [0-9]+ s'

finish test_markd_log_flood
