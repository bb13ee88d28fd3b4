#!/usr/bin/python3
"""Runs one of the Python reference's programs (sbin/mkd, bin/mk) for
mktl_bench, with its UDP discovery kept on this machine.

Usage: reference_run.py HOME PROGRAM [ARGUMENTS...]

HOME becomes $MKTL_HOME (the program's catalog cache and port files); PROGRAM
is relative to the checkout named by $MKTL_REFERENCE. The reference's src/,
this directory (for reference_daemon.py) and tests/interop/ (for
local_broadcast.py) go on the module path, for the program and for any
Python child it starts (mkd starts mkpersistd). The program then runs in
this process, as if started directly.
"""

import os
import runpy
import sys

if len(sys.argv) < 3:
    sys.exit(__doc__)

reference = os.environ['MKTL_REFERENCE']
here = os.path.dirname(os.path.abspath(__file__))
paths = [os.path.join(reference, 'src'), here, os.path.join(here, '..', 'tests', 'interop')]

os.environ['MKTL_HOME'] = sys.argv[1]
os.environ['PYTHONPATH'] = os.pathsep.join(paths + [p for p in [os.environ.get('PYTHONPATH')] if p])
sys.path[:0] = paths

import local_broadcast  # noqa: E402,F401  (the reference's discovery stays on this machine)

# mkd's mkpersistd inherits our standard input and exits when it ends: make
# it a pipe that ends with this process (its write end is not inherited),
# whatever mktl_bench's own standard input is.
read_end, write_end = os.pipe()
os.dup2(read_end, 0)
os.close(read_end)

program = os.path.join(reference, sys.argv[2])
# mkd finds mkpersistd next to sys.argv[0].
sys.argv = [program] + sys.argv[3:]
runpy.run_path(program, run_name='__main__')
