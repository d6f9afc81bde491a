"""Run the `virtue` command with a full disk simulated under $VIRTUE_TEST_FULL_DIR: every file opened there
for writing raises ENOSPC on write (what a full file system does), everything else behaves normally."""

from __future__ import annotations

import builtins
import errno
import os
import runpy
import sys

FULL = os.path.realpath(os.environ["VIRTUE_TEST_FULL_DIR"])
_open = builtins.open


class FullFile:
    def __init__(self, f):
        self._f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def full_open(file, mode="r", *args, **kwargs):
    f = _open(file, mode, *args, **kwargs)
    writing = any(c in mode for c in "wax+")
    if writing and isinstance(file, str | os.PathLike) and os.path.realpath(file).startswith(FULL + os.sep):
        return FullFile(f)
    return f


builtins.open = full_open
sys.argv = ["virtue", *sys.argv[1:]]
runpy.run_module("virtue.cli.main", run_name="__main__")
