#!/usr/bin/python3
"""Drives the Python mKTL reference *client*, unchanged, against the
collection items (subpub, query and stream services) of a markd serving
tables and services, and prints a transcript, one JSON object per line:
{"step": NAME, "result": ...}. tests/cli/test_interop_collections.sh starts
markd with the configuration this script expects (tables stock and log; the
transaction services put, drop, restock, clear and note; the collections
stock (keyed), all (query) and feed (stream)) and judges the transcript.

What is checked: the reference client subscribes to each collection item
with its ordinary Item.register(callback); the transactions (SETs of the
record items through the same client) change rows; every change reaches the
callback once, in order, as one self-contained row (a dict of the row's
fields) that is the item's value; a GET of the collection item gives the last
changed row. Results are deterministic: times appear only as facts.

Usage: ref_collections.py HOST PORT STORE
Environment: MKTL_REFERENCE (a checkout of KeckObservatory/mKTL), MKTL_HOME
(an empty directory: the reference client's cache goes there).
"""

import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.environ['MKTL_REFERENCE'], 'src'))

import mktl  # noqa: E402
from mktl import protocol  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import local_broadcast  # noqa: E402,F401  (the reference's discovery stays on this machine)

HOST, PORT, STORE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
protocol.request.Client.timeout = float(os.environ.get('MKTL_INTEROP_ACK_TIMEOUT', '1.0'))
WAIT = 10.0  # seconds to wait for the broadcasts
COLLECTIONS = ('stock', 'all', 'feed')


def emit(step, result):
    print(json.dumps({'step': step, 'result': result}, sort_keys=True), flush=True)


def step(name, work):
    try:
        emit(name, work())
    except Exception as exc:  # the transcript records it; the shell test judges
        emit(name, {'exc': type(exc).__name__, 'text': str(exc)})


def raw_get(key):
    """A GET without payload through the reference's protocol layer."""
    reply = protocol.request.send(HOST, PORT, protocol.message.Request('GET', STORE + '.' + key))
    error = getattr(reply, 'error', None)
    if error:
        return {'remote_error': {'type': error['type'], 'text': error['text']}}
    return reply.value


# ---- the catalog, and the client's store from its cache -------------------------

reply = protocol.request.send(HOST, PORT, protocol.message.Request('GET', STORE + '._catalog'))
uuid, block = next(iter(reply.value.items()))
step('catalog.collections', lambda: {key: {'type': block['items'][key].get('type'),
                                           'settable': block['items'][key].get('settable'),
                                           'kind': (block['items'][key].get('collection') or {}).get('kind')}
                                     for key in COLLECTIONS})

directory = os.path.join(mktl.meta.directory(), 'client', 'cache', STORE)
os.makedirs(directory, exist_ok=True)
with open(os.path.join(directory, uuid + '.json'), 'w') as f:
    json.dump(block, f)
store = mktl.get(STORE)

# ---- subscribe: the reference's callbacks, one list per collection --------------

heard = {key: [] for key in COLLECTIONS}  # (value, timestamp) per callback
arrived = threading.Condition()


def collector(key):
    def collect(item, value, timestamp):
        with arrived:
            heard[key].append((value, timestamp))
            arrived.notify_all()
    return collect


# The reference holds callbacks weakly: keep them referenced.
callbacks = {key: collector(key) for key in COLLECTIONS}
for key in COLLECTIONS:
    store[key].register(callbacks[key])

# One SUB socket subscribes in order: a heartbeat subscribed after the
# collections arriving means their subscriptions are in place at markd.
heartbeat = threading.Event()


def beat(item, value, timestamp):
    heartbeat.set()


store['_' + block['alias'] + 'clk'].register(beat)
step('subscribe.ready', lambda: heartbeat.wait(WAIT))

# register() primes each item with a GET, whose reply reaches the callback
# too unless it is null: before any change there is no callback.
with arrived:
    step('subscribe.primed', lambda: {key: [v for v, _ in heard[key]] for key in COLLECTIONS})
    for key in COLLECTIONS:
        heard[key].clear()

# ---- the changes ------------------------------------------------------------------


def transactions():
    """Each change through the reference client's blocking SET of a record item."""
    store['put'].set({'sku': 'A', 'qty': 5})
    store['put'].set({'sku': 'B', 'qty': 20, 'shelf': 'top'})
    store['restock'].set({'sku': 'C', 'qty': 7})        # a stock row and a log row (text bound to the sku)
    store['note'].set({'text': 'hello'})
    store['put'].set({'sku': 'A', 'qty': 6})            # the upsert updates
    store['clear'].set({'shelf': 'low', 'qty': 0})      # one transaction, two rows changed (A and C)
    store['drop'].set({'sku': 'B'})                     # a delete: the last row known
    store['note'].set({'text': 'bye'})
    store['put'].set({'sku': 'Z', 'qty': 1})            # the last one
    return True


step('transactions', transactions)

# The last change of each collection; once it has arrived every earlier one
# has too (callbacks run in order on the item's own thread).
LAST = {'stock': {'sku': 'Z', 'qty': 1, 'shelf': 'low'}, 'all': {'sku': 'Z', 'qty': 1, 'shelf': 'low'},
        'feed': {'id': 3, 'text': 'bye'}}


def ordered(values):
    """The rows as received, except that the two rows one transaction changed
    (the 'clear' of shelf low, A and C) are put in sku order: one transaction's
    changes carry one seq range, their order among themselves is not the test."""
    out = list(values)
    for i in range(len(out) - 1):
        pair = out[i:i + 2]
        if all(isinstance(v, dict) and v.get('qty') == 0 and v.get('shelf') == 'low' for v in pair):
            out[i:i + 2] = sorted(pair, key=lambda v: v['sku'])
            break
    return out


def callbacks_of(key):
    def run():
        with arrived:
            got = arrived.wait_for(lambda: any(v == LAST[key] for v, _ in heard[key]), WAIT)
            values = [v for v, _ in heard[key]]
            times = [t for _, t in heard[key]]
        return {'arrived': bool(got), 'rows': ordered(values),
                'times_are_numbers': all(isinstance(t, (int, float)) for t in times),
                'times_in_order': times == sorted(times)}
    return run


for key in COLLECTIONS:
    step('callbacks.' + key, callbacks_of(key))

# ---- the item's value: the last changed row --------------------------------------

for key in COLLECTIONS:
    step('get.' + key, lambda key=key: {
        'cached': store[key].get(),               # the client's value (subscribed: the last broadcast)
        'refresh': store[key].get(refresh=True),  # a GET {refresh: true} to markd
        'plain': raw_get(key),                    # a GET without payload
    })

emit('done', True)
sys.stdout.flush()
os._exit(0)  # the reference's background threads never end on their own
