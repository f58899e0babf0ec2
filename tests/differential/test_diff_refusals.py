# -*- coding: utf-8 -*-
"""Input libvirt refuses (at definition, instantiation or when its commands
fail) must be refused by us too: by the parser, the compiler or, at the
latest, by the atomic *-restore (which changes nothing)."""

from __future__ import annotations

import pytest

import oracle as harness
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError

pytestmark = [pytest.mark.libvirt_oracle]


def _one(rule, chain=None, priority=None):
    attrs = ''.join(" %s='%s'" % (k, v) for k, v in (('chain', chain), ('priority', priority)) if v is not None)
    return {'t': "<filter name='t'%s>\n  %s\n</filter>\n" % (attrs, rule)}


REFUSED = {
    'overwritten-undefined-variable': (_one(
        "<rule action='drop' direction='out'><all dstipaddr='$NOPE'/><all dstipaddr='10.0.0.1'/></rule>"), {}),
    'undefined-variable': (_one("<rule action='drop' direction='out'><all dstipaddr='$NOPE'/></rule>"), {}),
    'list-lengths-differ-on-one-iterator': (_one(
        "<rule action='drop' direction='out'><tcp srcipaddr='$A' srcportstart='$P'/></rule>"),
        {'A': ['1.1.1.1', '2.2.2.2', '3.3.3.3'], 'P': ['80', '90']}),
    'list-index-out-of-range': (_one("<rule action='drop' direction='out'><all dstipaddr='$A[5]'/></rule>"),
                                {'A': ['1.1.1.1', '2.2.2.2']}),
    # F6, F7: libvirt cannot use variables in these attributes
    'variable-comment': (_one("<rule action='drop' direction='out'><tcp comment='$D'/></rule>"), {'D': '5'}),
    'variable-tcp-flags': (_one("<rule action='return' direction='out'><tcp flags='$F'/></rule>"), {'F': 'SYN/ALL'}),
    # F9: libvirt drops parameter values outside [A-Za-z0-9_.:]+, leaving X undefined
    'parameter-value-with-slash': (_one("<rule action='drop' direction='out'><all dstipaddr='$X'/></rule>"),
                                   {'X': '1.2.3.4/8'}),
    'parameter-value-empty': (_one("<rule action='drop' direction='out'><all dstipaddr='$X'/></rule>"), {'X': ''}),
    'reference-loop': ({'t': "<filter name='t'><filterref filter='loop-a'/></filter>",
                        'loop-a': "<filter name='loop-a'><filterref filter='loop-b'/></filter>",
                        'loop-b': "<filter name='loop-b'><filterref filter='loop-a'/></filter>"}, {}),
    'missing-referenced-filter': ({'t': "<filter name='t'><filterref filter='hnf-nowhere'/></filter>"}, {}),
    'ports-without-protocol': (_one("<rule action='drop' direction='out'><ip dstportstart='53'/></rule>"), {}),
    'ipv6-dstipto': (_one("<rule action='drop' direction='out'><tcp-ipv6 dstipfrom='::1' dstipto='::5'/></rule>"), {}),
    'bad-chain-name': (_one("<rule action='drop' direction='out'/>", chain='rootx'), {}),
    'chain-priority-out-of-range': (_one("<rule action='drop' direction='out'/>", chain='arp', priority='1001'), {}),
    'vlan-id-too-large': (_one("<rule action='drop' direction='out'><vlan vlanid='4096'/></rule>"), {}),
    'ethertype-too-small': (_one("<rule action='drop' direction='out'><mac protocolid='0x5ff'/></rule>"), {}),
    'dscp-too-large': (_one("<rule action='drop' direction='out'><udp dscp='64'/></rule>"), {}),
    'connlimit-hex': (_one("<rule action='drop' direction='out'><tcp connlimit-above='0x10'/></rule>"), {}),
    'stp-inout-with-source-mac': (_one(
        "<rule action='drop' direction='inout'><stp srcmacaddr='52:54:00:00:00:01'/></rule>"), {}),
    # an ipset without ipsetflags parses (libvirt stores a default flag) but cannot be instantiated
    'ipset-without-ipsetflags': (_one("<rule action='drop' direction='out'><tcp ipset='hnfset4'/></rule>"), {}),
    'continue-in-iptables-rule': (_one("<rule action='continue' direction='out'><tcp dstportstart='22'/></rule>"), {}),
    # F17: ebtables refuses upside-down port and STP ranges; we refuse at compile time, naming the rule
    'ebtables-port-range-upside-down': (_one("<rule action='drop' direction='in'><ip protocol='udp' "
                                             "srcportstart='80' srcportend='$P'/></rule>"), {'P': '22'}),
    'stp-range-upside-down': (_one("<rule action='drop' direction='in'><stp port='10' port-hi='9'/></rule>"), {}),
    'sub-chain-name-over-28-characters': ({
        't': "<filter name='t'><filterref filter='long'/></filter>",
        'long': "<filter name='long' chain='ipv4-abcdefg'>"
                "<rule action='drop' direction='inout'><ip protocol='udp' dstportstart='53'/></rule></filter>"},
        {'@interface': 'refusal-long-15'}),
}


@pytest.mark.parametrize('name', sorted(REFUSED))
def test_refused_by_libvirt_and_by_us(libvirt_oracle, name):
    filters, params = REFUSED[name]
    params = dict(params)
    interface = params.pop('@interface', 'refuse0')[:15]
    binding = harness.Binding.make(interface, '52:54:00:fa:00:01', 't', dict(params, IP='10.0.0.9'))
    with pytest.raises(harness.LibvirtRejected):
        libvirt_oracle.dump(filters, [binding])
    with pytest.raises((NetfilterError, harness.HarnessError)) as refused:
        harness.our_dump(filters, [binding])
    if name.endswith('-upside-down'):
        assert 'ebtables refuses a range' in str(refused.value) and "rule #1" in str(refused.value)
    if refused.errisinstance(harness.HarnessError):
        # only the kernel refusing our restore input counts, not a harness failure
        assert 'refused our rules' in str(refused.value), str(refused.value)
