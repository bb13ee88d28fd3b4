#!/usr/bin/python3
"""The client side of mktl_bench's reference section: the Python reference's
client API against a reference daemon (bench/reference_daemon.py) in another
process, running the workloads mktl_bench runs with mktl::Client.

Usage: reference_client.py HOME HOST PORT STORE [--reps N] [--duration S] [--count N]

HOME becomes $MKTL_HOME: the catalog fetched from the daemon is cached there,
so that the reference's `mk` run later with the same HOME finds it. Prints
"reference_client ready", then one line per figure and repetition,
"result series=NAME value=NUMBER", then "reference_client done".

Series: ref_get (a plain GET through protocol.request.send, what
mktl::Client::get sends), ref_get_refresh (Item.get(refresh=True), the
Item API's way to ask the daemon), ref_set (Item.set, REP awaited), ref_bcast
(broadcasts received by an Item.register callback, first to last, while the
daemon publishes --count values as fast as it can), ref_publish (the
daemon's publish calls per second in that burst) and ref_bcast_share
(percentage of the burst received).
"""

import argparse
import os
import sys
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument('home')
parser.add_argument('host')
parser.add_argument('port', type=int)
parser.add_argument('store')
parser.add_argument('--reps', type=int, default=3)
parser.add_argument('--duration', type=float, default=0.4, help='seconds per timed run')
parser.add_argument('--count', type=int, default=20000, help='broadcasts per burst')
args = parser.parse_args()

os.environ['MKTL_HOME'] = args.home
sys.path.insert(0, os.path.join(os.environ['MKTL_REFERENCE'], 'src'))
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, '..', 'tests', 'interop'))

import mktl  # noqa: E402
from mktl import protocol  # noqa: E402
import local_broadcast  # noqa: E402,F401  (the reference's discovery stays on this machine)

# The reference client gives a daemon 100 ms to ACK; a loaded shared machine
# misses that now and then. mktl_bench gives its own client the same 5 s.
protocol.request.Client.timeout = 5.0


def emit(series, value):
    print('result series=%s value=%.6g' % (series, value), flush=True)


def get_catalog():
    """Caches the store's catalog from the daemon itself, as mktl.discover()
    does with what a registry returns; mktl.get() then needs no discovery."""
    request = protocol.message.Request('GET', args.store + '._catalog')
    blocks = protocol.request.send(args.host, args.port, request).value
    catalog = mktl.meta.catalog(args.store)
    for block in blocks.values():
        catalog.update(block)


get_catalog()
store = mktl.get(args.store)
value = store['value']
bcast = store['bcast']
burst = store['burst']
full_key = args.store + '.value'


def plain_get():
    request = protocol.message.Request('GET', full_key)
    return protocol.request.send(args.host, args.port, request).value


next_value = [100.0]


def set_value():
    value.set(next_value[0])
    next_value[0] += 1


# ---- broadcasts -------------------------------------------------------------


class Counter:
    """Counts broadcasts of bcast; runs in the Item's callback thread."""

    def __init__(self):
        self.reset()
        self.marker = None
        self.marked = threading.Event()

    def reset(self):
        self.count = 0
        self.first = self.last = 0.0

    def __call__(self, item, new_value, timestamp):
        now = time.perf_counter()
        if self.marker is not None and new_value == self.marker:
            self.marked.set()
            return
        if self.count == 0:
            self.first = now
        self.last = now
        self.count += 1

    def wait(self, target, quiet):
        """Until `target` arrived, or nothing arrived for `quiet` seconds."""
        seen, changed = -1, time.perf_counter()
        while self.count < target:
            time.sleep(0.005)
            if self.count != seen:
                seen, changed = self.count, time.perf_counter()
            elif time.perf_counter() - changed > quiet:
                break


counter = Counter()
bcast.register(counter)  # held weakly by the reference: `counter` lives to the end


def sync_subscription():
    """The subscription is live once a value set after it comes back."""
    for attempt in range(250):
        counter.marker = 'sync%d' % attempt
        counter.marked.clear()
        bcast.set(counter.marker)
        if counter.marked.wait(0.05):
            counter.marker = None
            return
    sys.exit('reference_client: the subscription to bcast never became live')


def burst_run(count):
    counter.wait(float('inf'), 0.05)  # a backlog from the last run has drained
    counter.reset()
    start = time.perf_counter()
    burst.set(count)  # the REP comes once every value is published
    publish_seconds = time.perf_counter() - start
    counter.wait(count, 0.3)
    emit('ref_publish', count / publish_seconds)
    emit('ref_bcast_share', 100.0 * counter.count / count)
    if counter.count < 2:
        return 0.0
    return (counter.count - 1) / (counter.last - counter.first)


# ---- the runs ---------------------------------------------------------------

workloads = [
    ('ref_get', plain_get),
    ('ref_get_refresh', lambda: value.get(refresh=True)),
    ('ref_set', set_value),
]
for _, one in workloads:
    for _ in range(20):
        one()
sync_subscription()
print('reference_client ready', flush=True)

# As in mktl_bench: each repetition alternates short slices of every
# sequential workload, with a rotating order, so that load from elsewhere
# hits them alike.
slices = 4 if args.duration >= 0.1 else 1
for rep in range(args.reps):
    ops = {name: 0 for name, _ in workloads}
    seconds = {name: 0.0 for name, _ in workloads}
    for slice_index in range(slices):
        for k in range(len(workloads)):
            name, one = workloads[(k + slice_index) % len(workloads)]
            start = time.perf_counter()
            while True:
                for _ in range(8):
                    one()
                ops[name] += 8
                elapsed = time.perf_counter() - start
                if elapsed >= args.duration / slices:
                    break
            seconds[name] += elapsed
    for name, _ in workloads:
        emit(name, ops[name] / seconds[name])
    emit('ref_bcast', burst_run(args.count))

print('reference_client done', flush=True)
sys.stdout.flush()
os._exit(0)  # the reference's background threads never end on their own
