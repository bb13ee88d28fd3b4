#!/usr/bin/env bash
# Interop of record items (transactions, issue 10) with the Python mKTL
# reference client, unchanged: tests/interop/ref_records.py drives it against
# markd --mkio (SET of a dict and the REP's {ref, seq, time, rows}, GET of the
# last transaction and by ref, the broadcast of each commit, a top-level ref
# answered once, errors, many SETs in flight, a restart), and mk describe
# shows the same fields the reference client read from the catalog.
# Skipped (exit 77, see lib.sh) unless MKTL_REFERENCE names a checkout of
# KeckObservatory/mKTL (docs/interop.md).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_reference
cli_init test_interop_records
need_source
export MKTL_REFERENCE
driver=$SRC/tests/interop/ref_records.py
markd=$MKTL_BIN/markd
common=(--no-discovery --bind 127.0.0.1 --hostname 127.0.0.1)

# The shape ref_records.py expects: book_new writes two tables (a bind from
# the first op's RETURNING row), book_fill updates, note is an unnamed op set.
cat >"$work/book.toml" <<'EOF'
batch_max_wait_ms = 1.0

[tables.orders]
columns = { id = "INTEGER PRIMARY KEY AUTOINCREMENT", symbol = "TEXT NOT NULL", qty = "INTEGER NOT NULL", price = "REAL DEFAULT 0", status = "TEXT DEFAULT 'new'" }

[tables.audit]
columns = { id = "INTEGER PRIMARY KEY AUTOINCREMENT", order_id = "INTEGER NOT NULL", event = "TEXT" }

[services.book]
protocol = "transaction"
description = "Order entry"

[services.book.ops]
new = [
  { table = "orders", op_type = "insert", fields = ["symbol", "qty", "price"] },
  { table = "audit", op_type = "insert", defaults = { event = "new" }, bind = { order_id = "$0.id" } },
]
fill = [
  { table = "orders", op_type = "update", key = ["id"], fields = ["status"], defaults = { status = "filled" } },
]

[services.note]
type = "transaction"
table = "orders"
op_type = "insert"
fields = ["symbol", "qty"]
EOF

start_book() {  # NAME: markd serving book.toml; sets $pid and $port
  start --first "$1" '^markd: book book1 ready rep=([0-9]+)' "$markd" "${common[@]}" --mkio "$work/book.toml" book book1
  exec {fd}<&-
  port=${BASH_REMATCH[1]}
}

# drive NAME [ARGS]: the driver against markd; its transcript in $work/NAME.out.
drive() {
  local name=$1; shift
  mkdir -p "$work/py-$name"
  rc=0
  MKTL_HOME=$work/py-$name timeout 150 $PY "$driver" 127.0.0.1 "$port" book "$@" \
    >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  [ $rc -eq 0 ] || fail "ref_records.py $* exited $rc: $(tail -5 "$work/$name.err")"
}

