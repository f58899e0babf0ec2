# -*- coding: utf-8 -*-
"""A network model from module-style options, with defaults for tests."""
from __future__ import annotations

from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.parse import spec_from_options


def network_spec(name='a', bridge='br-a', mode='nat', **kwargs):
    params = dict(name=name, bridge=bridge, forward_mode=mode, forward_dev=None, ipv4={'address': '10.1.0.1/24'},
                  ipv6=None, ipv6_no_gateway=None, nat=None, dns=None, zone=None)
    params.update(kwargs)
    return spec_from_options(params)
