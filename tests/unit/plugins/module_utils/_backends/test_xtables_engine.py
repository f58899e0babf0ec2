# -*- coding: utf-8 -*-
"""Unit tests of the xtables apply engine against a small simulated xtables
(tests/lib/fake_xtables.py: it prints the tools' *save* spelling, not ours,
so the comparison logic is exercised without a kernel).  The kernel tests (tests/kernel/test_apply_*.py) run the same
paths against the real tools.
"""

from __future__ import annotations

import re

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import Chain, Hook, Ruleset, Table
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import (
    NWFILTER_OWNERSHIP, Ownership)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import ApplyError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import CommandError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_save import split_words
from ansible_collections.hypervisor.netfilter.tests.lib.fake_xtables import make_engine
from ansible_collections.hypervisor.netfilter.tests.lib.xtables_ns import sync


def nic(name, ip='10.0.0.5', extra_tcp=False):
    eb_chains = (
        Chain('libvirt-I-' + name, (('-j', 'I-%s-ipv4' % name), ('-p', '0x0800', '-j', 'ACCEPT'), ('-j', 'DROP'))),
        Chain('I-%s-ipv4' % name, (('-p', 'ipv4', '--ip-source', ip, '-j', 'RETURN'), ('-j', 'DROP'))),
    )
    ip_rules = [('-p', 'tcp', '--dport', '22', '-j', 'RETURN'), ('-j', 'DROP')]
    if extra_tcp:
        ip_rules.insert(0, ('-p', 'udp', '--dport', '53', '-j', 'RETURN'))
    ip_chains = (
        Chain('libvirt-in', (('-m', 'physdev', '--physdev-in', name, '-g', 'FI-' + name),)),
        Chain('FI-' + name, tuple(ip_rules)),
    )
    return Ruleset((
        Table('eb', 'nat', eb_chains, (Hook('PREROUTING', ('-i', name, '-j', 'libvirt-I-' + name)),)),
        Table('ip', 'filter', ip_chains, (Hook('FORWARD', ('-j', 'libvirt-in'), 1),)),
    ))


def test_first_apply_then_noop_without_writes(tmp_path):
    engine, kernels = make_engine(tmp_path)
    kernels['iptables'].table('filter')['FORWARD'].append('-j ADMIN_ACCEPT')
    desired = nic('vnet0')
    first = sync(engine, desired)
    assert first.changed
    assert len(first.writes) == 2  # ebtables and iptables; ip6tables had nothing to do
    assert kernels['iptables'].tables['filter']['FORWARD'] == ['-j libvirt-in', '-j ADMIN_ACCEPT']
    assert kernels['iptables'].tables['filter']['FI-vnet0'] == ['-p tcp -m tcp --dport 22 -j RETURN', '-j DROP']
    # A new engine (new module run) reads the cache from state_dir: no scratch namespace, no write.
    engine2 = make_engine(tmp_path)[0]
    engine2.runner.kernels = kernels
    second = sync(engine2, desired)
    assert not second.changed and second.writes == () and second.diff == ()
    assert [k for k, _argv in engine2.runner.calls] == ['read', 'read', 'read']


def test_noop_without_cache_canonicalises_in_scratch(tmp_path):
    engine, kernels = make_engine(tmp_path, state=False)
    desired = nic('vnet0')
    sync(engine, desired)
    engine.runner.calls = []
    again = sync(engine, desired)
    assert not again.changed
    kinds = [k for k, _argv in engine.runner.calls]
    assert kinds.count('scratch') == 2 and 'write' not in kinds  # eb and ip canonicalised once each


