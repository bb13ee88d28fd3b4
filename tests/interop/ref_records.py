#!/usr/bin/python3
"""Drives the Python mKTL reference *client*, unchanged, against the record
items (transactions) of a markd serving tables and services, and prints a
transcript, one JSON object per line: {"step": NAME, "result": ...}.
tests/cli/test_interop_records.sh starts markd with the configuration this
script expects (tables orders and audit; services book, with named op sets
new and fill, and note, an unnamed one) and judges the transcript.

Results are deterministic: refs, times and sequence numbers appear only as
facts about them (a string, equal to the REP's, larger than the last).

What the reference client offers here:
- Item.set(dict) sends the dict as the value and returns None (a blocking
  set has no return value); Item.set(dict, wait=False) returns the Request,
  whose wait() returns the REP message: its payload carries the REP value
  {ref, seq, time, rows}.
- Item.get() sends no payload beyond {refresh}: a GET by ref, and a SET with
  a top-level ref, go through the reference's protocol layer
  (protocol.message.Request with a Payload holding the extra member).

Usage: ref_records.py HOST PORT STORE [--after-restart]
With --after-restart (markd restarted on the same database after a full
run): only what a restart must keep, a GET by ref and the last transaction.
Environment: MKTL_REFERENCE (a checkout of KeckObservatory/mKTL), MKTL_HOME
(an empty directory: the reference client's cache goes there).
"""

import json
import os
import re
import sys
import threading

sys.path.insert(0, os.path.join(os.environ['MKTL_REFERENCE'], 'src'))

import mktl  # noqa: E402
from mktl import protocol  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import local_broadcast  # noqa: E402,F401  (the reference's discovery stays on this machine)

HOST, PORT, STORE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
AFTER_RESTART = sys.argv[4:] == ['--after-restart']
# As ref_client.py: a loaded machine can miss the reference's 100 ms ACK timeout.
protocol.request.Client.timeout = float(os.environ.get('MKTL_INTEROP_ACK_TIMEOUT', '1.0'))
WAIT = 10.0  # seconds to wait for a REP or a broadcast
REF = re.compile(r'^\d{8} \d{2}:\d{2}:\d{2}\.\d+$')  # the shape of a ref markd makes


def emit(step, result):
    print(json.dumps({'step': step, 'result': result}, sort_keys=True), flush=True)


def failure(exc):
    return {'exc': type(exc).__name__, 'text': str(exc)}


def step(name, work):
    try:
        emit(name, work())
    except Exception as exc:  # the transcript records it; the shell test judges
        emit(name, failure(exc))


def raw(type, key, **payload):
    """One request through the reference's protocol layer; the REP payload's
    value, or {'remote_error': ...}."""
    request = protocol.message.Request(type, STORE + '.' + key, protocol.message.Payload(**payload) if payload else None)
    reply = protocol.request.send(HOST, PORT, request)
    error = getattr(reply, 'error', None)
    if error:
        return {'remote_error': {'type': error['type'], 'text': error['text']}}
    return reply.value


def committed_shape(value):
    """Facts about a transaction result {ref, seq, time, rows}."""
    return {
        'keys': sorted(value),
        'ref_shape': bool(REF.match(value.get('ref', ''))),
        'seq_is_int': isinstance(value.get('seq'), int) and not isinstance(value.get('seq'), bool),
        'time_is_number': isinstance(value.get('time'), (int, float)),
        'rows': value.get('rows'),
    }


def set_reply(item, value):
    """Item.set(value, wait=False): the REP message's payload."""
    request = item.set(value, wait=False)
    response = request.wait(WAIT)
    if response is None:
        raise RuntimeError('no REP within %s s' % WAIT)
    return response.payload


# ---- the catalog: record items as the reference sees them -------------------

reply = protocol.request.send(HOST, PORT, protocol.message.Request('GET', STORE + '._catalog'))
blocks = reply.value
uuid, block = next(iter(blocks.items()))


def descriptions():
    return {key: {k: block['items'][key].get(k) for k in ('type', 'settable', 'fields', 'auto', 'description')}
            for key in ('book_new', 'book_fill', 'note')}


