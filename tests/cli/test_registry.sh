#!/usr/bin/env bash
# CLI test of mkregistryd: usage (exit 2), --help, the ready line, UDP
# discovery of the registry, start-up discovery of a daemon, announcements
# (accept, reject while the owner answers, reject without override, override
# once the owner is gone), _hash / STORE._hash / STORE._catalog answers with an
# exact 128-bit hash, malformed requests, and a clean stop (exit 0).
#
# The requests are made with Python's zmq module speaking protocol 'a' frame by
# frame, which also cross-checks our bytes (ACK shape, REP payloads). A fake
# Python daemon plays the daemon side (UDP answer, _hash, STORE._catalog).
# Loopback only (127.255.255.255), free ports, a private MKTL_HOME; readiness
# is read from a FIFO or polled with a bound, never a sleep.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export MKTL_BROADCAST=127.255.255.255
cli_init test_registry
unset MKTL_DAEMON_PORT MKTL_REGISTRY_PORT

# The Debian python3 has python3-zmq; a pyenv python3 first in PATH may not.
python=/usr/bin/python3
[[ -x $python ]] || python=python3
if ! "$python" -c 'import zmq' 2>/dev/null; then
  echo "FAIL: $python has no zmq module (install python3-zmq)" >&2
  exit 1
fi

cat >"$work/mk.py" <<'PY'
"""Protocol 'a' and UDP discovery helpers for the registry test."""
import json, os, socket, sys, threading, time
import zmq

def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port

def request(endpoint, type_, target, payload):
    """Sends one request; prints the REP payload. Exit 3 without a proper ACK."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    rid = b'0000002a'
    body = b'' if payload == '' else payload.encode()
    sock.send_multipart([b'a', rid, type_.encode(), target.encode(), b'', body])
    got_ack = False
    deadline = time.time() + 15
    while time.time() < deadline:
        if not sock.poll(int((deadline - time.time()) * 1000) + 1):
            break
        frames = sock.recv_multipart()
        if frames[2] == b'ACK':
            if frames != [b'a', rid, b'ACK', b'', b'', b'']:
                print('bad ACK frames: %r' % frames, file=sys.stderr); sys.exit(3)
            got_ack = True
            continue
        if len(frames) != 6 or frames[0] != b'a' or frames[1] != rid or frames[2] != b'REP':
            print('bad REP frames: %r' % frames, file=sys.stderr); sys.exit(3)
        if not got_ack:
            print('REP before ACK', file=sys.stderr)
        sys.stdout.write(frames[5].decode())
        return
    print('no answer (ack=%s)' % got_ack, file=sys.stderr); sys.exit(3)

def aloha(host, port):
    """Prints the answers to one discovery call, one per line."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.sendto(b'Aloha mKTL', (host, port))
    s.settimeout(1.0)
    try:
        while True:
            data, _ = s.recvfrom(4096)
            print(data.decode())
    except socket.timeout:
        pass

def fake_daemon(udp_port, block_file):
    """A daemon stand-in: answers UDP discovery and GET _hash, STORE._hash,
    STORE._catalog for one block whose provenance is filled in here."""
    block = json.load(open(block_file))
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    rep = router.bind_to_random_port('tcp://127.0.0.1')
    block['provenance'] = [{'stratum': 0, 'hostname': '127.0.0.1', 'rep': rep, 'pub': rep}]
    store, uuid = block['store'], block['uuid']

    def udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('', udp_port))
        while True:
            data, sender = s.recvfrom(4096)
            if data.strip() == b'Aloha mKTL':
                s.sendto(b'E komo mai:%d' % rep, sender)
    threading.Thread(target=udp, daemon=True).start()
    print('ready %d' % rep, flush=True)
    while True:
        ident, version, rid, type_, target, flags, payload = router.recv_multipart()
        router.send_multipart([ident, b'a', rid, b'ACK', b'', b'', b''])
        target = target.decode()
        if target in ('_hash', store + '._hash'):
            value = {store: {uuid: block['hash']}}
        elif target == store + '._catalog':
            value = {uuid: block}
        else:
            value = None
        router.send_multipart([ident, b'a', rid, b'REP', target.encode(), b'',
                               json.dumps({'value': value}).encode()])

