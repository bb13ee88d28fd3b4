#!/usr/bin/env bash
# CLI tests of markd's tables and services: --mkio FILE (TOML or JSON),
# --catalog FILE.toml and JSON daemon configurations ({items, tables,
# services}), --check of them, exit 78 naming the file and the line of a bad
# TOML file, and the stored catalog copy of a daemon configuration.
# Loopback only, ephemeral ports, a private MKTL_HOME.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_markd_mkio
need_source

markd=$MKTL_BIN/markd
common=(--no-discovery --bind 127.0.0.1 --hostname 127.0.0.1)

cat >"$work/daemon.toml" <<'EOF'
db_path = "book.db"

[items.mode]
type = "enumerated"
enumerators = { 0 = "Off", 1 = "On" }

[tables.notes]
columns = { id = "INTEGER PRIMARY KEY", text = "TEXT NOT NULL" }

[services.note]
type = "transaction"
table = "notes"
op_type = "insert"
fields = ["text"]
EOF
printf 'port = 1\n[services.x\nprotocol = "stream"\n' >"$work/syntax.toml"

# ---- help ------------------------------------------------------------------------
run help "$markd" --help
expect_rc "--help" 0
expect_in "--help describes --mkio" "$out" "--mkio FILE"
expect_in "--help describes --migrate" "$out" "--migrate"

# ---- --check ---------------------------------------------------------------------
run mkio_toml "$markd" "${common[@]}" --check --mkio "$SRC/configs/orders.toml" book book1
expect_rc "--check --mkio of the order book (TOML)" 0
expect_in "--check reports OK" "$out" "configuration OK"
run mkio_json "$markd" "${common[@]}" --check --mkio "$SRC/configs/orders.json" book book1
expect_rc "--check --mkio of the order book (JSON)" 0
run catalog_json "$markd" "${common[@]}" --check --catalog "$SRC/configs/orders.json" book book1
expect_rc "--check --catalog of a JSON daemon configuration" 0
run catalog_toml "$markd" "${common[@]}" --check --catalog "$work/daemon.toml" book book1
expect_rc "--check --catalog of a TOML daemon configuration with items" 0
run items_and_mkio "$markd" "${common[@]}" --check --catalog "$SRC/configs/heater.json" --mkio "$SRC/configs/orders.toml" book book1
expect_rc "--check with an items catalog and --mkio" 0

# ---- configuration errors: exit 78 naming the file and the place --------------------
run syntax "$markd" "${common[@]}" --check --mkio "$work/syntax.toml" book book1
expect_rc "--mkio of a TOML syntax error" 78
expect_in "the message names the file, line and column" "$err" "$work/syntax.toml: line 2, column "
run syntax_catalog "$markd" "${common[@]}" --check --catalog "$work/syntax.toml" book book1
expect_rc "--catalog FILE.toml of a TOML syntax error" 78
expect_in "the --catalog message names the file" "$err" "$work/syntax.toml: line 2"
# A semantic error, found by the daemon's constructor: still the file and the line.
sed 's/topic = "order_id"/topic = "orderid"/' "$SRC/configs/orders.toml" >"$work/badtopic.toml"
run semantic "$markd" "${common[@]}" --check --mkio "$work/badtopic.toml" book book1
expect_rc "--check --mkio of a subpub keyed by a missing column" 78
expect_in "the message names file, line, place and fix" "$err" \
  "$work/badtopic.toml: line 56, /services/last_fill/topic: key 'orderid' is not a column of table 'fills'; did you mean 'order_id'?"
sed 's/fields = \["text"\]/fields = ["txt"]/' "$work/daemon.toml" >"$work/badfield.toml"
run semantic_catalog "$markd" "${common[@]}" --check --catalog "$work/badfield.toml" book book1
expect_rc "--check --catalog of a TOML daemon configuration with a bad field" 78
expect_in "the --catalog message names the line" "$err" "$work/badfield.toml: line 14, /services/note/fields/0: field 'txt' is not a column of table 'notes'; did you mean 'text'?"
run missing "$markd" "${common[@]}" --check --mkio "$work/none.toml" book book1
expect_rc "a missing --mkio file" 78
expect_in "the missing file is named" "$err" "$work/none.toml: cannot read the file"
run twice "$markd" "${common[@]}" --check --catalog "$work/daemon.toml" --mkio "$SRC/configs/orders.toml" book book1
expect_rc "tables and services in both --catalog and --mkio" 78
expect_in "the conflict is explained" "$err" "already declares tables and services"
run noargs "$markd" "${common[@]}" --mkio
expect_rc "--mkio without a file is a usage error" 2

# ---- the stored copy of a TOML daemon configuration -----------------------------------
try_start --first serve '^markd: book book1 ready rep=([0-9]+) pub=([0-9]+)$' \
  "$markd" "${common[@]}" --catalog "$work/daemon.toml" book book1 || true
if [[ -n ${pid:-} ]] && kill -0 "$pid" 2>/dev/null; then
  stop "$pid"
  expect_rc "markd stops on SIGTERM" 0
  stored=$MKTL_HOME/daemon/store/book/book1.json
  if python3 - "$stored" "$work/book.db" <<'EOF'; then pass "stored copy: JSON items, tables and services, db_path absolute"; else fail "stored copy $stored: $(cat "$stored" 2>&1)"; fi
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["items"]["mode"]["type"] == "enumerated", doc
assert doc["tables"]["notes"]["columns"]["text"] == "TEXT NOT NULL", doc
assert doc["services"]["note"]["fields"] == ["text"], doc
assert doc["db_path"] == sys.argv[2], doc["db_path"]
EOF
  run restored "$markd" "${common[@]}" --check book book1
  expect_rc "--check of the stored copy (no --catalog)" 0
fi

finish test_markd_mkio
