"""Imported by Python at start-up in every process whose PYTHONPATH holds this
directory: the interop tests and the benchmarks put it there for the
reference's programs (mkd, mk, mkregistryd, and the mkpersistd that mkd
starts by itself), so that none of them can broadcast off this machine, even
a program we do not start ourselves.
"""

try:
    import local_broadcast  # noqa: F401  (needs the reference's src/ on the path too)
except ImportError:
    pass
