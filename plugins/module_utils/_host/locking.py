# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our own lock around read-diff-apply, so two runs on one host cannot interleave.

The xtables lock (``-w``) only covers one ``*-restore`` call; a second run could
still read the live state between our read and our write.  This lock is an
``fcntl.flock`` on ``<state_dir>/.lock``: exclusive for runs that write,
shared for check-mode runs (which never create the file or the directory).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError

LOCK_NAME = '.lock'


class LockTimeout(NetfilterError):
    """Another run held the lock for longer than we were willing to wait."""


@contextlib.contextmanager
def state_lock(state_dir, timeout=60.0, exclusive=True, create=True):
    """Hold the state_dir lock; yields the lock file path (None if none was taken).

    With ``create=False`` (check mode) a missing state_dir/lock file means
    there is nothing to serialise against on the file level and no lock is taken.
    """
    path = os.path.join(state_dir, LOCK_NAME)
    if create:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    else:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                yield None
                return
            raise
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockTimeout('another run holds %s; gave up after %.0f s' % (path, timeout)) from exc
                time.sleep(0.05)
        yield path
    finally:
        os.close(fd)  # closing releases the flock
