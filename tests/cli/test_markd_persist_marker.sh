#!/usr/bin/env bash
# CLI test of a persistence database that comes back empty (issue 14, "Found
# from outside"): truncated to 0 bytes, it used to start silently with the
# catalog's initial values. Now the marker next to it (ALIAS.sqlite3.marker)
# records that it held values, markd refuses to start (exit 78) naming the
# database, the marker and the way out, and deleting the marker accepts
# starting without the persisted values. Real markd and mk on loopback; a
# private MKTL_HOME; readiness read from a FIFO, stops bounded.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_markd_persist_marker

cat >"$work/items.json" <<'EOF2'
{"setpoint": {"type": "numeric", "initial": 20, "persist": true},
 "mode": {"type": "string", "initial": "idle", "persist": true}}
EOF2
db=$MKTL_HOME/daemon/persist/pm/pm1.sqlite3
marker=$db.marker
common=(--no-discovery --bind 127.0.0.1 --hostname 127.0.0.1 -c "$work/items.json" pm pm1)

start_markd() {  # NAME: markd in the background; sets pid and MK
  start "$1" '^markd: pm pm1 ready rep=([0-9]+) pub=[0-9]+$' "$MKTL_BIN/markd" "${common[@]}"
  MK=("$MKTL_BIN/mk" --connect "tcp://127.0.0.1:${BASH_REMATCH[1]}")
}

start_markd first
run set "${MK[@]}" set pm.setpoint 42
expect_rc "a persistent value is set" 0
run set2 "${MK[@]}" set pm.mode busy
expect_rc "another persistent value is set" 0
stop "$pid"
expect_rc "markd stops cleanly" 0
[[ -f $marker ]] && pass "the marker is written next to the database" || fail "no marker at $marker"
expect_in "the marker counts the saved values" "$(cat "$marker" 2>/dev/null)" "values 2"

start_markd second
run get "${MK[@]}" get pm.setpoint
expect_out "a restart brings the value back" "setpoint: 42"
stop "$pid"

# The database truncated to 0 bytes (a full disk, a bad copy, a stray '>').
: >"$db"
rm -f "$db-wal" "$db-shm"
run truncated "$MKTL_BIN/markd" "${common[@]}"
expect_rc "markd refuses an emptied database" 78
expect_in "naming the database" "$err" "$db: the persistence database is empty (0 bytes)"
expect_in "and the marker's count" "$err" "$marker records that it held 2 saved value(s)"
expect_in "and the way out" "$err" "delete $marker to start without persisted values"
[[ ! -s $db ]] && pass "the emptied database is left as found" || fail "the emptied database was written"

# Deleted altogether: refused too, and not created.
rm -f "$db"
run deleted "$MKTL_BIN/markd" "${common[@]}"
expect_rc "markd refuses a deleted database" 78
expect_in "saying it is missing" "$err" "$db: the persistence database is missing"
[[ ! -e $db ]] && pass "the missing database is not created" || fail "the missing database was created"

# The way out: delete the marker, start with the initial values.
rm -f "$marker"
start_markd fresh
run get-fresh "${MK[@]}" get pm.setpoint
expect_out "without the marker markd starts with the initial value" "setpoint: 20"
run set-fresh "${MK[@]}" set pm.setpoint 43
stop "$pid"
expect_in "the marker is back after a save" "$(cat "$marker" 2>/dev/null)" "values "

finish test_markd_persist_marker
