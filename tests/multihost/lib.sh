# The multi-host harness (tests/multihost/test_*.sh): three "hosts" a, b, c,
# each a network namespace with its own loopback, a veth link named mh0 and
# an address in 10.251.0.0/24 (a = .1, b = .2, c = .3), joined by a bridge in
# a fourth namespace. That subnet exists only inside the namespaces: nothing
# is added to the root namespace's interfaces, routes or firewall, and the
# only broadcast address used is the subnet's own, 10.251.0.255.
#
#   set -euo pipefail
#   source "$(dirname "$0")/lib.sh"
#   mh_init NAME         # skips (77) where namespaces cannot be made
#   on a CMD...          # CMD on host a, with a's MKTL_HOME (and D-Bus)
#
# Each host has its own MKTL_HOME ($work/HOST/home) and, on request
# (mh_avahi HOST), its own dbus-daemon and avahi-daemon confined to mh0.
# Namespaces are named mktlmh-PID-ROLE after the test's shell; the exit trap
# removes them (and everything running in them), and mh_init first removes
# those left by a run that was killed (its PID gone).
#
# Not a test itself: the ctest glob only takes test_*.sh.

source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"

MH_PREFIX=mktlmh-
MH_NET=10.251.0
MH_BROADCAST=$MH_NET.255
declare -A MH_NS MH_IP
MH_IP=([a]=$MH_NET.1 [b]=$MH_NET.2 [c]=$MH_NET.3)
MH_BRIDGE_NS=""
mh_avahi_hosts=()

# Kills what runs in namespace $1, then deletes it.
mh_delete_ns() {
  local ns=$1 p
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
}

# Namespaces of earlier runs whose test shell is gone (killed by a timeout,
# say: its trap never ran).
mh_sweep() {
  local ns owner
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    [[ $ns == "$MH_PREFIX"* ]] || continue
    owner=${ns#"$MH_PREFIX"}
    owner=${owner%%-*}
    [[ $owner =~ ^[0-9]+$ && $owner != "$$" ]] || continue
    grep -qs multihost "/proc/$owner/cmdline" && continue   # a run in progress
    echo "sweeping $ns, left by a run that is gone"
    mh_delete_ns "$ns"
  done
}

# At exit, whatever the outcome: SIGTERM to what the test started, a moment
# for it to end, then everything left in the namespaces is killed and the
# namespaces deleted (which removes their links); only then the scratch dir.
mh_cleanup() {
  set +e
  trap '' INT TERM   # a second interrupt must not cut the clean-up short
  local p ns left
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 20); do
    left=""
    for ns in "${MH_NS[@]}"; do left+=$(ip netns pids "$ns" 2>/dev/null); done
    [[ -z $left ]] && break
    sleep 0.1
  done
  for ns in "${MH_NS[@]}" "$MH_BRIDGE_NS"; do [[ -n $ns ]] && mh_delete_ns "$ns"; done
  cli_cleanup
}

# mh_init NAME: scratch dir, namespaces, links, addresses; skips the test
# (exit 77) with one clear message where namespaces cannot be created.
mh_init() {
  local name=$1
  if [[ $(id -u) != 0 ]]; then skip "not root: the multi-host tests need network namespaces (CAP_SYS_ADMIN)"; fi
  command -v ip >/dev/null || skip "no ip(8) (iproute2): cannot build network namespaces"
  cli_init "$name"
  trap mh_cleanup EXIT
  trap 'exit 130' INT TERM
  mh_sweep
  MH_BRIDGE_NS=${MH_PREFIX}$$-br
  local why
  if ! why=$(ip netns add "$MH_BRIDGE_NS" 2>&1); then
    MH_BRIDGE_NS=""
    skip "cannot create network namespaces here: $why"
  fi
  ip -n "$MH_BRIDGE_NS" link set lo up
  ip -n "$MH_BRIDGE_NS" link add br0 type bridge forward_delay 0 stp_state 0
  ip -n "$MH_BRIDGE_NS" link set br0 up
  local h
  for h in a b c; do
    MH_NS[$h]=${MH_PREFIX}$$-$h
    ip netns add "${MH_NS[$h]}"
    ip -n "$MH_BRIDGE_NS" link add "port-$h" type veth peer name mh0 netns "${MH_NS[$h]}"
    ip -n "$MH_BRIDGE_NS" link set "port-$h" master br0 up
    ip -n "${MH_NS[$h]}" link set lo up
    ip -n "${MH_NS[$h]}" addr add "${MH_IP[$h]}/24" broadcast "$MH_BROADCAST" dev mh0
    ip -n "${MH_NS[$h]}" link set mh0 up
    mkdir -p "$work/$h/home/client"
    # Discovery on the shared segment by default; tests change it per host.
    printf '{"broadcast": "%s"}\n' "$MH_BROADCAST" >"$work/$h/home/discovery.json"
  done
  # $ON HOST CMD...: see on() below; a script, so that timeout, start and run
  # can take it as a command, and so that $! is CMD's own process.
  ON=$work/on
  cat >"$ON" <<EOF
#!/bin/bash
# on HOST CMD...: CMD in HOST's namespace, with its MKTL_HOME and D-Bus.
case \$1 in a) ns=${MH_NS[a]} ;; b) ns=${MH_NS[b]} ;; c) ns=${MH_NS[c]} ;; *) echo "on: no host \$1" >&2; exit 2 ;; esac
h=\$1; shift
exec ip netns exec "\$ns" env MKTL_HOME="$work/\$h/home" DBUS_SYSTEM_BUS_ADDRESS="unix:path=$work/\$h/dbus/socket" "\$@"
EOF
  chmod +x "$ON"
  # The ctest environment's loopback broadcast is not for these hosts.
  unset MKTL_BROADCAST MKTL_DAEMON_PORT MKTL_REGISTRY_PORT MKTL_DNS_SD_TIMEOUT
  # The clients' ACK timeout: 0.1 s by default, which a loaded machine (or
  # a sanitizer build) misses now and then; the checks here are about
  # seconds, not about that.
  export MKTL_ACK_TIMEOUT=${MKTL_ACK_TIMEOUT:-0.5}
  pass "hosts a, b, c on $MH_NET.0/24 (namespaces ${MH_PREFIX}$$-*)"
}

