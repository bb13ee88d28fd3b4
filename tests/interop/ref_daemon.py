"""A reference (Python) daemon serving tests/interop/items.json with the same
custom item as the C++ side of tests/unit/test_interop.cpp: `limit` rejects
values of 100 and more from its validate hook. Run by the reference's mkd:

    PYTHONPATH=$MKTL_REFERENCE/src:tests/interop \
        mkd interop interop1 -c tests/interop/items.json -m ref_daemon -s InteropDaemon
"""

import mktl
import local_broadcast  # noqa: F401  (the reference's discovery stays on this machine)


class Limit(mktl.Item):
    def validate(self, value):
        if value >= 100:
            raise ValueError('limit must be below 100')
        return value


class InteropDaemon(mktl.Daemon):
    def setup(self):
        self.add_item(Limit, 'limit')
