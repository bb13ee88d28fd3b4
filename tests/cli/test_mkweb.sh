#!/usr/bin/env bash
# CLI test of mkweb (issue 13) with curl: the heater and camera examples
# (simulators + markd on loopback), mkweb on ephemeral ports, then every
# route of the HTTP API, every error status, the token rules, and the
# WebSocket (subscribe, values, errors for bad input, a message too big)
# through mkweb_ws_probe.
#
# Env (set by ctest): MKTL_BIN (the build's bin dir), MKTL_SOURCE (the source
# tree), MKTL_BROADCAST (127.255.255.255: nothing leaves this machine).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_mkweb
need_source

skip_rest_unless_built "mkweb" "$BIN/mkweb" "$BIN/mkweb_ws_probe"
command -v curl >/dev/null || die "curl is not installed (scripts/deps.sh installs it)"
for f in "$BIN/markd" "$BIN/mk" "$BIN/heatersim" "$BIN/camerasim" "$LIB/libheater_daemon.so" "$LIB/libcamera_daemon.so"; do
  [[ -e $f ]] || die "$f is not built"
done

# http NAME CURL-ARGS...: one request; $status, $body (and $work/NAME.headers).
http() {
  local name=$1; shift
  status=$(curl -s -S --max-time 20 -o "$work/$name.body" -D "$work/$name.headers" -w '%{http_code}' "$@") || status=curl-failed
  body=$(cat "$work/$name.body" 2>/dev/null || true)
}
# expect_status NAME STATUS [ERROR-TYPE]: $status (and the error's type).
expect_status() {
  if [[ $status != "$2" ]]; then fail "$1: HTTP $status, expected $2: $body"; return; fi
  if [[ -n ${3:-} ]]; then
    local type
    type=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["error"]["type"])' <<<"$body" 2>/dev/null || true)
    [[ $type == "$3" ]] || { fail "$1: HTTP $2 but error type '$type', expected $3: $body"; return; }
  fi
  pass "$1 (HTTP $status)"
}
# jq_py EXPR: a Python expression over the JSON $body (bound to j).
jq_py() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)" <<<"$body"; }
header() { sed -n "s/^$1: \\(.*\\)\\r\$/\\1/Ip" "$work/$2.headers"; }

###########################################################################
# 1. Options
###########################################################################
run help "$BIN/mkweb" --help
expect_rc "mkweb --help" 0
expect_in "--help has an Exit status section" "$out" "Exit status"
run bogus "$BIN/mkweb" --bogus
expect_rc "an unknown option is a usage error" 2
run badlisten "$BIN/mkweb" --listen nowhere
expect_rc "--listen without a port is a usage error" 2
run tokenalone "$BIN/mkweb" --token-file /dev/null
expect_rc "--token-file without --allow-set is a usage error" 2
run notoken env -u MKWEB_TOKEN "$BIN/mkweb" --listen 127.0.0.1:0 --allow-set
expect_rc "--allow-set without a token does not start" 1
expect_in "and says what to give" "$err" "--token-file"
printf 'open-token\n' >"$work/open.token"
chmod 644 "$work/open.token"
run opentoken "$BIN/mkweb" --listen 127.0.0.1:0 --allow-set --token-file "$work/open.token"
expect_rc "a token file others may read is refused" 1
expect_in "with the fix named" "$err" "chmod 600"

