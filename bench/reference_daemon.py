"""The daemon side of mktl_bench's reference section: a Python reference
daemon module, loaded by the reference's mkd through bench/reference_run.py.

    reference_run.py HOME sbin/mkd refbench refbench1 -c bench/reference_items.json \
        -m reference_daemon -s BenchDaemon

With bench/reference_items.json it serves the items the benchmark measures
(see that file); with any other catalog (the 10,000-item start-up run) only
plain items. Prints "reference_daemon ready rep=PORT pub=PORT" from
setup_final(), once every item holds its initial value.
"""

import threading

import mktl


class Burst(mktl.Item):
    """A SET of N publishes N new values of bcast, as fast as the daemon takes them."""

    sequence = 0

    def perform_set(self, new_value):
        target = self.store['bcast']
        for _ in range(int(new_value)):
            # A 60-character string keeps the broadcast at about 100 bytes,
            # as in bench/bench_daemon.cpp.
            Burst.sequence += 1
            target.publish('%060d' % Burst.sequence)


def serialise_publish(server):
    """The reference's publish.Server.publish() sends a wake-up on one ZeroMQ
    PAIR socket from whichever thread calls it; the built-in items' pollers
    (once a second) and a request thread publishing a burst then use that
    socket at the same time, and the daemon hangs within seconds (a SET that
    never gets its REP). Calls are serialised here so that the burst can be
    measured; an uncontended lock costs far less than one publish()."""
    lock = threading.Lock()
    publish = server.publish

    def locked(message):
        with lock:
            publish(message)

    server.publish = locked


class BenchDaemon(mktl.Daemon):
    def setup(self):
        serialise_publish(self.pub)
        if 'burst' in self.catalog.authoritative_items:
            self.add_item(Burst, 'burst')

    def setup_final(self):
        print('reference_daemon ready rep=%d pub=%d' % (self.rep.port, self.pub.port), flush=True)
