#!/usr/bin/env bash
# CLI tests of tables and transactions: markd serving an mkio TOML file,
# `mk set` of record items (JSON argument, JSON and CSV files with per-row
# results), `mk get --ref`, `mk describe`, answered transactions surviving
# kill -9 while a writer is busy, and a lossy schema change refused (exit 78)
# until --migrate.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_collections

markd=$MKTL_BIN/markd
common=(--no-discovery --bind 127.0.0.1 --hostname 127.0.0.1)

cat >"$work/book.toml" <<'EOF'
# An mkio file: keys mktl has no use for (host, port, static) are accepted.
host = "0.0.0.0"
port = 8080
batch_max_wait_ms = 1.0

[tables.orders]
columns = { id = "INTEGER PRIMARY KEY AUTOINCREMENT", symbol = "TEXT NOT NULL", qty = "INTEGER NOT NULL", price = "REAL DEFAULT 0", status = "TEXT DEFAULT 'new'" }

[tables.audit]
columns = { id = "INTEGER PRIMARY KEY AUTOINCREMENT", order_id = "INTEGER NOT NULL", event = "TEXT" }

[services.orders]
protocol = "transaction"

[services.orders.ops]
new = [
  { table = "orders", op_type = "insert", fields = ["symbol", "qty", "price"] },
  { table = "audit", op_type = "insert", defaults = { event = "new" }, bind = { order_id = "$0.id" } },
]
fill = [
  { table = "orders", op_type = "update", key = ["id"], fields = ["status"], defaults = { status = "filled" } },
]
EOF

start_book() {  # NAME [markd options]: markd serving book.toml; sets $pid, $MK
  local name=$1; shift
  start --first "$name" '^markd: book book1 ready rep=([0-9]+)' "$markd" "${common[@]}" --mkio "$work/book.toml" "$@" book book1
  exec {fd}<&-
  MK=("$MKTL_BIN/mk" --connect "tcp://127.0.0.1:${BASH_REMATCH[1]}")
}

# ---- check, serve, set ---------------------------------------------------------
run check "$markd" "${common[@]}" --check --mkio "$work/book.toml" book book1
expect_rc "--check of a good mkio file" 0

start_book markd1
run describe "${MK[@]}" describe book.orders_new
expect_rc "describe a record item" 0
expect_in "describe shows the record type" "$out" '"record"'
expect_in "describe shows the fields" "$out" '"symbol"'

run set1 "${MK[@]}" set book.orders_new '{"symbol": "AAPL", "qty": 100, "price": 187.5}'
expect_rc "mk set KEY JSON" 0
expect_match "the reply has ref, seq and the RETURNING rows" "$out" '^book\.orders_new: ref [0-9]{8} [0-9:.]+ seq [0-9]+ rows \[\{.*"symbol":"AAPL".*\},\{.*"event":"new".*\}\]$'
ref1=$(sed -n 's/.*: ref \([0-9]\{8\} [0-9:.]*\) seq.*/\1/p' <<<"$out")

run getref "${MK[@]}" get book.orders_new --ref "$ref1"
expect_rc "mk get --ref" 0
expect_match "the ref committed" "$out" "committed ref $ref1 seq"

run bad "${MK[@]}" set book.orders_new '{"symbol": "AAPL", "qtty": 1}'
expect_rc "a bad transaction fails" 1
expect_in "the error names the field and the fix" "$err" "did you mean 'qty'"

cat >"$work/orders.csv" <<'EOF'
symbol,qty,price
MSFT,10,410.25
"IBM, Inc",5,
,7,1
GOOG,3,140
EOF
run csv "${MK[@]}" set book.orders_new --file "$work/orders.csv"
expect_rc "a CSV file with a bad row exits 1" 1
expect_match "row 1 committed" "$out" 'book\.orders_new row 1: ref .* rows \[\{.*"qty":10.*"symbol":"MSFT"'
expect_match "a quoted cell with a comma, an empty cell left out" "$out" 'row 2: ref .*"price":0.*"symbol":"IBM, Inc"'
expect_in "row 3 fails on its own" "$err" "book.orders_new row 3: ValueError"
expect_match "row 4 still committed" "$out" 'row 4: ref .*"GOOG"'

printf '[{"id": 1}, {"id": 999}]\n' >"$work/fill.json"
run json "${MK[@]}" set book.orders_fill --file "$work/fill.json"
expect_rc "a JSON file with a row matching nothing exits 1" 1
expect_match "row 1 filled" "$out" 'row 1: ref .*"status":"filled"'
expect_in "row 2 matched no row" "$err" "matched no row"

# ---- kill -9 under a stream of transactions -------------------------------------
# Writers send transactions as fast as they are answered; every answered ref
# must be committed after the kill.
: >"$work/answered"
writer() {
  local i
  for ((i = 0; i < 400; i++)); do
    "${MK[@]}" --json set book.orders_new "{\"symbol\": \"W$1\", \"qty\": $i}" 2>/dev/null || return 0
  done >>"$work/answered"
}
writer 1 & w1=$!
writer 2 & w2=$!
answered_some() { (($(grep -c '"ref"' "$work/answered" || true) >= 20)); }
wait_for 20 answered_some || fail "no transactions answered"
kill -9 "$pid"
wait "$w1" "$w2" || true
answered=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        v = json.loads(line).get("value")
        if v: print(v["ref"])
' "$work/answered")
count=$(wc -l <<<"$answered")
start_book markd2
lost=0
while IFS= read -r ref; do
  # Not piped into grep -q: it stops reading at its match, and under pipefail
  # mk's SIGPIPE would count the transaction as lost.
  [[ $("${MK[@]}" get book.orders_new --ref "$ref") == *"committed ref"* ]] || lost=$((lost + 1))
done <<<"$answered"
expect_eq "every one of $count answered transactions survived kill -9" "$lost" 0

# ---- schema migration -------------------------------------------------------------
stop "$pid"
sed -i 's/, price = "REAL DEFAULT 0"//; s/fields = \["symbol", "qty", "price"\]/fields = ["symbol", "qty"]/' "$work/book.toml"
run lossy "$markd" "${common[@]}" --mkio "$work/book.toml" book book1
expect_rc "a dropped column stops markd with exit 78" 78
expect_in "the column and its impact are listed" "$err" "dropped column price"
expect_in "the way forward is named" "$err" "--migrate"
start_book markd3 --migrate
run after "${MK[@]}" get book.orders_new --ref "$ref1"
expect_match "the data survived the migration" "$out" "committed ref $ref1"

finish "collections"
