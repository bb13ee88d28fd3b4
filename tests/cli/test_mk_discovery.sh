#!/usr/bin/env bash
# CLI test of mk without --connect: markd announces its catalog to a registry
# (mkregistryd), mk finds the store by UDP discovery on 127.255.255.255, then
# from its catalog cache; after markd restarts on new ports, the stale cache
# is noticed and mk still answers. mk discover lists the registry's stores.
# Private discovery ports (parallel tests never see each other), loopback
# only, a private MKTL_HOME; readiness is read from FIFOs with timeouts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export MKTL_BROADCAST=127.255.255.255
cli_init test_mk_discovery
private_discovery_ports

for need in markd mk mkregistryd; do [[ -x $MKTL_BIN/$need ]] || die "$MKTL_BIN/$need is not built"; done

cat >"$work/test.json" <<'EOF'
{"setpoint": {"type": "numeric", "format": "%.1f", "units": "degC", "initial": 20}}
EOF

start registry '^mkregistryd: ready rep=[0-9]+ udp=[0-9]+$' "$MKTL_BIN/mkregistryd" --bind 127.0.0.1 \
  --hostname 127.0.0.1
registry_rep=$(rep_port "$line")
pass "registry: $line"

# markd keeps its own MKTL_HOME: it writes its block into the client cache
# there, which would spare mk the registry (and hide the stale cache below).
mkdir -p "$work/daemon-home"
markd=(env MKTL_HOME="$work/daemon-home" "$MKTL_BIN/markd")
markd_args=(--bind 127.0.0.1 --hostname 127.0.0.1 --broadcast 127.255.255.255 -c "$work/test.json" test test1)
start markd '^markd: test test1 ready rep=[0-9]+ pub=[0-9]+$' "${markd[@]}" "${markd_args[@]}"
pass "markd with discovery: $line"

run g1 "$MKTL_BIN/mk" -w 10 get test.setpoint
expect_out "get finds the store through the registry" "setpoint: 20.0 degC"
[[ -n $(ls "$MKTL_HOME/client/cache/test" 2>/dev/null) ]] && pass "the catalog is cached" || fail "no catalog cache"

run s1 "$MKTL_BIN/mk" -w 10 set test.setpoint=42
expect_out "set through the cached catalog" "Set test.setpoint to 42.0 degC"
run g2 "$MKTL_BIN/mk" -w 10 get test.setpoint
expect_out "get through the cached catalog" "setpoint: 42.0 degC"

run d1 "$MKTL_BIN/mk" -w 10 discover "tcp://127.0.0.1:$registry_rep"
expect_out "discover at the registry" "1 store discovered: test"
run d2 "$MKTL_BIN/mk" -w 10 discover
expect_out "discover by broadcast" "1 store discovered: test"

# Restart markd (new ephemeral ports): the cached address is stale.
stop "$pid"
[[ $rc == 0 ]] && pass "markd stops on SIGTERM" || fail "markd stop: exit $rc"
start markd2 '^markd: test test1 ready rep=[0-9]+ pub=[0-9]+$' "${markd[@]}" "${markd_args[@]}"
pass "markd restarted: $line"
run g3 "$MKTL_BIN/mk" -w 10 get test.setpoint
expect_out "get after the daemon moved" "setpoint: 20.0 degC"

# A second daemon of the same store (another alias, other keys): its key is
# found through the registry although the cache only holds the first block.
cat >"$work/test2.json" <<'EOF'
{"humidity": {"type": "numeric", "format": "%.0f", "units": "%", "initial": 40}}
EOF
start markd3 '^markd: test test2 ready rep=[0-9]+ pub=[0-9]+$' "${markd[@]}" --bind 127.0.0.1 \
  --hostname 127.0.0.1 --broadcast 127.255.255.255 -c "$work/test2.json" test test2
pass "a second daemon of store test: $line"
run g4 "$MKTL_BIN/mk" -w 10 get test.humidity
expect_out "get a key of the second daemon" "humidity: 40 %"
run g5 "$MKTL_BIN/mk" -w 10 get test.setpoint test.humidity
expect_rc "get keys of both daemons at once" 0
expect_in "the first daemon answered" "$out" "setpoint: 20.0 degC"
expect_in "the second daemon answered" "$out" "humidity: 40 %"
# A daemon redefining a live daemon's key is refused by the registry.
cat >"$work/clash.json" <<'EOF'
{"setpoint": {"type": "numeric"}}
EOF
run clash "${markd[@]}" --bind 127.0.0.1 --hostname 127.0.0.1 --broadcast 127.255.255.255 \
  -c "$work/clash.json" test test3
expect_rc "a daemon redefining a live daemon's key does not start" 1
expect_in "the rejection names the key" "$err" "setpoint"

finish "mk discovery"
