#!/usr/bin/env bash
# CLI tests of mk on collection items (issue 11), against markd serving an
# mkio file with a keyed (subpub), a table (query) and a stream service:
# get --snapshot [--filter] [--json], get --since (changes, and a reset when
# they are no longer held), watch of a collection (snapshot, then each change
# with op and seq; --row, --filter), and the usage errors.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_mk_collections

markd=$MKTL_BIN/markd
common=(--no-discovery --bind 127.0.0.1 --hostname 127.0.0.1)

cat >"$work/shop.toml" <<'EOF'
batch_max_wait_ms = 1.0

[tables.stock]
columns = { sku = "TEXT PRIMARY KEY", qty = "INTEGER NOT NULL" }

[tables.log]
columns = { id = "INTEGER PRIMARY KEY AUTOINCREMENT", text = "TEXT NOT NULL" }

[services.put]
protocol = "transaction"
table = "stock"
op_type = "upsert"
key = ["sku"]
fields = ["sku", "qty"]

[services.drop]
protocol = "transaction"
table = "stock"
op_type = "delete"
key = ["sku"]

[services.note]
protocol = "transaction"
table = "log"
op_type = "insert"
fields = ["text"]

[services.stock]
protocol = "subpub"
primary_table = "stock"
key = "sku"

[services.all]
protocol = "query"
primary_table = "stock"
change_log_size = 3

[services.feed]
protocol = "stream"
primary_table = "log"
EOF

start --first markd '^markd: shop shop1 ready rep=([0-9]+)' "$markd" "${common[@]}" --mkio "$work/shop.toml" shop shop1
exec {fd}<&-
MK=("$MKTL_BIN/mk" --connect "tcp://127.0.0.1:${BASH_REMATCH[1]}")

put() { "${MK[@]}" set shop.put "{\"sku\": \"$1\", \"qty\": $2}" >/dev/null; }
put A 5
put B 20
put C.1 7   # a rowid with a dot
"${MK[@]}" set shop.note '{"text": "hello"}' >/dev/null
"${MK[@]}" set shop.note '{"text": "world"}' >/dev/null

# ---- get --snapshot ----------------------------------------------------------------
run snap "${MK[@]}" get shop.stock --snapshot
expect_out "get --snapshot: rows one per line, then the seq" 'stock[A]: {"qty":5,"sku":"A"}
stock[B]: {"qty":20,"sku":"B"}
stock[C.1]: {"qty":7,"sku":"C.1"}
stock: seq 3, 3 rows'

run filtered "${MK[@]}" get shop.all --snapshot --filter "qty >= 7"
expect_out "get --snapshot --filter (evaluated by the daemon)" 'all[B]: {"qty":20,"sku":"B"}
all[C.1]: {"qty":7,"sku":"C.1"}
all: seq 3, 2 rows'

run snapjson "${MK[@]}" --json get shop.feed --snapshot
expect_out "get --snapshot --json of a stream" '{"key":"shop.feed","rowid":1,"value":{"id":1,"text":"hello"}}
{"key":"shop.feed","rowid":2,"value":{"id":2,"text":"world"}}
{"count":2,"epoch":"","key":"shop.feed","seq":2}'

run badfilter "${MK[@]}" get shop.stock --snapshot --filter "qty >"
expect_rc "a malformed filter fails" 1
expect_match "the daemon's ValueError" "$err" '^mk: shop\.stock: ValueError: '

run notcoll "${MK[@]}" get shop.put --snapshot
expect_rc "--snapshot of a record item fails" 1
expect_in "it says what the item is" "$err" "shop.put: TypeError: --snapshot and --since take a collection item; this item is record"

# ---- get --since ------------------------------------------------------------------
run since "${MK[@]}" get shop.stock --since 1
expect_out "get --since: each change with its op and seq" 'stock: insert seq 2 [B] {"qty":20,"sku":"B"}
stock: insert seq 3 [C.1] {"qty":7,"sku":"C.1"}
stock: seq 3, 2 changes'

run sincejson "${MK[@]}" --json get shop.stock --since 2
expect_match "get --since --json: the change as the daemon sent it" "$out" \
  '^\{"exists":true,"key":"shop.stock","op":"insert","ref":"[^"]+","rowid":"C.1","seq":3,"time":[0-9.e+]+,"value":\{"qty":7,"sku":"C.1"\}\}'
