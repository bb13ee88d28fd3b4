#!/usr/bin/env bash
# CLI test of CurveZMQ and access rules (issue 14, docs/security.md): mk
# keygen; markd --security with a daemon key pair, two listed clients (alice
# may do everything, bob may only GET) and a third key it does not list
# (carol); what each mk gets, what a client without a key gets, the secret key
# file's mode check, and markd --check of bad sections (exit 78). Loopback, no
# discovery (mk finds the store in the catalog cache markd writes, which
# carries the daemon's public key), readiness read from a FIFO.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_security
private_discovery_ports
export MKTL_DNS_SD_TIMEOUT=0
keys=$MKTL_HOME/keys

# ---- mk keygen
run keygen "$MKTL_BIN/mk" keygen sec-daemon
expect_rc "mk keygen writes a key pair" 0
expect_in "it names the secret key file" "$out" "secret key file: $keys/sec-daemon.key"
expect_match "and prints the public key" "$out" 'public key: .{40}$'
daemon_pub=$(sed -n 's/^public key: //p' <<<"$out")
expect_eq "the secret key file is mode 0600" "$(stat -c %a "$keys/sec-daemon.key")" 600
expect_eq "the public key file holds the printed key" "$(grep -v '^#' "$keys/sec-daemon.pub")" "$daemon_pub"
run keygen_again "$MKTL_BIN/mk" keygen sec-daemon
expect_rc "mk keygen does not replace a key" 1
expect_in "and says so" "$err" "FileExistsError"
expect_eq "the key is unchanged" "$(grep -v '^#' "$keys/sec-daemon.pub")" "$daemon_pub"
run keygen_usage "$MKTL_BIN/mk" keygen
expect_rc "mk keygen needs a name" 2
for who in alice bob carol; do
  run "keygen_$who" "$MKTL_BIN/mk" keygen "$who"
  expect_rc "mk keygen $who" 0
done
run keygen_force "$MKTL_BIN/mk" keygen --force carol
expect_rc "mk keygen --force replaces a key" 0

# ---- the daemon
cat >"$work/items.json" <<'EOF2'
{"temp": {"type": "numeric", "initial": 20.5}, "setpoint": {"type": "numeric", "initial": 10}}
EOF2
cat >"$work/security.json" <<EOF2
{"security": {
  "curve": true,
  "server_key": "sec-daemon",
  "clients": {"alice": "alice", "bob": "$keys/bob.pub"},
  "acl": [{"items": "*", "get": ["alice", "bob"], "subscribe": ["alice"]},
          {"items": "set*", "set": ["alice"]}]
}}
EOF2

# markd --check: a bad section is a configuration error naming the field.
cat >"$work/bad-client.json" <<'EOF2'
{"curve": true, "server_key": "sec-daemon", "clients": {"alice": "alice"}, "acl": [{"items": "*", "set": ["mallory"]}]}
EOF2
run check_bad "$MKTL_BIN/markd" --check --security "$work/bad-client.json" -c "$work/items.json" sec sec1
expect_rc "markd --check refuses an unknown client in a rule" 78
expect_in "naming the field" "$err" "/security/acl/0/set: 'mallory' is not a client listed"
chmod 644 "$keys/sec-daemon.key"
run check_mode "$MKTL_BIN/markd" --check --security "$work/security.json" -c "$work/items.json" sec sec1
expect_rc "markd --check refuses a secret key others can read" 78
expect_in "naming the path and the fix" "$err" "chmod 600 $keys/sec-daemon.key"
chmod 600 "$keys/sec-daemon.key"
run check_ok "$MKTL_BIN/markd" --check --security "$work/security.json" -c "$work/items.json" sec sec1
expect_rc "markd --check accepts the section" 0

start markd '^markd: sec sec1 ready rep=([0-9]+) pub=([0-9]+)$' "$MKTL_BIN/markd" --no-discovery \
  --bind 127.0.0.1 --hostname 127.0.0.1 --security "$work/security.json" -c "$work/items.json" sec sec1
port=${BASH_REMATCH[1]}
expect_in "the cached catalog announces the daemon's key" "$(cat "$MKTL_HOME"/client/cache/sec/*.json)" "\"curve\":\"$daemon_pub\""

# ---- alice: everything
run alice_get "$MKTL_BIN/mk" --key alice get sec.temp
expect_out "alice gets" "temp: 20.5"
run alice_set "$MKTL_BIN/mk" --key alice set sec.setpoint=42
expect_rc "alice sets" 0
run alice_get2 env MKTL_KEY=alice "$MKTL_BIN/mk" get sec.setpoint
expect_out "alice (MKTL_KEY) reads it back" "setpoint: 42"

# ---- bob: GET only
run bob_get "$MKTL_BIN/mk" --key bob get sec.temp
expect_out "bob gets" "temp: 20.5"
run bob_set "$MKTL_BIN/mk" --key bob set sec.setpoint=7
expect_rc "bob may not set" 1
expect_in "he gets a PermissionError" "$err" \
  "sec.setpoint: PermissionError: client 'bob' may not SET sec.setpoint (no rule of this daemon's security acl allows it)"
