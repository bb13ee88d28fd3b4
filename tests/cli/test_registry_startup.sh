#!/usr/bin/env bash
# CLI test: a fresh mkregistryd takes announcements (and answers catalog
# requests) while its start-up discovery still runs. The registry is given a
# start-up discovery wait of 60 s; a markd started beside it must be ready,
# and its block in the registry's answer to STORE._catalog, as soon as markd
# says ready (before the fix, the announcement waited behind the discovery and
# markd gave up on the registry after 10 s). SIGTERM then ends the registry
# at once, its discovery wait cut short.
# Private discovery ports, loopback only, private MKTL_HOME dirs; readiness is
# read from FIFOs with timeouts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export MKTL_BROADCAST=127.255.255.255
cli_init test_registry_startup
private_discovery_ports

for need in markd mk mkregistryd; do [[ -x $MKTL_BIN/$need ]] || die "$MKTL_BIN/$need is not built"; done

start registry '^mkregistryd: ready rep=[0-9]+ udp=[0-9]+$' "$MKTL_BIN/mkregistryd" --bind 127.0.0.1 \
  --hostname 127.0.0.1 --discovery-wait 60
registry_pid=$pid
registry=tcp://127.0.0.1:$(rep_port "$line")
pass "registry: $line"

cat >"$work/regstart.json" <<'EOF'
{"setpoint": {"type": "numeric", "format": "%.1f", "units": "degC", "initial": 20}}
EOF
mkdir -p "$work/daemon-home" "$work/client-home"
start markd '^markd: regstart regstart1 ready rep=[0-9]+ pub=[0-9]+$' env MKTL_HOME="$work/daemon-home" \
  "$MKTL_BIN/markd" --bind 127.0.0.1 --hostname 127.0.0.1 --broadcast 127.255.255.255 \
  -c "$work/regstart.json" regstart regstart1
pass "markd beside the fresh registry: $line"

# At once, and from the registry alone (--connect: no cache, no discovery).
export MKTL_HOME=$work/client-home
run list "$MKTL_BIN/mk" -w 10 --connect "$registry" list regstart
expect_rc "the registry answers regstart._catalog as soon as markd is ready" 0
expect_in "with the block markd announced" "$out" "regstart.setpoint"
run get "$MKTL_BIN/mk" -w 10 --connect "$registry" get regstart.setpoint
expect_out "the block leads to the daemon" "setpoint: 20.0 degC"

stop "$registry_pid"
expect_rc "SIGTERM during the start-up discovery stops the registry" 0

finish "registry start-up"
