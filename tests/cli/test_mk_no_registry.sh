#!/usr/bin/env bash
# CLI test of finding a store with no registry running:
#  - markd writes its block into the client catalog cache of its MKTL_HOME
#    (client/cache/STORE/UUID.json, the reference's layout and content), and mk
#    on the same host (same MKTL_HOME) finds the store there with discovery
#    pointed at ports nobody answers on;
#  - mk with an empty MKTL_HOME finds the store by asking the daemons that
#    answer UDP discovery (GET _hash, then STORE._catalog), reaching each at
#    the address that answered, whatever host name its block gives;
#  - a second daemon of the same store (another alias, another markd): both
#    blocks are learned, also by a client whose cache holds only the first;
#  - a store nobody serves still fails with "no daemon or registry knows";
#  - with MKTL_REFERENCE set, the Python reference client reads markd's cache
#    file (no registry, no broadcast: only the file can tell it where to go).
# Private discovery ports (parallel tests never see each other), loopback only,
# private MKTL_HOME dirs; readiness is read from FIFOs with timeouts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export MKTL_BROADCAST=127.255.255.255
cli_init test_mk_no_registry
private_discovery_ports

for need in markd mk; do [[ -x $MKTL_BIN/$need ]] || die "$MKTL_BIN/$need is not built"; done
python=/usr/bin/python3
[[ -x $python ]] || python=python3

daemon_home=$work/daemon-home
mkdir -p "$daemon_home"
# mk with its own, empty MKTL_HOME (a new one for each NAME).
mk_in() {  # NAME HOME-NAME MK-ARGS...: run NAME with MKTL_HOME=$work/HOME-NAME
  local name=$1 home=$work/$2; shift 2
  mkdir -p "$home"
  run "$name" env MKTL_HOME="$home" "$MKTL_BIN/mk" -w 10 "$@"
}

cat >"$work/lone1.json" <<'EOF'
{"setpoint": {"type": "numeric", "format": "%.1f", "units": "degC", "initial": 20}}
EOF
start markd1 '^markd: lone lone1 ready rep=[0-9]+ pub=[0-9]+$' env MKTL_HOME="$daemon_home" "$MKTL_BIN/markd" \
  --bind 127.0.0.1 --hostname 127.0.0.1 --broadcast 127.255.255.255 -c "$work/lone1.json" lone lone1
markd1_line=$line
pass "markd lone lone1 without a registry: $line"

# ---- 1. the cache file markd writes -------------------------------------------
uuid=$(cat "$daemon_home/daemon/store/lone/lone1.uuid")
cache_file=$daemon_home/client/cache/lone/$uuid.json
if [[ -f $cache_file ]]; then pass "markd wrote client/cache/lone/UUID.json"; else
  fail "no $cache_file: $(find "$daemon_home/client" 2>/dev/null)"; fi
expect_eq "the cache file is rw-rw-r-- (as the reference makes it)" "$(stat -c %a "$cache_file" 2>/dev/null)" 664
expect_eq "nothing else in the store's cache directory" "$(ls -A "$daemon_home/client/cache/lone" 2>/dev/null)" \
  "$uuid.json"
cat >"$work/shape.py" <<'PY'
import json, sys
path, uuid, rep, pub = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
block = json.load(open(path))
problems = []
if sorted(block) != ['alias', 'hash', 'items', 'provenance', 'store', 'time', 'uuid']:
    problems.append('fields %s' % sorted(block))
if (block.get('store'), block.get('alias'), block.get('uuid')) != ('lone', 'lone1', uuid):
    problems.append('store/alias/uuid %r' % [block.get('store'), block.get('alias'), block.get('uuid')])
if not isinstance(block.get('hash'), int) or not 0 <= block['hash'] < 2**128:
    problems.append('hash %r' % block.get('hash'))
if not isinstance(block.get('time'), float):
    problems.append('time %r' % block.get('time'))
if block.get('provenance') != [{'stratum': 0, 'hostname': '127.0.0.1', 'rep': rep, 'pub': pub}]:
    problems.append('provenance %r' % block.get('provenance'))
items = block.get('items', {})
if items.get('setpoint', {}).get('units') != 'degC' or '_lone1cat' not in items:
    problems.append('items %s' % sorted(items))