def test_drift_detected_in_check_mode_and_repaired(tmp_path):
    engine, kernels = make_engine(tmp_path)
    desired = nic('vnet0')
    sync(engine, desired)
    kernels['iptables'].tables['filter']['FI-vnet0'] = []  # iptables -F FI-vnet0
    kernels['ebtables'].tables['nat']['PREROUTING'] = []  # the hook is gone
    check = sync(engine, desired, check_mode=True)
    assert check.changed and check.writes == ()
    assert kernels['iptables'].tables['filter']['FI-vnet0'] == []
    ip_diff = [d for d in check.diff if d['before_header'].startswith('iptables')][0]
    assert '-A FI-vnet0 -p tcp -m tcp --dport 22 -j RETURN' in ip_diff['after']
    assert '-A FI-vnet0' not in ip_diff['before']
    eb_diff = [d for d in check.diff if d['before_header'].startswith('ebtables')][0]
    assert '-A PREROUTING -i vnet0 -j libvirt-I-vnet0' in eb_diff['after']
    repaired = sync(engine, desired)
    assert repaired.changed and len(repaired.writes) == 2
    assert kernels['iptables'].tables['filter']['FI-vnet0'] == ['-p tcp -m tcp --dport 22 -j RETURN', '-j DROP']
    assert not sync(engine, desired).changed


def test_changed_nic_only_touches_its_chains(tmp_path):
    engine, kernels = make_engine(tmp_path)
    sync(engine, nic('vnet0').merge(nic('vnet1')))
    result = sync(engine, nic('vnet0').merge(nic('vnet1', ip='10.0.0.9')))
    eb = result.plan.family('eb')
    assert [c.chain for c in eb.chain_changes] == ['I-vnet1-ipv4']
    assert ':I-vnet1-ipv4 ACCEPT' in eb.restore_text and 'vnet0' not in eb.restore_text
    assert not result.plan.family('ip').changed


def test_obsolete_nic_is_unhooked_flushed_and_deleted(tmp_path):
    engine, kernels = make_engine(tmp_path)
    sync(engine, nic('vnet0').merge(nic('vnet1')))
    result = sync(engine, nic('vnet0'))
    text = result.plan.family('eb').restore_text
    assert text.index('-D PREROUTING -i vnet1 -j libvirt-I-vnet1') < text.index('-X libvirt-I-vnet1')
    assert ':libvirt-I-vnet1 ACCEPT' in text  # flushed before -X
    nat = kernels['ebtables'].tables['nat']
    assert 'libvirt-I-vnet1' not in nat and 'I-vnet1-ipv4' not in nat
    assert nat['PREROUTING'] == ['-i vnet0 -j libvirt-I-vnet0']
    empty = sync(engine, Ruleset())
    assert empty.changed
    assert kernels['iptables'].tables['filter'] == {'INPUT': [], 'FORWARD': [], 'OUTPUT': []}


def test_positioned_hooks_keep_admin_order(tmp_path):
    engine, kernels = make_engine(tmp_path)
    forward = kernels['iptables'].table('filter')['FORWARD']
    forward.extend(['-j ADMIN1', '-j ADMIN2'])
    desired = Ruleset((Table('ip', 'filter', (
        Chain('libvirt-in', ()), Chain('libvirt-out', ()), Chain('libvirt-in-post', ())), (
        Hook('FORWARD', ('-j', 'libvirt-in'), 1), Hook('FORWARD', ('-j', 'libvirt-out'), 2),
        Hook('FORWARD', ('-j', 'libvirt-in-post'), 3))),))
    sync(engine, desired)
    assert kernels['iptables'].tables['filter']['FORWARD'] == [
        '-j libvirt-in', '-j libvirt-out', '-j libvirt-in-post', '-j ADMIN1', '-j ADMIN2']
    # Someone moves our jump behind theirs: relative order of ours broken -> re-inserted at 1..3.
    fwd = kernels['iptables'].tables['filter']['FORWARD']
    fwd.remove('-j libvirt-in')
    fwd.append('-j libvirt-in')
    result = sync(engine, desired)
    assert result.changed
    assert kernels['iptables'].tables['filter']['FORWARD'] == [
        '-j libvirt-in', '-j libvirt-out', '-j libvirt-in-post', '-j ADMIN1', '-j ADMIN2']
    # A duplicate appended hook is removed, the admin rules stay where they are.
    assert not sync(engine, desired).changed