# judge TRANSCRIPT: compares every step with the expectations on stdin (a
# Python dict literal {step: result}); a step missing from them is a failure.
judge() {
  $PY - "$1" "$(cat)" <<'EOF'
import ast, json, sys
got = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    got[j['step']] = j['result']
expected = ast.literal_eval(sys.argv[2])
bad = 0
for step in sorted(set(got) | set(expected)):
    if got.get(step, 'missing') != expected.get(step, 'unexpected'):
        print('FAIL: %s: got %r, want %r' % (step, got.get(step, 'missing'), expected.get(step, 'unexpected')),
              file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
EOF
}

start_book markd1

# ---- mk describe shows the fields --------------------------------------------------
MK=("$MKTL_BIN/mk" --connect "tcp://127.0.0.1:$port")
run describe "${MK[@]}" describe book.book_new
expect_rc "mk describe book.book_new" 0
if $PY -c '
import json, sys
d = json.load(sys.stdin)["book.book_new"]
assert d["type"] == "record" and d["settable"] is True, d
assert d["fields"] == {"event": {"default": "new", "required": False, "type": "TEXT"},
                       "price": {"default": 0, "required": False, "type": "REAL"},
                       "qty": {"required": True, "type": "INTEGER"},
                       "symbol": {"required": True, "type": "TEXT"}}, d["fields"]
assert d["ops"][1]["bind"] == {"order_id": "$0.id"}, d["ops"]
' <<<"$out"; then pass "mk describe shows the record type, the fields and the bind"; else fail "mk describe: $out"; fi
run describe_fill "${MK[@]}" describe book.book_fill
expect_in "mk describe shows an update's key field" "$out" '"key": true'

# ---- the reference client --------------------------------------------------------
drive client
if judge "$work/client.out" <<'EOF'; then pass "the reference client's transactions"; else fail "the reference client's transactions"; fi
{
    'catalog.records': {
        'book_new': {'type': 'record', 'settable': True, 'description': 'Order entry',
                     'auto': ['id', 'status', 'order_id'],
                     'fields': {'event': {'default': 'new', 'required': False, 'type': 'TEXT'},
                                'price': {'default': 0, 'required': False, 'type': 'REAL'},
                                'qty': {'required': True, 'type': 'INTEGER'},
                                'symbol': {'required': True, 'type': 'TEXT'}}},
        'book_fill': {'type': 'record', 'settable': True, 'description': 'Order entry', 'auto': [],
                      'fields': {'id': {'key': True, 'required': True, 'type': 'INTEGER'},
                                 'status': {'default': 'filled', 'required': False, 'type': 'TEXT'}}},
        'note': {'type': 'record', 'settable': True, 'description': '', 'auto': ['id', 'price', 'status'],
                 'fields': {'qty': {'required': True, 'type': 'INTEGER'},
                            'symbol': {'required': True, 'type': 'TEXT'}}},
    },
    'store.keys': ['book_fill', 'book_new', 'note'],
    'get.before_any': None,
    'subscribe.ready': True,
    'set.blocking': {'returned': None, 'broadcast_equals_get': True, 'get': {
        'keys': ['ref', 'rows', 'seq', 'time'], 'ref_shape': True, 'seq_is_int': True, 'time_is_number': True,
        'rows': [{'id': 1, 'price': 187.5, 'qty': 100, 'status': 'new', 'symbol': 'AAPL'},
                 {'event': 'new', 'id': 1, 'order_id': 1}]}},
    'set.reply': {
        'keys': ['ref', 'rows', 'seq', 'time'], 'ref_shape': True, 'seq_is_int': True, 'time_is_number': True,
        'rows': [{'id': 2, 'price': 0, 'qty': 10, 'status': 'new', 'symbol': 'MSFT'},
                 {'event': 'new', 'id': 2, 'order_id': 2}],
        'top_level_ref_equal': True, 'top_level_seq_equal': True, 'seq_after_previous': True,
        'broadcast_equals_reply': True, 'get_equals_reply': True},
    'get.ref': {'status': 'committed', 'same_as_reply': {'ref': True, 'rows': True, 'seq': True}},
    'get.ref_unknown': {'ref': 'no such ref', 'status': 'unknown'},
    'get.ref_not_string': {'remote_error': {'type': 'TypeError', 'text': 'ref must be a string'}},
    'subscribe.book_new': {'broadcast_equals_reply': [True, True, True], 'cached_is_last': True, 'get_is_last': True},
    'set.bind': {'rows': 2, 'order_id_bound': True, 'event': 'new'},
    'set.update': {'id_matches': True, 'rows': [{'id': 2, 'price': 0, 'qty': 10, 'status': 'filled', 'symbol': 'MSFT'}]},
    'set.unnamed_service': {'keys': ['ref', 'rows', 'seq', 'time'], 'ref_shape': True, 'seq_is_int': True,
                            'time_is_number': True,
                            'rows': [{'id': 7, 'price': 0, 'qty': 1, 'status': 'new', 'symbol': 'NOTE'}]},
    'set.json_text': {'keys': ['ref', 'rows', 'seq', 'time'], 'ref_shape': True, 'seq_is_int': True,
                      'time_is_number': True,
                      'rows': [{'id': 8, 'price': 0, 'qty': 2, 'status': 'new', 'symbol': 'TEXT'}]},
    'set.ref': {'ref': 'iop-ref-1', 'first_duplicate': False, 'again_duplicate': True, 'again_same_seq': True,
                'again_same_rows': True, 'status': 'committed'},
    'error.unknown_field': {'exc': 'RuntimeError', 'text': "SET of book_new failed: ValueError: unknown field 'qtty' for book_new; did you mean 'qty'? (fields: event, price, qty, symbol)"},
    'error.missing_required': {'exc': 'RuntimeError', 'text': "SET of book_new failed: ValueError: missing field 'qty' for book_new (orders.qty is NOT NULL without a default)"},
    'error.not_an_object': {'exc': 'RuntimeError', 'text': "SET of book_new failed: TypeError: a transaction's value is a JSON object of fields (book_new), got 5"},
    'error.no_row': {'exc': 'RuntimeError', 'text': "SET of book_fill failed: ValueError: book_fill: the update of orders matched no row (id = 999999)"},
    'error.constraint': {'exc': 'RuntimeError', 'text': "SET of note failed: ValueError: note: insert of orders: NOT NULL constraint failed: orders.symbol"},
    'set.in_flight': {'answered': 40, 'distinct_seqs': 40, 'own_rows': True, 'committed': 40},
    'done': True,
}
EOF

# ---- after a restart on the same database ------------------------------------------
stop "$pid"
expect_rc "markd stops on SIGTERM" 0
start_book markd2
drive restart --after-restart
if judge "$work/restart.out" <<'EOF'; then pass "a restart keeps GET by ref and the last transaction"; else fail "after a restart"; fi
{
    'after_restart.get_ref': {'ref': 'iop-ref-1', 'status': 'committed',
                              'rows': [{'id': 9, 'price': 0, 'qty': 1, 'status': 'new', 'symbol': 'ONCE'}]},
    'after_restart.get_last': 'C40',
    'done': True,
}
EOF

finish interop_records
