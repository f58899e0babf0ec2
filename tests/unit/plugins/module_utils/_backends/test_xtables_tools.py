# -*- coding: utf-8 -*-
"""Backend (nft/legacy) resolution on this host."""
# -*- coding: utf-8 -*-
from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_tools import (
    BackendError, detect_backend, make_backend)


def test_backend_resolution_on_this_host():
    detected = detect_backend('iptables')
    assert detected in ('nft', 'legacy')
    backend = make_backend('ip', 'legacy')
    assert backend.restore_argv()[-3:] == ['--noflush', '-w', '60']
    assert make_backend('eb', 'nft').restore_argv()[-1] == '--noflush'
    with pytest.raises(BackendError, match='unknown backend'):
        make_backend('ip', 'iptables')