run after_bob "$MKTL_BIN/mk" --key alice get sec.setpoint
expect_out "bob's SET was not applied" "setpoint: 42"

# ---- no key: refused before anything is sent
run nokey "$MKTL_BIN/mk" get sec.temp
expect_rc "a client without a key fails" 1
expect_in "saying the daemon requires CURVE" "$err" "PermissionError: the daemon at tcp://127.0.0.1:$port requires CURVE"
expect_in "and how to give a key" "$err" "mk --key NAME"

# ---- carol (not listed), and a wrong pinned key: no answer at all
run carol "$MKTL_BIN/mk" --key carol --server-key sec-daemon --connect "tcp://127.0.0.1:$port" get sec.temp
expect_rc "carol's key is refused" 1
expect_in "her request is never acknowledged" "$err" "TimeoutError"
run alice_pinned "$MKTL_BIN/mk" --key alice --server-key "$keys/sec-daemon.pub" --connect "tcp://127.0.0.1:$port" get sec.temp
expect_out "alice with the pinned key and --connect" "temp: 20.5"
run alice_wrong_pin "$MKTL_BIN/mk" --key alice --server-key carol --connect "tcp://127.0.0.1:$port" get sec.temp
expect_rc "a wrong pinned server key gets no answer" 1
expect_in "(the handshake fails)" "$err" "TimeoutError"
# A key pinned for the store: through the cache, whose block it overrules.
run alice_store_pin "$MKTL_BIN/mk" --key alice --server-key "sec=$keys/sec-daemon.pub" get sec.temp
expect_out "alice with the key pinned for sec" "temp: 20.5"
run alice_store_wrong "$MKTL_BIN/mk" --key alice --server-key "sec=carol" --server-key "other=sec-daemon" get sec.temp
expect_rc "a wrong key pinned for sec gets no answer" 1
run alice_store_env env MKTL_SERVER_KEY="other=carol,sec=sec-daemon" "$MKTL_BIN/mk" --key alice get sec.temp
expect_out "MKTL_SERVER_KEY pins per store, separated by commas" "temp: 20.5"
run bad_pin "$MKTL_BIN/mk" --key alice --server-key "sec=" get sec.temp
expect_rc "an empty pinned key is a usage error" 2
expect_in "saying how to write one" "$err" "a pinned key is KEY, or STORE=KEY for one store"

# ---- the secret key file's mode
chmod 640 "$keys/alice.key"
run alice_mode "$MKTL_BIN/mk" --key alice get sec.temp
expect_rc "a secret key file others can read is refused" 1
expect_in "naming the path and chmod 600" "$err" "secret key file $keys/alice.key has mode 0640"
expect_in "with the fix" "$err" "chmod 600 $keys/alice.key"
chmod 600 "$keys/alice.key"

