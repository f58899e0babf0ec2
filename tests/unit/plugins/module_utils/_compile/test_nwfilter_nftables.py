# -*- coding: utf-8 -*-
"""The nftables layout compiler without a kernel: translation of ebtables/iptables
arguments, sharing of chains between NICs, per-NIC chains where sets cannot express
a rule, and the NICs that stay (partly) on xtables."""

from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables as L
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables_match as M
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.bindings import make_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.filters import builtin_filters

FILTERS = builtin_filters()


def nic(index, filter_name='clean-traffic', **params):
    return make_binding('vnet%d' % index, '52:54:00:00:00:%02x' % index, filter_name,
                        params or {'IP': '10.0.0.%d' % index})


def with_filter(xml):
    parsed = parse_filter(xml, source='test')
    return dict(FILTERS, **{parsed.name: parsed})


def test_ebtables_arguments_translate_to_nft_matches():
    atoms, verdict = M.eb_rule(('-s', '!', '52:54:00:00:00:01', '-p', 'ipv4', '--ip-source', '10.0.0.0/8',
                                '--ip-destination-port', '80:90', '-j', 'RETURN'))
    assert verdict == 'return'
    assert [a.render() for a in atoms] == ['ether saddr != 52:54:00:00:00:01', 'ether type == 2048',
                                           'ip saddr == 10.0.0.0/8', 'th dport == 80-90']
    atoms, verdict = M.eb_rule(('-p', '0x806', '--arp-ip-src', '10.1.2.3/32', '-j', 'I-vnet0-arp'))
    assert verdict == ('jump', 'I-vnet0-arp')
    # ebt_arp tests IP fields only in IPv4-over-Ethernet ARP: prerequisites are added, never negated.
    assert [a.render() for a in atoms][-2:] == ['@nh,40,8 == 4', '@nh,16,16 == 2048']


def test_iptables_arguments_translate_and_report_needs():
    atoms, verdict, needs = M.xt_rule(('-p', 'tcp', '-m', 'iprange', '!', '--src-range', '10.0.0.1-10.0.0.9',
                                       '--dport', '22', '-j', 'REJECT'), 'ip')
    assert verdict == 'reject' and not needs
    assert [a.render() for a in atoms] == ['ether type == 2048', 'ip protocol == 6',
                                           'ip saddr != 10.0.0.1-10.0.0.9', 'th dport == 22']
    _atoms, _verdict, needs = M.xt_rule(('-p', 'all', '-m', 'conntrack', '--ctstate', 'NEW,ESTABLISHED',
                                         '-m', 'connlimit', '--connlimit-above', '3', '-j', 'ACCEPT'), 'ip6')
    assert needs == {'conntrack', 'connlimit'}
    with pytest.raises(M.Unsupported):
        M.xt_rule(('-p', 'tcp', '--tcp-option', '2', '-j', 'DROP'), 'ip')


def test_values_from_variables_are_marked():
    atoms, _verdict = M.eb_rule(('-p', 'ipv4', '--ip-source', M.MARK_OPEN + '10.0.0.1' + M.MARK_CLOSE,
                                 '-j', 'RETURN'))
    assert [a.var for a in atoms] == [False, True] and atoms[1].settable
    assert atoms[1].value == (0x0a000001, 0x0a000001)


def test_nics_on_one_filter_share_chains_and_differ_in_elements():
    layout = L.compile_layout([nic(1), nic(2), nic(3, IP=['10.0.0.3', '10.0.0.33'])], FILTERS)
    assert all(n.mode == L.NFT for n in layout.nics)
    assert len(set(n.dispatch for n in layout.nics)) == 1  # the same chains for all three
    one = L.compile_layout([nic(1)], FILTERS)
    assert [c.name for c in one.chains] == [c.name for c in layout.chains]
    ip_set = [s for s in layout.sets if s.key == ('iifname', 'ip saddr')][0]
    assert ('vnet3', (0x0a000021, 0x0a000021)) in ip_set.elements and len(ip_set.elements) == 4
    rules, elements = layout.counts()
    assert rules == one.counts()[0] and elements > one.counts()[1]


def test_negated_list_variable_gets_a_chain_of_its_own():
    filters = with_filter('<filter name="not-these" chain="ipv4">'
                          '<rule action="drop" direction="out"><ip srcipaddr="$IP" match="no"/></rule></filter>')
    single = L.compile_layout([nic(1, 'not-these'), nic(2, 'not-these')], filters)
    assert len(set(n.dispatch for n in single.nics)) == 1
    assert any('!= @' in rule for c in single.chains for rule in c.rules)
    several = L.compile_layout([nic(1, 'not-these', IP=['10.0.0.1', '10.0.0.5']), nic(2, 'not-these')], filters)
    assert len(set(n.dispatch for n in several.nics)) == 2
    assert any('ip saddr != 10.0.0.5' in rule for c in several.chains for rule in c.rules)


def test_what_stays_on_xtables():
    stateful = with_filter('<filter name="web" chain="root"><filterref filter="clean-traffic"/>'
                           '<rule action="accept" direction="in"><tcp dstportstart="80"/></rule></filter>')
    without = L.compile_layout([nic(1, 'web')], stateful, conntrack=False)
    assert without.nics[0].mode == L.MIXED and 'connection state' in without.nics[0].reason
    assert set(t.family for t in without.xtables.tables) == {'ip'} and without.nics[0].warnings
    assert L.compile_layout([nic(1, 'web')], stateful, conntrack=True).nics[0].mode == L.NFT
    gratuitous = with_filter('<filter name="grat" chain="arp">'
                             '<rule action="drop" direction="out"><arp gratuitous="true"/></rule></filter>')
    layout = L.compile_layout([nic(1, 'grat')], gratuitous)
    assert layout.nics[0].mode == L.XTABLES and layout.xtables.table('eb', 'nat') is not None
    assert not layout.chains


def test_reject_drops_with_a_warning_and_bad_input_fails_like_xtables():
    rejecting = with_filter('<filter name="rej" chain="root">'
                            '<rule action="reject" direction="out" statematch="false"><udp/></rule></filter>')
    layout = L.compile_layout([nic(1, 'rej')], rejecting)
    assert layout.nics[0].mode == L.NFT and 'drop instead' in layout.nics[0].warnings[0]
    assert any(rule.endswith(' drop') for c in layout.chains for rule in c.rules)
    with pytest.raises(Exception) as raised:
        L.compile_layout([make_binding('vnet1', '52:54:00:00:00:01', 'clean-traffic')], FILTERS)
    assert 'IP' in str(raised.value)


def test_rendered_script_declares_everything_once():
    layout = L.compile_layout([nic(1), nic(2)], FILTERS, fail_closed=('vnet*',))
    script = L.render_layout(layout)
    assert script.count('add table ') == 1
    assert script.count('add map ') == len(L.BASE_CHAINS)
    assert 'iifname "vnet*" drop' in script and 'oifname "vnet*" drop' in script
    assert '"vnet1" : goto ' in script