###########################################################################
# 2. The examples and mkweb
###########################################################################
private_discovery_ports
start_drained heatersim '^PORT [0-9]+$' "$BIN/heatersim" --port 0 --seed 7 --time-constant 0.5
HEATER_SIM=${line#PORT }
HEATER_SIM_PID=$pid
start_example markd-heater heater HeaterDaemon "$HEATER_SIM"
HEATER_MK=("${MK[@]}")
HEATER_PID=$pid
start_drained camerasim '^PORT [0-9]+$' "$BIN/camerasim" --port 0 --width 64 --height 48 --seed 3 --stars 8
start_example markd-camera camera CameraDaemon "${line#PORT }"
CAMERA_PID=$pid
CAMERA_EP=${MK[2]}

token=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
(umask 077 && printf '%s\n' "$token" >"$work/token")
listening='^mkweb: listening on http://(127\.0\.0\.1:[0-9]+)/$'
start_drained mkweb "$listening" "$BIN/mkweb" --listen 127.0.0.1:0 --connect "${HEATER_MK[2]}" \
  --connect "$CAMERA_EP" --allow-set --token-file "$work/token" --timeout 2
WEB=http://${BASH_REMATCH[1]}
WEB_HOST=127.0.0.1 WEB_PORT=${BASH_REMATCH[1]#*:}
MKWEB_PID=$pid
pass "mkweb listens at $WEB"
# A second mkweb without --allow-set, the store named with --store.
start_drained mkweb-ro "$listening" "$BIN/mkweb" --listen 127.0.0.1:0 --connect "${HEATER_MK[2]}" --store heater
RO=http://${BASH_REMATCH[1]}
RO_PID=$pid
# A third with the token from $MKWEB_TOKEN.
start_drained mkweb-env "$listening" env MKWEB_TOKEN=env-token "$BIN/mkweb" --listen 127.0.0.1:0 \
  --connect "${HEATER_MK[2]}" --allow-set
ENVWEB=http://${BASH_REMATCH[1]}

###########################################################################
# 3. GET routes
###########################################################################
http healthz "$WEB/healthz"
expect_status "GET /healthz" 200
expect_eq "/healthz says ok" "$body" '{"ok":true}'
expect_eq "answers are JSON" "$(header Content-Type healthz)" "application/json"

http stores "$WEB/api/stores"
expect_status "GET /api/stores" 200
expect_eq "both stores listed" "$body" '{"stores":["camera","heater"]}'
http stores-ro "$RO/api/stores"
expect_eq "--store limits the stores offered" "$body" '{"stores":["heater"]}'
http other-ro "$RO/api/stores/camera"
expect_status "a store not offered is 404" 404 KeyError

http catalog "$WEB/api/stores/heater"
expect_status "GET /api/stores/heater" 200
expect_eq "the catalog has the setpoint's limits and units" \
  "$(jq_py 'j["store"], j["items"]["setpoint"]["min"], j["items"]["setpoint"]["max"], j["items"]["setpoint"]["units"]')" \
  "heater -50 150 degC"
http catalog-404 "$WEB/api/stores/nosuch"
expect_status "an unknown store is 404" 404 KeyError

temperature_read() { http temp "$WEB/api/items/heater.temperature"; [[ $status == 200 && $body == *'"formatted":"'* ]]; }
wait_for 20 temperature_read || fail "GET heater.temperature never answered: $status $body"
expect_match "GET an item: formatted with 2 decimals, units, time" \
  "$(jq_py 'j["item"], j["formatted"], j["units"], type(j["value"]).__name__, j["time"] > 1e9')" \
  '^heater.temperature -?[0-9]+\.[0-9]{2} degC float True$'
http refresh "$WEB/api/items/heater.temperature?refresh=1"
expect_status "GET ?refresh=1" 200
http upper "$WEB/api/items/HEATER.Temperature"
expect_status "keys are case-insensitive, as for mk" 200
http key-404 "$WEB/api/items/heater.nosuch"
expect_status "an unknown key is 404" 404 KeyError
http store-404 "$WEB/api/items/nosuch.temp"
expect_status "an unknown store's item is 404" 404 KeyError
http nodot "$WEB/api/items/heater"
expect_status "an item without a key is 404" 404 KeyError
http route-404 "$WEB/no/such/page"
expect_status "an unknown route is 404" 404

http frame "$WEB/api/items/camera.frame"
expect_status "GET a bulk item" 200
expect_eq "its value is shape and dtype, with the URL of the bytes" \
  "$(jq_py 'j["bulk"]["shape"], j["bulk"]["dtype"], j["bulk"]["url"]')" "[48, 64] uint16 /api/items/camera.frame/bulk"
http bulk "$WEB/api/items/camera.frame/bulk"
expect_status "GET the bulk bytes" 200
expect_eq "64 x 48 uint16 pixels" "$(stat -c %s "$work/bulk.body")" "$((64 * 48 * 2))"
expect_eq "X-Shape" "$(header X-Shape bulk)" "48,64"
expect_eq "X-Dtype" "$(header X-Dtype bulk)" "uint16"
expect_eq "as octet-stream" "$(header Content-Type bulk)" "application/octet-stream"
http bulk-notbulk "$WEB/api/items/heater.setpoint/bulk"
expect_status "bulk bytes of an item that is not bulk: 422" 422 TypeError

http index "$WEB/"
expect_status "GET / serves the page" 200
expect_in "the page is the UI" "$body" 'id="stores"'
expect_match "as HTML" "$(header Content-Type index)" '^text/html'
http appjs "$WEB/app.js"
expect_status "GET /app.js" 200
expect_match "as JavaScript" "$(header Content-Type appjs)" '^text/javascript'
http css "$WEB/style.css"
expect_status "GET /style.css" 200
expect_match "as CSS" "$(header Content-Type css)" '^text/css'
if grep -qE '(src|href)="https?://' "$work/index.body" "$work/appjs.body" "$work/css.body"; then
  fail "the UI loads something from an external URL"
else pass "the UI refers to no external URL"; fi

###########################################################################
# 4. SET: token rules and error statuses
###########################################################################
auth=(-H "Authorization: Bearer $token")
http set-ok "${auth[@]}" -X POST -d '{"value": 45}' "$WEB/api/items/heater.setpoint"
expect_status "POST a setpoint with the token" 200
expect_eq "answers ok" "$body" '{"item":"heater.setpoint","ok":true}'
mk_ok() { rc=0; OUT=$("${HEATER_MK[@]}" "$@" 2>&1) || rc=$?; }
# expect_mk NAME WANT MK-ARGS...: mk's answer is WANT (retried for 10 s: on a
# loaded machine mk's 0.1 s wait for an ACK can run out).
expect_mk() {
  local name=$1 want=$2; shift 2
  mk_is() { mk_ok "$@"; [[ $rc == 0 && $OUT == "$want" ]]; }
  if wait_for 10 mk_is "$@"; then pass "$name"; else fail "$name: got '$OUT', want '$want'"; fi
}
expect_mk "the SET reached the daemon (mk get)" "45.0" get --unformatted --terse heater.setpoint

http set-text "${auth[@]}" -X POST -d '{"value": "Standby"}' "$WEB/api/items/heater.mode"
expect_status "an enumerator by name, as mk set reads it" 200
expect_mk "mode is Standby" "Standby" get --terse heater.mode
http set-bool "${auth[@]}" -X POST -d '{"value": true}' "$WEB/api/items/heater.power"
expect_status "a boolean as JSON true" 200
expect_mk "power is On" "On" get --terse heater.power

http set-200 "${auth[@]}" -X POST -d '{"value": 200}' "$WEB/api/items/heater.setpoint"
expect_status "a setpoint above the maximum is 422" 422 ValueError
mk_refuses() { mk_ok set heater.setpoint=200; [[ $OUT == "mk: heater.setpoint: ValueError: "* ]]; }
wait_for 10 mk_refuses || fail "mk set heater.setpoint=200: $OUT"
daemon_text=${OUT#mk: heater.setpoint: ValueError: }
expect_eq "with the daemon's text, verbatim (as mk shows it)" "$(jq_py 'j["error"]["text"]')" "$daemon_text"
http set-enum "${auth[@]}" -X POST -d '{"value": "Bogus"}' "$WEB/api/items/heater.mode"
expect_status "an unknown enumerator is 422 (the key exists)" 422 KeyError
http set-ro "${auth[@]}" -X POST -d '{"value": 1}' "$WEB/api/items/heater.temperature"
expect_status "a read-only item is 422" 422 TypeError
http set-bulk "${auth[@]}" -X POST -d '{"value": 1}' "$WEB/api/items/camera.frame"
expect_status "a bulk item cannot be set through the web" 422 TypeError
http set-404 "${auth[@]}" -X POST -d '{"value": 1}' "$WEB/api/items/heater.nosuch"
expect_status "SET of an unknown key is 404" 404 KeyError
http set-badjson "${auth[@]}" -X POST -d '{"value": ' "$WEB/api/items/heater.setpoint"
expect_status "a body that is not JSON is 400" 400 ValueError
http set-novalue "${auth[@]}" -X POST -d '[45]' "$WEB/api/items/heater.setpoint"
expect_status "a body without \"value\" is 400" 400 ValueError
head -c 2000000 /dev/zero | tr '\0' ' ' >"$work/big.json"
http set-big "${auth[@]}" -X POST --data-binary @"$work/big.json" "$WEB/api/items/heater.setpoint"
expect_status "a body over 1 MiB is 413" 413
http set-notoken -X POST -d '{"value": 46}' "$WEB/api/items/heater.setpoint"
expect_status "no token: 401" 401
http set-wrong -H "Authorization: Bearer x$token" -X POST -d '{"value": 46}' "$WEB/api/items/heater.setpoint"
expect_status "a wrong token: 401" 401
http set-basic -H "Authorization: Basic $token" -X POST -d '{"value": 46}' "$WEB/api/items/heater.setpoint"
expect_status "not a Bearer token: 401" 401
http set-off "${auth[@]}" -X POST -d '{"value": 46}' "$RO/api/items/heater.setpoint"
expect_status "without --allow-set every POST is 403" 403 PermissionError
expect_in "saying how to turn it on" "$body" "--allow-set"
http set-env -H "Authorization: Bearer env-token" -X POST -d '{"value": 47}' "$ENVWEB/api/items/heater.setpoint"
expect_status "the token from \$MKWEB_TOKEN" 200
http set-env-wrong "${auth[@]}" -X POST -d '{"value": 48}' "$ENVWEB/api/items/heater.setpoint"
expect_status "another mkweb's token is wrong there" 401
expect_mk "only the accepted SETs reached the daemon" "47.0" get --unformatted --terse heater.setpoint
http delete -X DELETE "$WEB/api/items/heater.setpoint"
expect_status "DELETE is 405" 405
http post-stores -X POST -d '{}' "$WEB/api/stores"
expect_status "POST to /api/stores is 405" 405

###########################################################################
# 5. WebSocket
###########################################################################
probe() { rc=0; out=$(timeout 30 "$BIN/mkweb_ws_probe" "$WEB_HOST" "$WEB_PORT" "$@" 2>"$work/probe.stderr") || rc=$?; }
probe --send '{"op":"subscribe","items":["heater.setpoint","heater.nosuch"]}' --count 2 --timeout 10
expect_rc "subscribe: the current value and an error" 0
expect_match "the setpoint's value, formatted, with its skip count" "$out" \
  '"formatted":"47.00","item":"heater.setpoint","time":[0-9.e+]+,"type":"value","units":"degC","value":47.0,"skipped":0'
expect_match "an error for the unknown key" "$out" '"item":"heater.nosuch","type":"error"'

# A broadcast reaches a browser: subscribe, then a SET through the API.
probe_bg=$work/probe-live.out
timeout 30 "$BIN/mkweb_ws_probe" "$WEB_HOST" "$WEB_PORT" --send '{"op":"subscribe","items":["heater.setpoint"]}' \
  --count 2 --timeout 15 >"$probe_bg" 2>&1 &
live_pid=$!
first_value() { [[ -s $probe_bg ]]; }
wait_for 10 first_value || fail "no first value on the WebSocket"
# New setpoints until one reaches the probe: mkweb's new upstream subscription
# may miss a broadcast sent before ZeroMQ has joined it (the slow joiner).
pokes=0
poke_live() {
  pokes=$((pokes + 1))
  http set-live "${auth[@]}" -X POST -d "{\"value\": 33.$pokes}" "$WEB/api/items/heater.setpoint"
  ! kill -0 "$live_pid" 2>/dev/null
}
wait_for 15 poke_live || true
wait_exit "$live_pid" 20
expect_eq "the probe got two values" "$rc" "0"
expect_match "the second is a new setpoint" "$(tail -n1 "$probe_bg")" '"formatted":"33\.[0-9]+".*"skipped":0'

probe --send 'not json' --send '{"op":"frob","items":[]}' --send '{"op":"subscribe"}' \
  --send '{"op":"subscribe","items":[7]}' --binary 'abc' --count 5 --timeout 10
expect_rc "bad messages each get an error, the session goes on" 0
expect_in "not JSON" "$out" "not JSON"
expect_in "unknown op" "$out" "unknown op 'frob'"
expect_in "no items" "$out" 'needs \"items\"'
expect_in "an item that is not a string" "$out" 'must be a \"STORE.KEY\" string'
expect_in "binary" "$out" "binary messages are not understood"

probe --send-size 200000 --timeout 10
expect_match "a message over 64 KiB ends the connection (close 1009, too big)" "$out" '^(closed 1009|write failed)'
http healthz-after "$WEB/healthz"
expect_status "mkweb lives on after it" 200

probe --send '{"op":"subscribe","items":["camera.frame"]}' --count 2 --timeout 15
expect_rc "bulk frames on the WebSocket" 0
expect_match "shape, dtype and the URL of this frame" "$(head -n1 <<<"$out")" \
  '"bulk":\{"dtype":"uint16","shape":\[48,64\],"url":"/api/items/camera.frame/bulk\?v=[0-9]+"\}'

###########################################################################
# 6. A collection on the WebSocket: snapshot, then changes by seq
###########################################################################
cat >"$work/shop.toml" <<'EOF'
batch_max_wait_ms = 1.0

[tables.stock]
columns = { sku = "TEXT PRIMARY KEY", qty = "INTEGER NOT NULL" }

[services.put]
protocol = "transaction"
table = "stock"
op_type = "upsert"
key = ["sku"]
fields = ["sku", "qty"]

[services.stock]
protocol = "subpub"
primary_table = "stock"
key = "sku"
EOF
start --first markd-shop '^markd: shop shop1 ready rep=([0-9]+)' "$BIN/markd" --no-discovery --bind 127.0.0.1 \
  --hostname 127.0.0.1 --mkio "$work/shop.toml" shop shop1
exec {fd}<&-
SHOP_MK=("$BIN/mk" --connect "tcp://127.0.0.1:${BASH_REMATCH[1]}")
shop_put() { rc=0; OUT=$("${SHOP_MK[@]}" set shop.put "$1" 2>&1) || rc=$?; ((rc == 0)); }
wait_for 10 shop_put '{"sku": "apple", "qty": 3}' || fail "mk set shop.put: $OUT"
start_drained mkweb-shop "$listening" "$BIN/mkweb" --listen 127.0.0.1:0 --connect "${SHOP_MK[2]}"
SHOP_PORT=${BASH_REMATCH[1]#*:}
shop_out=$work/probe-shop.out
timeout 30 "$BIN/mkweb_ws_probe" 127.0.0.1 "$SHOP_PORT" --send '{"op":"subscribe","items":["shop.stock"]}' \
  --count 2 --timeout 15 >"$shop_out" 2>&1 &
shop_probe=$!
snapshot_came() { [[ -s $shop_out ]]; }
wait_for 10 snapshot_came || fail "no snapshot of shop.stock on the WebSocket"
expect_match "a collection's snapshot first: its rows and seq" "$(head -n1 "$shop_out")" \
  '^\{"item":"shop.stock","rows":\[\{"rowid":"apple","value":\{[^}]*"qty":3[^}]*\}\}\],"seq":[0-9]+,"type":"snapshot"\}$'
snap_seq=$(head -n1 "$shop_out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seq"])' 2>/dev/null || true)
[[ $snap_seq =~ ^[0-9]+$ ]] || snap_seq=-100  # the match above has failed already
wait_for 10 shop_put '{"sku": "pear", "qty": 5}' || fail "mk set shop.put: $OUT"
wait_exit "$shop_probe" 20
expect_eq "then the change" "$rc" "0"
expect_eq "an insert of pear, seq after the snapshot's" \
  "$(tail -n1 "$shop_out" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["type"], j["op"], j["rowid"], j["row"]["qty"], j["seq"])' 2>&1)" \
  "change insert pear 5 $((snap_seq + 1))"

###########################################################################
# 7. A daemon gone: 504, then SIGTERM
###########################################################################
kill -KILL "$CAMERA_PID"
wait_exit "$CAMERA_PID" 10
http gone "$WEB/api/items/camera.exptime?refresh=1"
expect_status "a daemon that does not answer: 504" 504 TimeoutError

# The heater's controller gone: the daemon's own error (not a value's) is 502.
kill -KILL "$HEATER_SIM_PID"
wait_exit "$HEATER_SIM_PID" 10
http nosim "$WEB/api/items/heater.temperature?refresh=1"
expect_status "a daemon error other than ValueError, TypeError, KeyError, PermissionError or TimeoutError: 502" 502
expect_match "with the daemon's error type and text" "$(jq_py 'j["error"]["type"], j["error"]["text"]')" '^[A-Za-z]+Error .+'

stop "$RO_PID"
expect_eq "mkweb exits 0 on SIGTERM" "$rc" "0"
stop "$MKWEB_PID"
expect_eq "the other too" "$rc" "0"
stop "$HEATER_PID"
finish "mkweb"