if AFTER_RESTART:
    step('after_restart.get_ref', lambda: {k: v for k, v in raw('GET', 'note', ref='iop-ref-1').items()
                                           if k in ('ref', 'status', 'rows')})
    step('after_restart.get_last', lambda: raw('GET', 'note')['rows'][0]['symbol'])
    emit('done', True)
    sys.stdout.flush()
    os._exit(0)

step('catalog.records', descriptions)

# The reference client finds the store in its cache (no registry, no discovery here).
directory = os.path.join(mktl.meta.directory(), 'client', 'cache', STORE)
os.makedirs(directory, exist_ok=True)
with open(os.path.join(directory, uuid + '.json'), 'w') as f:
    json.dump(block, f)
store = mktl.get(STORE)
step('store.keys', lambda: sorted(k for k in store.keys() if not k.startswith('_')))
step('get.before_any', lambda: store['note'].get(refresh=True))

# ---- SET of a dict, as a plain client does it --------------------------------

# Every broadcast of book_new, from before its first transaction. A GET of the
# item is compared with a REP only once that REP's broadcast has arrived: the
# reference's Item keeps whichever came last, a GET reply or a broadcast
# (its callbacks run on another thread), so a GET right after a REP can meet
# an older broadcast still in that thread's queue. (The callbacks also see
# GET replies: each wait below comes before any GET of the value it awaits.)
broadcasts = []
arrived = threading.Condition()


def collect(item, value, timestamp):
    with arrived:
        broadcasts.append(value)
        arrived.notify_all()


store['book_new'].register(collect)  # held weakly by the reference: `collect` is a global

# A subscription takes effect at the daemon a little after it is made (the
# reference has one SUB socket per daemon, subscribing in order): once a
# heartbeat subscribed after book_new arrives, book_new's is in place too.
heartbeat = threading.Event()


def beat(item, value, timestamp):
    heartbeat.set()


store['_' + block['alias'] + 'clk'].register(beat)
step('subscribe.ready', lambda: heartbeat.wait(WAIT))


def broadcast_of(predicate):
    """The first broadcast of book_new matching predicate (None after WAIT)."""
    def found():
        return next((v for v in broadcasts if isinstance(v, dict) and predicate(v)), None)
    with arrived:
        arrived.wait_for(lambda: found() is not None, WAIT)
        return found()


last = {}


def blocking_set():
    item = store['book_new']
    returned = item.set({'symbol': 'AAPL', 'qty': 100, 'price': 187.5})
    heard = broadcast_of(lambda v: v['rows'][0]['symbol'] == 'AAPL')
    value = item.get(refresh=True)
    last['seq'] = value['seq']
    return {'returned': returned, 'get': committed_shape(value), 'broadcast_equals_get': heard == value}


step('set.blocking', blocking_set)


def reply_value():
    payload = set_reply(store['book_new'], {'symbol': 'MSFT', 'qty': 10})
    value = payload.value
    seq = value['seq']
    out = committed_shape(value)
    out['top_level_ref_equal'] = getattr(payload, 'ref', None) == value['ref']
    out['top_level_seq_equal'] = getattr(payload, 'seq', None) == seq
    out['seq_after_previous'] = seq > last['seq']
    out['broadcast_equals_reply'] = broadcast_of(lambda v: v['ref'] == value['ref']) == value
    out['get_equals_reply'] = store['book_new'].get(refresh=True) == value
    last['value'] = value
    return out


step('set.reply', reply_value)


def get_by_ref():
    value = last['value']
    got = raw('GET', 'book_new', ref=value['ref'])
    return {'status': got.get('status'), 'same_as_reply': {k: got.get(k) == value[k] for k in ('ref', 'seq', 'rows')}}


step('get.ref', get_by_ref)
step('get.ref_unknown', lambda: {k: v for k, v in raw('GET', 'book_new', ref='no such ref').items() if k != 'text'})
step('get.ref_not_string', lambda: raw('GET', 'book_new', ref=5))