print('; '.join(problems) if problems else 'ok')
PY
shape=$("$python" "$work/shape.py" "$cache_file" "$uuid" "$(rep_port "$markd1_line")" \
  "$(sed -n 's/.* pub=\([0-9]*\).*/\1/p' <<<"$markd1_line")" 2>&1 || true)
expect_eq "the cache file holds the block as STORE._catalog serves it" "$shape" ok

# Our client on the same host: discovery on ports nobody answers on, so only
# the cache can say where the daemon is.
run cached env MKTL_HOME="$daemon_home" MKTL_REGISTRY_PORT=$((MKTL_DAEMON_PORT + 2)) \
  MKTL_DAEMON_PORT=$((MKTL_DAEMON_PORT + 3)) "$MKTL_BIN/mk" -w 10 get lone.setpoint
expect_out "mk in markd's MKTL_HOME finds the store in the cache markd wrote" "setpoint: 20.0 degC"

# ---- 2. the reference client reads that file ------------------------------------
if [[ -z ${MKTL_REFERENCE:-} ]]; then
  echo "note: MKTL_REFERENCE is not set: the reference client's reading of the cache is not checked"
elif ! "$python" -c 'import zmq' 2>/dev/null; then
  fail "$python has no zmq module (apt-get install python3-zmq)"
else
  need_source
  # sitecustomize (tests/interop) keeps any broadcast of the reference local.
  run refclient env MKTL_HOME="$daemon_home" PYTHONPATH="$MKTL_REFERENCE/src:$SRC/tests/interop" \
    "$python" - <<'PY'
import mktl
from mktl import protocol
protocol.request.Client.timeout = 1.0  # a loaded test machine misses 100 ms now and then
print(mktl.get('lone.setpoint').get(refresh=True))
PY
  expect_out "the reference client finds the store from markd's cache file" 20
fi

# ---- 3. an empty client cache, no registry: the daemons are asked ------------------
mk_in get1 home1 get lone.setpoint
expect_out "get with an empty cache and no registry" "setpoint: 20.0 degC"
[[ -f $work/home1/client/cache/lone/$uuid.json ]] && pass "the block found is cached" || fail "home1 has no cache"
mk_in set1 home2 set lone.setpoint=42
expect_out "set with an empty cache and no registry" "Set lone.setpoint to 42.0 degC"
mk_in get2 home1 get lone.setpoint
expect_out "get through the cache" "setpoint: 42.0 degC"
mk_in nobody home3 get nosuch.key
expect_rc "a store nobody serves" 1
expect_eq "its error" "$err" "mk: nosuch.key: KeyError: \"no daemon or registry knows the store 'nosuch'\""

# ---- 4. a second daemon of the store -----------------------------------------------
# It advertises a host name that does not resolve: a client reaches it at the
# address that answered discovery.
cat >"$work/lone2.json" <<'EOF'
{"humidity": {"type": "numeric", "format": "%.0f", "units": "%", "initial": 40}}
EOF
start markd2 '^markd: lone lone2 ready rep=[0-9]+ pub=[0-9]+$' env MKTL_HOME="$daemon_home" "$MKTL_BIN/markd" \
  --bind 127.0.0.1 --hostname nowhere.invalid --broadcast 127.255.255.255 -c "$work/lone2.json" lone lone2
pass "markd lone lone2: $line"
mk_in both home4 get lone.setpoint lone.humidity
expect_rc "get keys of both daemons with an empty cache" 0
expect_in "the first daemon answered" "$out" "setpoint: 42.0 degC"
expect_in "the second daemon answered" "$out" "humidity: 40 %"
expect_eq "both blocks are cached" "$(ls "$work/home4/client/cache/lone" 2>/dev/null | wc -l)" 2
mk_in list home5 list lone
expect_in "list shows the first daemon's key" "$out" "lone.setpoint"
expect_in "list shows the second daemon's key" "$out" "lone.humidity"
# home1 has cached the first block only: the second one's key is still found.
mk_in get3 home1 get lone.humidity
expect_out "a key of a daemon the cache has never seen" "humidity: 40 %"

finish "mk without a registry"