def test_duplicate_appended_hook_removed(tmp_path):
    engine, kernels = make_engine(tmp_path)
    sync(engine, nic('vnet0'))
    kernels['ebtables'].tables['nat']['PREROUTING'].append('-i vnet0 -j libvirt-I-vnet0')
    result = sync(engine, nic('vnet0'))
    assert result.changed
    assert kernels['ebtables'].tables['nat']['PREROUTING'] == ['-i vnet0 -j libvirt-I-vnet0']


def test_rejected_restore_keeps_previous_state_and_reports_stderr(tmp_path):
    engine, kernels = make_engine(tmp_path)
    sync(engine, nic('vnet0'))
    before = kernels['iptables'].save()
    kernels['iptables'].reject = '--dport 53'
    with pytest.raises(CommandError) as info:
        sync(engine, nic('vnet0', extra_tcp=True))
    assert 'Bad argument' in str(info.value) and 'Bad argument' in info.value.stderr
    assert kernels['iptables'].save() == before


@pytest.mark.parametrize('desired, message', [
    (Ruleset((Table('ip', 'filter', (Chain('ADMIN', ()),)),)), "chain 'ADMIN' is not one of nwfilter"),
    (Ruleset((Table('ip', 'nat', (Chain('FI-x', ()),)),)), 'iptables table nat is not managed'),
    (Ruleset((Table('eb', 'nat', (Chain('libvirt-I-x', ()),), (Hook('PREROUTING', ('-j', 'libvirt-I-y')),)),)),
     "jumps to 'libvirt-I-y', which is not a desired chain"),
    (Ruleset((Table('eb', 'nat', (Chain('libvirt-I-x', ()), Chain('libvirt-I-x', ()))),)), 'declared twice'),
    ('not a ruleset', 'must be a Ruleset'),
])
def test_bad_desired_changes_nothing(tmp_path, desired, message):
    engine, kernels = make_engine(tmp_path)
    with pytest.raises(ApplyError, match=re.escape(message)):
        sync(engine, desired)
    assert engine.runner.calls == []


def test_other_ownership_is_invisible(tmp_path):
    network = Ownership('net', (('ip', 'filter', r'LIBVIRT_(FWI|FWO)'),))
    engine, kernels = make_engine(tmp_path)
    sync(engine, nic('vnet0'))
    net_engine = make_engine(tmp_path, ownership=network)[0]
    net_engine.runner.kernels = kernels
    desired = Ruleset((Table('ip', 'filter', (Chain('LIBVIRT_FWI', (('-j', 'ACCEPT'),)),),
                             (Hook('FORWARD', ('-j', 'LIBVIRT_FWI'), 1),)),))
    sync(net_engine, desired)
    assert kernels['iptables'].tables['filter']['FORWARD'] == ['-j LIBVIRT_FWI', '-j libvirt-in']
    # Both owners now see no change: neither touches the other's chains or hooks.
    assert not sync(net_engine, desired).changed
    assert not sync(engine, nic('vnet0')).changed


def test_quoted_arguments_roundtrip(tmp_path):
    engine, kernels = make_engine(tmp_path)
    desired = Ruleset((Table('ip', 'filter', (
        Chain('FI-q', (('-m', 'comment', '--comment', 'two words "q"', '-j', 'RETURN'),)),)),))
    sync(engine, desired)
    assert kernels['iptables'].tables['filter']['FI-q'] == ['-m comment --comment "two words \\"q\\"" -j RETURN']
    assert split_words(kernels['iptables'].tables['filter']['FI-q'][0])[3] == 'two words "q"'
    assert not sync(engine, desired).changed


