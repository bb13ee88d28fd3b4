"""Keeps the reference's UDP discovery on this machine.

The reference's discovery (mktl.protocol.discover) always broadcasts to
255.255.255.255. Importing this module (after the reference is on sys.path)
gives that module a socket class whose sendto() sends those datagrams to
$MKTL_BROADCAST (default 127.255.255.255) instead, so the interop tests never
broadcast off this machine, whatever its routes.
"""

import os
import socket
import types

from mktl.protocol import discover

LOCAL = os.environ.get('MKTL_BROADCAST') or '127.255.255.255'


class _LocalSocket(socket.socket):
    def sendto(self, data, *args):
        address = args[-1]
        if isinstance(address, tuple) and address[0] == '255.255.255.255':
            address = (LOCAL,) + tuple(address[1:])
        return super().sendto(data, *args[:-1], address)


# A copy of the socket module for discover alone: nothing else is touched.
_module = types.ModuleType('socket')
_module.__dict__.update(socket.__dict__)
_module.socket = _LocalSocket
discover.socket = _module