expect_in "then the end" "$out" '{"changes":1,"key":"shop.stock","seq":3}'

put A 6
put A 7
put A 8
put A 9   # the table service holds 3 changes: seq 1 is gone
run reset "${MK[@]}" get shop.all --since 1
expect_rc "get --since too old" 0
expect_in "answers a reset and the rows" "$out" 'all: reset seq 7, 3 rows (the changes since 1 are no longer held)
all[A]: {"qty":9,"sku":"A"}'

# ---- watch ------------------------------------------------------------------------
next_line() {  # the next line of the watch on $fd, within 10 s
  line=""
  IFS= read -r -t 10 -u "$fd" line || true
}
start --first watch '^all: snapshot seq 7, 3 rows$' "${MK[@]}" --no-timestamp watch shop.all --filter "qty > 6"
watch_pid=$pid
next_line; expect_eq "watch: the snapshot's rows (filtered by mk)" "$line" 'all[A]: {"qty":9,"sku":"A"}'
next_line; expect_eq "watch: second row" "$line" 'all[B]: {"qty":20,"sku":"B"}'
next_line; expect_eq "watch: third row" "$line" 'all[C.1]: {"qty":7,"sku":"C.1"}'
put B 21
next_line; expect_eq "watch: an update with its seq" "$line" 'all: update seq 8 [B] {"qty":21,"sku":"B"}'
put A 1
next_line; expect_eq "watch: a row that stops matching leaves as a delete" "$line" 'all: delete seq 9 [A] {"qty":1,"sku":"A"}'
put D 100
next_line; expect_eq "watch: a new row" "$line" 'all: insert seq 10 [D] {"qty":100,"sku":"D"}'
"${MK[@]}" set shop.drop '{"sku": "D"}' >/dev/null
next_line; expect_eq "watch: a deleted row" "$line" 'all: delete seq 11 [D] {"qty":100,"sku":"D"}'
stop "$watch_pid"
expect_rc "watch ends on SIGTERM with exit 0" 0
exec {fd}<&-

start --first watchrow '^\{"count":1,"key":"shop.stock","seq":11,"snapshot":true\}$' "${MK[@]}" --json watch shop.stock --row C.1
row_pid=$pid
next_line; expect_eq "watch --row: the snapshot holds that row only" "$line" '{"key":"shop.stock","rowid":"C.1","value":{"qty":7,"sku":"C.1"}}'
put B 22
put C.1 70
next_line
expect_match "watch --row --json: only that row's changes" "$line" \
  '^\{"exists":true,"key":"shop.stock","op":"update","ref":"[^"]+","rowid":"C.1","seq":13,"time":[0-9.e+]+,"value":\{"qty":70,"sku":"C.1"\}\}$'
stop "$row_pid"
expect_rc "watch --row ends on SIGTERM" 0
exec {fd}<&-

start --first watchfeed '^feed: snapshot seq 2, 2 rows$' "${MK[@]}" --no-timestamp watch shop.feed
feed_pid=$pid
next_line; next_line
"${MK[@]}" set shop.note '{"text": "again"}' >/dev/null
next_line; expect_eq "watch of a stream: an insert, seq = rowid" "$line" 'feed: insert seq 3 [3] {"id":3,"text":"again"}'
stop "$feed_pid"
exec {fd}<&-

# ---- usage ------------------------------------------------------------------------
run u1 "${MK[@]}" watch shop.stock --snapshot
expect_rc "--snapshot with watch is a usage error" 2
run u2 "${MK[@]}" get shop.stock --row A
expect_rc "--row with get is a usage error" 2
run u3 "${MK[@]}" get shop.stock --snapshot --since 1
expect_rc "--snapshot with --since is a usage error" 2
run u4 "${MK[@]}" get shop.stock --filter "qty > 1"
expect_rc "--filter without --snapshot on get is a usage error" 2
run u5 "${MK[@]}" watch shop.put --row A
expect_rc "--row on a record item fails" 1
expect_in "it says so" "$err" "TypeError: --filter and --row take a collection item"

finish "mk collections"