def test_summary_counts(tmp_path):
    engine, _kernels = make_engine(tmp_path)
    result = sync(engine, nic('vnet0'))
    summary = result.summary()
    assert summary['ebtables']['chains_created'] == 2 and summary['ebtables']['hooks_added'] == 1
    assert summary['iptables']['chains_created'] == 2 and summary['iptables']['hooks_added'] == 1
    assert summary['ip6tables'] == {'chains_created': 0, 'chains_replaced': 0, 'chains_deleted': 0,
                                    'hooks_added': 0, 'hooks_deleted': 0, 'backend': 'nft'}


@pytest.mark.parametrize('family, table, chain, owned', [
    ('eb', 'nat', 'libvirt-I-vnet0', True),
    ('eb', 'nat', 'libvirt-J-vnet0', True),
    ('eb', 'nat', 'I-vnet0-mac', True),
    ('eb', 'nat', 'O-tap-1-ipv4-ip', True),
    ('eb', 'nat', 'I-accept', False),
    ('eb', 'nat', 'PREROUTING', False),
    ('eb', 'filter', 'libvirt-I-vnet0', False),
    ('ip', 'filter', 'libvirt-in', True),
    ('ip', 'filter', 'libvirt-in-post', True),
    ('ip', 'filter', 'FI-vnet0', True),
    ('ip', 'filter', 'HJ-vnet0', True),
    ('ip', 'filter', 'LIBVIRT_FWX', False),
    ('ip', 'filter', 'libvirt-inx', False),
    ('ip', 'nat', 'FI-vnet0', False),
    ('ip6', 'filter', 'FO-vnet0', True),
])
def test_nwfilter_ownership(family, table, chain, owned):
    assert NWFILTER_OWNERSHIP.owns(family, table, chain) is owned


def test_admin_chain_jumping_into_ours_is_left_alone(tmp_path):
    engine, kernels = make_engine(tmp_path)
    sync(engine, nic('vnet0'))
    filt = kernels['iptables'].tables['filter']
    filt['ADMIN'] = ['-j FI-vnet0']
    assert not sync(engine, nic('vnet0')).changed
    assert filt['ADMIN'] == ['-j FI-vnet0']
    with pytest.raises(ApplyError, match='hooks go into built-in chains'):
        sync(engine, Ruleset((Table('ip', 'filter', (Chain('FI-x', ()),), (Hook('ADMIN', ('-j', 'FI-x')),)),)))


@pytest.mark.parametrize('bad', ['10.0.0.1\n-F FORWARD', 'a\rb', 'nul\x00', 7])
def test_control_characters_never_reach_restore(tmp_path, bad):
    engine, kernels = make_engine(tmp_path)
    desired = Ruleset((Table('ip', 'filter', (Chain('FI-x', (('-s', bad, '-j', 'DROP'),)),)),))
    with pytest.raises(ApplyError, match='is not a plain string'):
        sync(engine, desired)
    assert engine.runner.calls == [] and kernels['iptables'].restores == 0


def test_live_digest_ignores_comments_and_counters_only(tmp_path):
    engine = make_engine(tmp_path)[0]
    base = {'ip': '# Generated at 1\n*filter\n:INPUT ACCEPT [1:2]\n:FI-x - [0:0]\n-A FI-x -j DROP\nCOMMIT\n'}
    same = {'ip': '# Generated at 2\n*filter\n:INPUT ACCEPT [7:9]\n:FI-x - [3:3]\n-A FI-x -j DROP\nCOMMIT\n'}
    other = {'ip': '# Generated at 2\n*filter\n:INPUT ACCEPT [7:9]\n:FI-x - [3:3]\n-A FI-x -j RETURN\nCOMMIT\n'}
    policy = {'ip': '*filter\n:INPUT DROP [1:2]\n:FI-x - [0:0]\n-A FI-x -j DROP\nCOMMIT\n'}
    assert engine.live_digest(base) == engine.live_digest(same)
    assert engine.live_digest(base) != engine.live_digest(other)
    assert engine.live_digest(base) != engine.live_digest(policy)