if __name__ == '__main__':
    what = sys.argv[1]
    if what == 'free-udp': print(free_port(socket.SOCK_DGRAM))
    elif what == 'request': request(*sys.argv[2:6])
    elif what == 'aloha': aloha(sys.argv[2], int(sys.argv[3]))
    elif what == 'fake-daemon': fake_daemon(int(sys.argv[2]), sys.argv[3])
PY

mk() { timeout 30 "$python" "$work/mk.py" "$@"; }

# block STORE ALIAS UUID PORT KEYS... : a catalog block announced from 127.0.0.1:PORT.
block() {
  local store=$1 alias=$2 uuid=$3 port=$4; shift 4
  local items="" key
  for key in "$@"; do items+="${items:+,}\"$key\":{\"type\":\"numeric\"}"; done
  printf '{"store":"%s","alias":"%s","uuid":"%s","time":%s,"hash":%s,"provenance":[{"stratum":0,"hostname":"127.0.0.1","rep":%s,"pub":%s}],"items":{%s}}' \
    "$store" "$alias" "$uuid" "$(date +%s)" "$RANDOM$RANDOM" "$port" "$port" "$items"
}

# req TYPE TARGET PAYLOAD: one request to the registry; sets $reply and $rc.
req() {
  rc=0
  reply=$(mk request "tcp://127.0.0.1:$rep" "$@" 2>"$work/req.stderr") || rc=$?
  [[ $rc == 0 ]] || fail "$2: request failed ($rc): $(cat "$work/req.stderr")"
}
# check NAME JQ-FILTER: the filter must be true of $reply.
check() {
  if jq -e "$2" >/dev/null 2>&1 <<<"$reply"; then pass "$1"; else fail "$1: '$2' is not true of: $reply"; fi
}

# ---- usage --------------------------------------------------------------------
run help "$MKTL_BIN/mkregistryd" --help
if [[ $rc == 0 && $out$err == *"Exit status"* ]]; then pass "--help"; else fail "--help: exit $rc: $out$err"; fi
run usage "$MKTL_BIN/mkregistryd" --no-such-option
[[ $rc == 2 ]] && pass "unknown option exits 2" || fail "unknown option: exit $rc"
run badport "$MKTL_BIN/mkregistryd" --port nope
[[ $rc == 2 ]] && pass "bad --port exits 2" || fail "bad --port: exit $rc"

# ---- a fake daemon, found at start-up -------------------------------------------
daemon_udp=$(mk free-udp)
registry_udp=$(mk free-udp)
hash1=170141183460469231731687303715884105757   # 2**127 + 29: needs all 128 bits
cat >"$work/one.json" <<EOF
{"store": "heater", "alias": "one", "uuid": "uuid-one", "time": 1700000000.5, "hash": $hash1,
 "items": {"temp": {"type": "numeric", "units": "degC"}}}
EOF
start --first fake '^ready ([0-9]+)$' "$python" "$work/mk.py" fake-daemon "$daemon_udp" "$work/one.json"
fake_pid=$pid
fake_rep=${BASH_REMATCH[1]}

# ---- the registry ---------------------------------------------------------------
start --first registry '^mkregistryd: ready rep=([0-9]+) udp=([0-9]+)$' "$MKTL_BIN/mkregistryd" -v \
  --hostname 127.0.0.1 --broadcast 127.255.255.255 --daemon-port "$daemon_udp" --registry-port "$registry_udp" \
  --discovery-wait 0.5
registry_pid=$pid
registry_fd=$fd
rep=${BASH_REMATCH[1]}
[[ ${BASH_REMATCH[2]} == "$registry_udp" ]] && pass "ready line" || fail "ready line names udp ${BASH_REMATCH[2]}"

answers=$(mk aloha 127.255.255.255 "$registry_udp" || true)
[[ $answers == *"E komo mai:$rep"* ]] && pass "UDP discovery finds the registry" || fail "UDP discovery: '$answers'"

# Start-up discovery runs in the background: poll (bounded) until it is done.
for _ in $(seq 100); do
  grep -q "start-up discovery" "$work/registry.stderr" && break
  read -r -t 0.1 -u "$registry_fd" _ || true
