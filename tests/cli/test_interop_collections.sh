#!/usr/bin/env bash
# Interop of collection items (issue 11) with the Python mKTL reference client,
# unchanged: tests/interop/ref_collections.py subscribes it (Item.register) to
# a keyed (subpub), a table (query) and a stream collection of markd --mkio,
# runs transactions through its SET of the record items, and reports what its
# callbacks got: each change once, in order, as one self-contained row that is
# the item's value; a GET of the collection item gives the last changed row.
# Skipped (exit 77, see lib.sh) unless MKTL_REFERENCE names a checkout of
# KeckObservatory/mKTL (docs/interop.md).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_reference
cli_init test_interop_collections
need_source
export MKTL_REFERENCE
markd=$MKTL_BIN/markd
common=(--no-discovery --bind 127.0.0.1 --hostname 127.0.0.1)

# The shape ref_collections.py expects.
cat >"$work/shop.toml" <<'EOF'
batch_max_wait_ms = 1.0

[tables.stock]
columns = { sku = "TEXT PRIMARY KEY", qty = "INTEGER NOT NULL", shelf = "TEXT NOT NULL DEFAULT 'low'" }

[tables.log]
columns = { id = "INTEGER PRIMARY KEY AUTOINCREMENT", text = "TEXT NOT NULL" }

[services.put]
protocol = "transaction"
table = "stock"
op_type = "upsert"
key = ["sku"]
fields = ["sku", "qty", "shelf"]

[services.drop]
protocol = "transaction"
table = "stock"
op_type = "delete"
key = ["sku"]

[services.clear]
protocol = "transaction"
table = "stock"
op_type = "update"
key = ["shelf"]
fields = ["qty"]

[services.restock]
protocol = "transaction"
ops = [
  { table = "stock", op_type = "upsert", key = ["sku"], fields = ["sku", "qty"] },
  { table = "log", op_type = "insert", bind = { text = "$0.sku" } },
]

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

[services.feed]
protocol = "stream"
primary_table = "log"
EOF

start --first markd '^markd: shop shop1 ready rep=([0-9]+)' "$markd" "${common[@]}" --mkio "$work/shop.toml" shop shop1
exec {fd}<&-
port=${BASH_REMATCH[1]}

mkdir -p "$work/py"
rc=0
MKTL_HOME=$work/py timeout 60 $PY "$SRC/tests/interop/ref_collections.py" 127.0.0.1 "$port" shop \
  >"$work/client.out" 2>"$work/client.err" || rc=$?
[ $rc -eq 0 ] || fail "ref_collections.py exited $rc: $(tail -5 "$work/client.err")"

# Every step against the expectations (a Python dict literal {step: result});
# a step missing from either side is a failure.
if $PY - "$work/client.out" <<'EOF'; then pass "the reference client's callbacks and GETs of collection items"; else fail "the reference client on collection items"; fi
import json, sys
got = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    got[j['step']] = j['result']

def row(sku, qty, shelf='low'):
    return {'sku': sku, 'qty': qty, 'shelf': shelf}

stock_rows = [row('A', 5), row('B', 20, 'top'), row('C', 7), row('A', 6),
              row('A', 0), row('C', 0),     # one transaction, two rows
              row('B', 20, 'top'),          # the delete: the last row known
              row('Z', 1)]
feed_rows = [{'id': 1, 'text': 'C'}, {'id': 2, 'text': 'hello'}, {'id': 3, 'text': 'bye'}]
facts = {'arrived': True, 'times_are_numbers': True, 'times_in_order': True}
expected = {
    'catalog.collections': {'stock': {'type': 'collection', 'settable': False, 'kind': 'keyed'},
                            'all': {'type': 'collection', 'settable': False, 'kind': 'table'},
                            'feed': {'type': 'collection', 'settable': False, 'kind': 'stream'}},
    'subscribe.ready': True,
    'subscribe.primed': {'stock': [], 'all': [], 'feed': []},
    'transactions': True,
    'callbacks.stock': dict(facts, rows=stock_rows),
    'callbacks.all': dict(facts, rows=stock_rows),
    'callbacks.feed': dict(facts, rows=feed_rows),
    'get.stock': {'cached': row('Z', 1), 'refresh': row('Z', 1), 'plain': row('Z', 1)},
    'get.all': {'cached': row('Z', 1), 'refresh': row('Z', 1), 'plain': row('Z', 1)},
    'get.feed': {'cached': feed_rows[-1], 'refresh': feed_rows[-1], 'plain': feed_rows[-1]},
    'done': True,
}
bad = 0
for step in sorted(set(got) | set(expected)):
    if got.get(step, 'missing') != expected.get(step, 'unexpected'):
        print('FAIL: %s: got %r, want %r' % (step, got.get(step, 'missing'), expected.get(step, 'unexpected')),
              file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
EOF

finish interop_collections
