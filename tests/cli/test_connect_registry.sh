#!/usr/bin/env bash
# CLI test: `mk --connect REGISTRY` reaches a daemon on another host at the
# host its block names, not at the registry's. The "hosts" are loopback
# addresses: the registry listens on every address and is given as
# 127.0.0.3, the daemon listens on 127.0.0.2 only. Before the fix the client
# put the registry's host in every block it read there, and asked
# 127.0.0.3:DAEMON_PORT, where nothing listens. A daemon given with --connect
# is still reached at the address given (the host name it announces may not
# resolve here).
# Private discovery ports, loopback only, private MKTL_HOME dirs; readiness is
# read from FIFOs with timeouts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export MKTL_BROADCAST=127.255.255.255
cli_init test_connect_registry
private_discovery_ports

for need in markd mk mkregistryd; do [[ -x $MKTL_BIN/$need ]] || die "$MKTL_BIN/$need is not built"; done

start registry '^mkregistryd: ready rep=[0-9]+ udp=[0-9]+$' "$MKTL_BIN/mkregistryd" --hostname 127.0.0.3
registry=tcp://127.0.0.3:$(rep_port "$line")
pass "registry: $line"

cat >"$work/far.json" <<'EOF2'
{"setpoint": {"type": "numeric", "format": "%.1f", "units": "degC", "initial": 21}}
EOF2
mkdir -p "$work/daemon-home" "$work/client-home"
start markd '^markd: far far1 ready rep=[0-9]+ pub=[0-9]+$' env MKTL_HOME="$work/daemon-home" \
  "$MKTL_BIN/markd" --bind 127.0.0.2 --hostname 127.0.0.2 --broadcast 127.255.255.255 -c "$work/far.json" far far1
daemon_rep=$(rep_port "$line")
pass "markd on 127.0.0.2: $line"

export MKTL_HOME=$work/client-home
run get "$MKTL_BIN/mk" -w 10 --connect "$registry" get far.setpoint
expect_out "through the registry at 127.0.0.3, the daemon at 127.0.0.2" "setpoint: 21.0 degC"
expect_in "the cached block names the daemon's host" "$(cat "$work"/client-home/client/cache/far/*.json)" \
  '"hostname":"127.0.0.2"'
run direct "$MKTL_BIN/mk" -w 10 --connect "tcp://127.0.0.2:$daemon_rep" get far.setpoint
expect_out "the daemon given with --connect" "setpoint: 21.0 degC"
finish "mk --connect REGISTRY"