done
req GET heater._hash ''
check "start-up discovery learned the fake daemon's block" '.value.heater["uuid-one"] != null'
# The 128-bit hash must come back digit for digit (jq would round it).
[[ $reply == *"\"uuid-one\":$hash1"* ]] && pass "128-bit hash kept exact" || fail "hash not exact: $reply"
req GET _hash ''
[[ $reply == *"{\"heater\":{\"uuid-one\":$hash1}}"* ]] && pass "_hash" || fail "_hash: $reply"
req GET heater._catalog ''
check "block relayed with our provenance" \
  '.value["uuid-one"].provenance == [{"stratum":0,"hostname":"127.0.0.1","rep":'"$fake_rep"',"pub":'"$fake_rep"'},{"stratum":1,"hostname":"127.0.0.1","rep":'"$rep"'}]'
check "items relayed" '.value["uuid-one"].items.temp.units == "degC"'

# ---- announcements ---------------------------------------------------------------
dead=$(mk free-udp)   # nobody serves requests there
req SET _catalog "{\"value\": $(block heater two uuid-two "$dead" power)}"
check "a new block is accepted" '.value == true and (.error == null)'
req GET heater._hash ''
check "both blocks known" '.value.heater | has("uuid-one") and has("uuid-two")'

req SET _catalog "{\"value\": $(block heater three uuid-three "$dead" temp volts), \"override\": true}"
check "override cannot displace a daemon that answers" \
  '.error.type == "ValueError" and (.error.text | contains("heater.temp")) and (.error.text | contains("running"))'

req SET _catalog "{\"value\": $(block heater four uuid-four "$dead" power)}"
check "a conflict with a silent daemon needs override" \
  '.error.type == "ValueError" and (.error.text | contains("override"))'
# The reference sends the override flag inside the block.
four=$(block heater four uuid-four "$dead" power | jq -c '. + {"override": true}')
req SET _catalog "{\"value\": $four}"
check "override replaces a silent daemon (flag inside the block)" '.value == true'
req GET heater._catalog ''
check "the replaced block is forgotten, the new one kept" \
  '(.value | has("uuid-two") | not) and (.value | has("uuid-four")) and (.value["uuid-four"] | has("override") | not)'

req SET _catalog "{\"value\": $(block camera one uuid-cam "$dead" temp)}"
check "the same key in another store is no conflict" '.value == true'
req GET _hash ''
check "_hash lists every store" '.value | keys == ["camera", "heater"]'

# ---- malformed requests ----------------------------------------------------------
req SET _catalog '{"value": "junk"}'
check "a non-block is refused" '.error.type == "ValueError" and (.error.text | contains("invalid catalog block"))'
req SET _catalog '{"value": {"store": "x", "alias": "a", "uuid": "u", "hash": 1, "provenance": [], "items": {}}}'
check "a block without provenance is refused" '.error.type == "ValueError" and (.error.text | contains("/provenance"))'
req SET _catalog ''
check "an empty SET payload gets an error" '.error.type == "ValueError"'
req SET heater.temp '{"value": 1}'
check "SET of anything but _catalog is refused" '.error.type == "ValueError"'
req GET nosuch._catalog ''
check "an unknown store is a KeyError" '.error.type == "KeyError"'
req GET heater.temp ''
check "a plain key is refused" '.error.type == "ValueError"'

# ---- the owner stops: override now works -----------------------------------------
kill -TERM "$fake_pid"
wait "$fake_pid" 2>/dev/null || true
req SET _catalog "{\"value\": $(block heater three uuid-three "$dead" temp volts), \"override\": true}"
check "override replaces a daemon that stopped answering" '.value == true'
req GET heater._hash ''
check "uuid-one forgotten" '(.value.heater | has("uuid-one") | not) and (.value.heater | has("uuid-three"))'

# ---- clean stop ----------------------------------------------------------------------
stop "$registry_pid"
[[ $rc == 0 ]] && pass "SIGTERM: clean exit 0" || fail "SIGTERM: exit $rc; $(tail -5 "$work/registry.stderr")"

finish registry