# on HOST CMD...: runs CMD in HOST's namespace with its MKTL_HOME and its own
# system D-Bus address (a socket that exists only once mh_avahi HOST ran, so
# that nothing reaches the root namespace's avahi-daemon).
on() { "$ON" "$@"; }

# mh_avahi HOST: a dbus-daemon (system bus on $work/HOST/dbus/socket) and an
# avahi-daemon confined to HOST's mh0, with its own runtime directory (bound
# over /run/avahi-daemon in a mount namespace of its own) and host name.
mh_avahi() {
  local h=$1 dir=$work/$1
  command -v dbus-daemon >/dev/null && command -v avahi-daemon >/dev/null ||
    skip "dbus-daemon or avahi-daemon missing (apt-get install dbus avahi-daemon)"
  mkdir -p "$dir/dbus" "$dir/avahi-run"
  cat >"$dir/dbus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/dbus/socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
EOF
  cat >"$dir/avahi.conf" <<EOF
[server]
host-name=mktlmh-$h
use-ipv4=yes
use-ipv6=no
allow-interfaces=mh0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
enable-reflector=no
EOF
  start "$h-dbus" '^unix:' "$ON" "$h" dbus-daemon --config-file="$dir/dbus.conf" --nofork --print-address
  start_drained "$h-avahi" '.' "$ON" "$h" sh -c \
    'mount --bind "$1" /run/avahi-daemon && echo mounted && exec avahi-daemon --no-drop-root --no-chroot -f "$2"' \
    sh "$dir/avahi-run" "$dir/avahi.conf"
  mh_avahi_hosts+=("$h")
  local stderr=$work/$h-avahi.stderr
  if ! wait_for 10 grep -q "Server startup complete" "$stderr"; then
    die "avahi-daemon on $h did not start: $(tail -5 "$stderr")"
  fi
  pass "dbus-daemon and avahi-daemon on $h (mh0 only, host name mktlmh-$h)"
}

# mh_link HOST up|down: HOST's link to the bridge.
mh_link() {
  ip -n "${MH_NS[$1]}" link set mh0 "$2"
}

# now: wall-clock seconds with milliseconds (the C++ client prints the same).
now() { date +%s.%3N; }

# ---- the heater on a host ----------------------------------------------------------
# mh_heater HOST NAME [markd options...]: heatersim and markd serving the heater
# example (store heater, alias heater1) on HOST, advertised by its address.
# Sets pid (markd's), sim_pid, line.
mh_heater() {
  local h=$1 name=$2; shift 2
  start_drained "$name-sim" '^PORT [0-9]+$' "$ON" "$h" "$BIN/heatersim" --port 0 --seed 7
  sim_pid=$pid
  printf '{"host": "127.0.0.1", "port": %d}\n' "${line#PORT }" >"$work/$name-app.json"
  start_drained "$name" '^markd: heater heater1 ready' "$ON" "$h" "$BIN/markd" --hostname "${MH_IP[$h]}" \
    -c "$SRC/configs/heater.json" -m "$LIB/libheater_daemon.so" -s HeaterDaemon -a "$work/$name-app.json" \
    "$@" heater heater1
}

# mh_registry HOST NAME [options...]: mkregistryd on HOST. Sets pid, line, and
# registry_rep (its request port).
mh_registry() {
  local h=$1 name=$2; shift 2
  start_drained "$name" '^mkregistryd: ready rep=([0-9]+) udp=[0-9]+$' "$ON" "$h" "$BIN/mkregistryd" \
    --hostname "${MH_IP[$h]}" "$@"
  registry_rep=${BASH_REMATCH[1]}
}

# mk_on HOST NAME ARGS...: mk on HOST (bounded), leaving $rc, $out, $err.
mk_on() {
  local h=$1 name=$2; shift 2
  run "$name" "$ON" "$h" "$BIN/mk" "$@"
}

# client_home HOST MODE [REGISTRY]: how HOST's clients find stores.
#   broadcast  UDP broadcast on the segment, no registry file
#   registry   broadcast off, REGISTRY listed in client/registries
#   none       broadcast off, no registry file (DNS-SD only)
# The catalog cache is emptied, so that the next lookup uses the network.
client_home() {
  local h=$1 mode=$2 home=$work/$1/home
  rm -rf "$home/client/cache" "$home/client/registries"
  case $mode in
    broadcast) printf '{"broadcast": "%s"}\n' "$MH_BROADCAST" >"$home/discovery.json" ;;
    registry)
      printf '{"broadcast": ""}\n' >"$home/discovery.json"
      echo "$3" >"$home/client/registries"
      ;;
    none) printf '{"broadcast": ""}\n' >"$home/discovery.json" ;;
    *) die "client_home: unknown mode $mode" ;;
  esac
}