# ---- through a registry: a client with an empty cache learns the daemon's
# key from the block the registry relays (the daemon announced it).
if [[ -x $MKTL_BIN/mkregistryd ]]; then
  # Liveness checks every 0.2 s, and a daemon silent for 0.6 s dropped.
  start registry '^mkregistryd: ready rep=([0-9]+) udp=[0-9]+$' env MKTL_LOG=debug "$MKTL_BIN/mkregistryd" \
    --bind 127.0.0.1 --hostname 127.0.0.1 --check-interval 0.2 --drop-after 0.6
  registry_port=${BASH_REMATCH[1]}
  start markd2 '^markd: remote remote1 ready rep=[0-9]+ pub=[0-9]+$' "$MKTL_BIN/markd" --bind 127.0.0.1 \
    --hostname 127.0.0.1 --broadcast 127.255.255.255 --security "$work/security.json" -c "$work/items.json" \
    remote remote1
  markd2_pid=$pid
  mkdir -p "$work/client-home"
  # The check is about finding the store and its key, as in tests/multihost
  # (lib.sh's 0.5 s ACK timeout: a loaded machine once missed 0.1 s here).
  run remote_alice env MKTL_HOME="$work/client-home" "$MKTL_BIN/mk" -w 10 --key "$keys/alice.key" \
    get remote.temp
  expect_out "alice finds the store through the registry and gets over CURVE" "temp: 20.5"
  expect_in "the block she cached names the daemon's key" "$(cat "$work"/client-home/client/cache/remote/*.json)" \
    "\"curve\":\"$daemon_pub\""
  # The registry's address given with --connect: the registry answers in
  # plain text, and the daemon it names is reached with the pinned key.
  for pin in "remote=$keys/sec-daemon.pub" "$keys/sec-daemon.pub"; do
    run connect_registry env MKTL_HOME="$work/connect-home" "$MKTL_BIN/mk" -w 10 --key "$keys/alice.key" \
      --server-key "$pin" --connect "tcp://127.0.0.1:$registry_port" get remote.temp
    expect_out "--connect REGISTRY with --server-key ${pin//"$keys/"/}" "temp: 20.5"
  done
  run remote_nokey env MKTL_HOME="$work/client-home" "$MKTL_BIN/mk" -w 10 get remote.temp
  expect_rc "without a key the same client fails" 1
  expect_in "saying the daemon requires CURVE" "$err" "requires CURVE"

  # The registry holds no key the daemon lists, so it cannot ask it anything:
  # its liveness checks see the daemon in the CURVE handshake instead
  # (docs/security.md), and keep it, check after check.
  curve_checks() { (($(grep -c 'remote1 (.*) answers the CURVE handshake' "$work/registry.stderr") >= 8)); }
  if wait_for 20 curve_checks; then pass "the registry's checks find the CURVE daemon there"; else
    fail "the registry's checks of the CURVE daemon: $(grep remote1 "$work/registry.stderr" | tail -3)"; fi
  expect_eq "and never drop it" "$(grep -c 'drop: remote1' "$work/registry.stderr")" 0
  run registry_knows "$MKTL_BIN/mk" discover "tcp://127.0.0.1:$registry_port"
  expect_in "the registry still serves its block" "$out" "remote"
  # Gone, it is dropped as a plain daemon is.
  kill "$markd2_pid"
  dropped() { grep -q 'drop: remote1' "$work/registry.stderr"; }
  if wait_for 20 dropped; then pass "a stopped CURVE daemon is dropped"; else
    fail "the stopped CURVE daemon was not dropped: $(grep remote1 "$work/registry.stderr" | tail -3)"; fi

  # ---- a daemon back on its ports with a new key pair: a watching client
  # follows it. It reads the new key in the block the daemon announces to
  # the registry again, and makes its sockets anew (those made with the old
  # key can never finish a handshake).
  run keygen_rot "$MKTL_BIN/mk" keygen rot-daemon
  sed 's/"server_key": "sec-daemon"/"server_key": "rot-daemon"/' "$work/security.json" >"$work/rot-security.json"
  rot_markd=("$MKTL_BIN/markd" --bind 127.0.0.1 --hostname 127.0.0.1 --broadcast 127.255.255.255
    --security "$work/rot-security.json" -c "$work/items.json")
  start rot '^markd: rot rot1 ready rep=([0-9]+) pub=([0-9]+)$' "${rot_markd[@]}" rot rot1
  rot_pid=$pid rot_rep=${BASH_REMATCH[1]} rot_pub=${BASH_REMATCH[2]}
  exec {fd}<&-
  mkdir -p "$work/watch-home" "$work/set-home"
  mk_alice=("$MKTL_BIN/mk" -w 10 --key "$keys/alice.key")
  start --first watcher '^setpoint: 10$' env MKTL_HOME="$work/watch-home" "${mk_alice[@]}" \
    watch --no-timestamp rot.setpoint
  watcher_pid=$pid
  cat <&"$fd" >>"$work/watcher.log" &
  exec {fd}<&-
  # Sets a new value until the watcher prints it (a SUB connection misses
  # what is broadcast before it is made); false after 20 s.
  set_until_watched() {
    local deadline=$((SECONDS + 20)) value=$1
    while ((SECONDS < deadline)); do
      value=$((value + 1))
      run rot_set env MKTL_HOME="$work/set-home" "${mk_alice[@]}" set "rot.setpoint=$value"
      grep -q "^setpoint: $value$" "$work/watcher.log" && return 0
      wait_for 1 grep -q "^setpoint: $value$" "$work/watcher.log" && return 0
    done
    return 1
  }
  if set_until_watched 100; then pass "the watcher sees a SET over CURVE"; else
    fail "the watcher saw no SET: $(tail -3 "$work/watcher.log"); $(tail -3 "$work/watcher.stderr")"; fi
  old_key=$(grep -v '^#' "$keys/rot-daemon.pub")
  kill "$rot_pid"
  wait_exit "$rot_pid" 10
  run keygen_rot2 "$MKTL_BIN/mk" keygen --force rot-daemon
  expect_rc "a new key pair for the daemon" 0
  [[ $(grep -v '^#' "$keys/rot-daemon.pub") != "$old_key" ]] && pass "(another key)" || fail "the key did not change"
  start rot2 '^markd: rot rot1 ready rep=([0-9]+) pub=([0-9]+)$' "${rot_markd[@]}" --rep-port "$rot_rep" \
    --pub-port "$rot_pub" rot rot1
  exec {fd}<&-
  if set_until_watched 200; then pass "after the daemon's restart with a new key, the same watch sees its SETs"; else
    fail "the watch did not follow the new key: $(tail -3 "$work/watcher.log"); $(tail -5 "$work/watcher.stderr")"; fi
  kill -TERM "$watcher_pid" || true
  wait_exit "$watcher_pid" 10
  expect_rc "the watch ends cleanly" 0
else
  echo "note: mkregistryd is not built: the registry path is not checked"
fi

finish test_security
