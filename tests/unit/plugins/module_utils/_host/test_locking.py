# -*- coding: utf-8 -*-
"""locking.state_lock: exclusive for writers, shared for check mode, nothing created in check mode."""
from __future__ import annotations

import os
import threading
import time

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import LockTimeout, state_lock


def test_second_writer_waits_then_times_out(tmp_path):
    with state_lock(str(tmp_path), timeout=1) as path:
        assert path == os.path.join(str(tmp_path), '.lock')
        start = time.monotonic()
        with pytest.raises(LockTimeout, match='another run holds'):
            with state_lock(str(tmp_path), timeout=0.3):
                pass
        assert time.monotonic() - start >= 0.3
        # A check-mode reader cannot share with a writer either.
        with pytest.raises(LockTimeout):
            with state_lock(str(tmp_path), timeout=0.1, exclusive=False, create=False):
                pass


def test_readers_share_and_writer_waits_for_them(tmp_path):
    with state_lock(str(tmp_path)):
        pass
    with state_lock(str(tmp_path), exclusive=False, create=False):
        with state_lock(str(tmp_path), timeout=0.5, exclusive=False, create=False):
            pass
    order = []

    def writer():
        with state_lock(str(tmp_path), timeout=5):
            order.append('writer')

    with state_lock(str(tmp_path), exclusive=False, create=False):
        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.2)
        order.append('reader done')
    thread.join(5)
    assert order == ['reader done', 'writer']


def test_check_mode_creates_nothing(tmp_path):
    missing = str(tmp_path / 'nope')
    with state_lock(missing, exclusive=False, create=False) as path:
        assert path is None
    assert not os.path.exists(missing)
