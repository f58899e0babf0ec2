# -*- coding: utf-8 -*-
"""Shared helpers of the nftables NIC-filter kernel tests."""

from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.bindings import make_binding
from ansible_collections.hypervisor.netfilter.tests.lib.netns import can_create_namespaces, missing_tools


def require_kernel():
    ok, reason = can_create_namespaces()
    if not ok:
        pytest.skip(reason)
    missing = missing_tools('nft', 'ebtables-nft-restore', 'iptables-nft-restore', 'iptables-nft-save')
    if missing:
        pytest.skip('missing tools: %s (apt-get install nftables iptables ebtables)' % ', '.join(missing))


def binding(index, filter_name='clean-traffic', ips=None):
    return make_binding('vnet%d' % index, '52:54:00:00:01:%02x' % index, filter_name,
                        {'IP': ips or ['10.1.0.%d' % index]})
