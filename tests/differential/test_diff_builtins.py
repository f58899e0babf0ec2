# -*- coding: utf-8 -*-
"""(a) Every built-in filter bound to its own veth, with the variables it needs:
our rules must equal libvirt's (normalisation: see oracle.py)."""

from __future__ import annotations

import pytest

import oracle as harness
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS

pytestmark = [pytest.mark.libvirt_oracle]

NAMES = sorted(BUILTIN_FILTERS)

# Variables beyond MAC (automatic) and IP/IPV6 (given to every binding).
EXTRA = {
    'allow-dhcp-server': {'DHCPSERVER': ['10.0.0.1', '10.0.0.2']},
    'allow-dhcpv6-server': {'DHCPSERVER': ['fd00::1', 'fd00::2']},
    'clean-traffic-gateway': {'GATEWAY_MAC': '52:54:00:00:00:fe'},
    # list variables expand to one rule per value
    'clean-traffic': {'IP': ['10.0.0.100', '10.0.1.100']},
    'no-ipv6-spoofing': {'IPV6': ['fd00::100', 'fd00:1::100']},
}


def builtin_bindings():
    bindings = []
    for index, name in enumerate(NAMES):
        params = {'IP': '10.0.0.%d' % (10 + index), 'IPV6': 'fd00::%x' % (10 + index)}
        params.update(EXTRA.get(name, {}))
        bindings.append(harness.Binding.make('bi%02d' % index, '52:54:00:10:00:%02x' % index, name, params))
    return bindings


@pytest.fixture(scope='module')
def comparison(libvirt_oracle):
    # one oracle call for all 24 bindings amortises libvirtd's per-call reset
    return harness.compare(libvirt_oracle, {}, builtin_bindings())


@pytest.mark.parametrize('index,name', list(enumerate(NAMES)), ids=NAMES)
def test_builtin_matches_libvirt(comparison, index, name):
    diffs = comparison.interface_diffs()
    interface = 'bi%02d' % index
    assert interface not in diffs, 'filter %s on %s differs from libvirt:\n%s' % (name, interface, diffs[interface])


def test_libvirt_made_rules_for_every_builtin(comparison):
    # guards against a vacuous pass: libvirt produced chains for every NIC
    parts = harness.split_by_interface(comparison.libvirt, comparison.interfaces)
    empty = [i for i in comparison.interfaces if not any(l.startswith('-A') for l in parts[i].splitlines())]
    assert not empty


def test_shared_lines_match_libvirt(comparison):
    diffs = comparison.interface_diffs()
    assert None not in diffs, diffs.get(None)