# ---- broadcasts: each committed transaction, on the item's topic --------------

def subscribe():
    """Three transactions: each REP's value is broadcast, and the item's value
    (the reference's cache, and a GET) is the last of them."""
    item = store['book_new']
    replies = [set_reply(item, {'symbol': s, 'qty': q}).value for s, q in (('IBM', 1), ('GOOG', 2), ('AMZN', 3))]
    heard = [broadcast_of(lambda v, r=r: v['ref'] == r['ref']) for r in replies]
    return {
        'broadcast_equals_reply': [h == r for h, r in zip(heard, replies)],
        'cached_is_last': item.get() == replies[-1],
        'get_is_last': raw('GET', 'book_new') == replies[-1],
    }


step('subscribe.book_new', subscribe)


# ---- more than one op: bind from an earlier op's RETURNING row -----------------

def bound():
    value = set_reply(store['book_new'], {'symbol': 'TSLA', 'qty': 7, 'price': 250.0}).value
    rows = value['rows']
    return {'rows': len(rows), 'order_id_bound': rows[1].get('order_id') == rows[0].get('id'),
            'event': rows[1].get('event')}


# The config's book_new also writes the audit table (order_id = $0.id).
step('set.bind', bound)


def fill():
    order = last['value']['rows'][0]['id']
    value = set_reply(store['book_fill'], {'id': order}).value
    return {'rows': value['rows'], 'id_matches': value['rows'][0]['id'] == order}


step('set.update', fill)
step('set.unnamed_service', lambda: committed_shape(set_reply(store['note'], {'symbol': 'NOTE', 'qty': 1}).value))
# A value given as JSON text (what a formatted set of a string sends) is read as the object.
step('set.json_text', lambda: committed_shape(set_reply(store['note'], '{"symbol": "TEXT", "qty": 2}').value))


# ---- a top-level ref: the same ref is answered once --------------------------

def with_ref():
    first = raw('SET', 'note', value={'symbol': 'ONCE', 'qty': 1}, ref='iop-ref-1')
    again = raw('SET', 'note', value={'symbol': 'ONCE', 'qty': 1}, ref='iop-ref-1')
    status = raw('GET', 'note', ref='iop-ref-1')
    return {'ref': first['ref'], 'first_duplicate': first.get('duplicate', False),
            'again_duplicate': again.get('duplicate', False), 'again_same_seq': again['seq'] == first['seq'],
            'again_same_rows': again['rows'] == first['rows'], 'status': status['status']}


step('set.ref', with_ref)


# ---- errors: the reference client raises RuntimeError("SET of KEY failed: TYPE: TEXT")

def set_error(key, value):
    def run():
        store[key].set(value)
        return 'no error'
    return run


step('error.unknown_field', set_error('book_new', {'symbol': 'AAPL', 'qtty': 1}))
step('error.missing_required', set_error('book_new', {'symbol': 'AAPL'}))
step('error.not_an_object', set_error('book_new', 5))
step('error.no_row', set_error('book_fill', {'id': 999999}))
step('error.constraint', set_error('note', {'symbol': None, 'qty': 1}))


# ---- many in flight: batched, each answered with its own result --------------

def concurrent():
    item = store['note']
    requests = [item.set({'symbol': 'C%d' % i, 'qty': i}, wait=False) for i in range(1, 41)]
    values = []
    for request in requests:
        response = request.wait(WAIT)
        values.append(response.payload.value if response is not None else None)
    answered = [v for v in values if isinstance(v, dict) and 'seq' in v]
    committed = [raw('GET', 'note', ref=v['ref']).get('status') for v in answered]
    return {
        'answered': len(answered),
        'distinct_seqs': len({v['seq'] for v in answered}),
        'own_rows': all(v['rows'][0]['qty'] == i + 1 for i, v in enumerate(values) if v),
        'committed': committed.count('committed'),
    }


step('set.in_flight', concurrent)

emit('done', True)
sys.stdout.flush()
os._exit(0)  # the reference's background threads never end on their own
