# -*- coding: utf-8 -*-
"""(b) Several NICs at once, against libvirt; and our rules for the oracle's
recorded examples against the dumps libvirt produced for them (these need no
libvirt, only root and network namespaces)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

import oracle as harness

EXAMPLES = os.path.join(harness.SHARED, 'tools', 'libvirt-oracle-examples')

WEB_FILTER = """\
<filter name='hnf-web' chain='root'>
  <rule action='accept' direction='in' priority='100'>
    <tcp dstportstart='80' dstportend='443'/>
  </rule>
  <rule action='accept' direction='out' priority='110'>
    <udp dstportstart='53' dstipaddr='$DNS'/>
  </rule>
  <rule action='accept' direction='inout' priority='120'>
    <icmp/>
  </rule>
  <rule action='accept' direction='in' priority='130'>
    <tcp-ipv6 dstportstart='22' srcipaddr='fd00::' srcipmask='64'/>
  </rule>
  <rule action='drop' direction='inout' priority='900'>
    <all/>
  </rule>
  <rule action='drop' direction='inout' priority='900'>
    <all-ipv6/>
  </rule>
</filter>
"""
WEB_TOP = """\
<filter name='hnf-web-top'>
  <filterref filter='clean-traffic'/>
  <filterref filter='hnf-web'>
    <parameter name='DNS' value='192.0.2.53'/>
  </filterref>
</filter>
"""


def three_bindings():
    return [
        harness.Binding.make('vnet0', '52:54:00:aa:00:01', 'clean-traffic', {'IP': ['10.1.0.5', '10.1.0.6']}),
        harness.Binding.make('vnet1', '52:54:00:aa:00:02', 'clean-traffic-gateway',
                             {'IP': '10.1.0.7', 'GATEWAY_MAC': '52:54:00:aa:00:fe'}),
        harness.Binding.make('vnet2', '52:54:00:aa:00:03', 'hnf-web-top', {'IP': '10.1.0.8'}),
    ]


@pytest.mark.libvirt_oracle
def test_three_nics_match_libvirt(libvirt_oracle):
    filters = {'hnf-web': WEB_FILTER, 'hnf-web-top': WEB_TOP}
    result = harness.compare(libvirt_oracle, filters, three_bindings())
    assert result.libvirt.count('\n-A ') > 60  # not vacuous: three full rule sets
    assert result.libvirt == result.ours, result.diff()


@pytest.mark.libvirt_oracle
def test_three_nics_sharing_one_iptables_filter_match_libvirt(libvirt_oracle):
    filters = {'hnf-web': WEB_FILTER}
    bindings = [harness.Binding.make('tap%d' % i, '52:54:00:bb:00:%02x' % i, 'hnf-web', {'DNS': '192.0.2.%d' % i})
                for i in range(3)]
    result = harness.compare(libvirt_oracle, filters, bindings)
    assert '-A libvirt-in -m physdev --physdev-in tap2 -g FI-tap2' in result.libvirt
    assert result.libvirt == result.ours, result.diff()


def _example_inputs(binding_files, with_filters):
    if not os.path.isdir(EXAMPLES):
        pytest.skip('libvirt-oracle examples not found at %s' % EXAMPLES)
    filters = {}
    if with_filters:
        for name in sorted(os.listdir(os.path.join(EXAMPLES, 'filters'))):
            with open(os.path.join(EXAMPLES, 'filters', name)) as handle:
                text = handle.read()
            filters[ET.fromstring(text).get('name')] = text
    bindings = []
    for name in binding_files:
        root = ET.parse(os.path.join(EXAMPLES, 'bindings', name)).getroot()
        params = {}
        for param in root.find('filterref').findall('parameter'):
            params.setdefault(param.get('name'), []).append(param.get('value'))
        bindings.append(harness.Binding.make(
            root.find('portdev').get('name'), root.find('mac').get('address'),
            root.find('filterref').get('filter'),
            {k: (v[0] if len(v) == 1 else v) for k, v in params.items()}))
    return filters, bindings


GOLDEN = [
    ('clean-traffic-ip-mac.txt', ['clean-traffic-vnet0.xml'], False),
    ('clean-traffic-ip-list.txt', ['clean-traffic-list-vnet1.xml'], False),
    ('custom-tcp-udp-icmp-filterref.txt', ['custom-vnet2.xml'], True),
    ('three-nics.txt', ['clean-traffic-vnet0.xml', 'clean-traffic-list-vnet1.xml', 'custom-vnet2.xml'], True),
]


@pytest.mark.netns
@pytest.mark.parametrize('expected,binding_files,with_filters', GOLDEN, ids=[g[0] for g in GOLDEN])
def test_recorded_libvirt_dump(netns_tools, expected, binding_files, with_filters):
    filters, bindings = _example_inputs(binding_files, with_filters)
    with open(os.path.join(EXAMPLES, 'expected', expected)) as handle:
        recorded = handle.read()
    priorities = harness.chain_priorities(harness.all_filter_texts(filters))
    theirs = harness.normalise(recorded, priorities)
    ours = harness.normalise(harness.our_dump(filters, bindings), priorities)
    assert theirs == ours, harness.diff(theirs, ours, 'recorded libvirt dump', 'ours')


@pytest.mark.libvirt_oracle
def test_two_nics_needing_one_ebtables_chain_libvirt_breaks_both_we_refuse(libvirt_oracle):
    """F16: NIC 'mn1' with chain 'mac-arp' and NIC 'mn1-mac' with chain 'arp' both need the
    ebtables chain I-mn1-mac-arp. libvirt 9.0 accepts both bindings and leaves the first NIC's
    sub-chain empty and the second's rule in a temporary J- chain; we refuse, naming both."""
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import BindingError
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile.nics import compile_bindings
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.bindings import make_binding
    filters = {
        'mn-a': "<filter name='mn-a'><filterref filter='mn-a2'/></filter>",
        'mn-a2': "<filter name='mn-a2' chain='mac-arp'><rule action='drop' direction='out'><mac protocolid='ipv4'/>"
                 "</rule></filter>",
        'mn-b': "<filter name='mn-b'><filterref filter='mn-b2'/></filter>",
        'mn-b2': "<filter name='mn-b2' chain='arp'><rule action='drop' direction='out'><arp/></rule></filter>"}
    bindings = [harness.Binding.make('mn1', '52:54:00:fa:16:01', 'mn-a'),
                harness.Binding.make('mn1-mac', '52:54:00:fa:16:02', 'mn-b')]
    dump = libvirt_oracle.dump(filters, bindings)
    assert '-A J-mn1-mac-arp -p ARP -j DROP' in dump and '-p IPv4 -j DROP' not in dump, dump
    parsed = harness.parse_all(filters)
    with pytest.raises(BindingError, match="'mn1' and 'mn1-mac' would both use the ebtables chain 'I-mn1-mac-arp'"):
        compile_bindings([make_binding(b.interface, b.mac, b.filter) for b in bindings], parsed)
