# -*- coding: utf-8 -*-
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import Chain, Hook, Ruleset, Table
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.restore import quote_arg


def _nic(name):
    return Ruleset((
        Table('eb', 'nat', chains=(Chain('libvirt-I-' + name, (('-j', 'DROP'),)),),
              hooks=(Hook('PREROUTING', ('-i', name, '-j', 'libvirt-I-' + name)),)),
        Table('ip', 'filter', chains=(Chain('libvirt-in', (('-m', 'physdev', '--physdev-in', name, '-g', 'FI-' + name),)),),
              hooks=(Hook('FORWARD', ('-j', 'libvirt-in'), 1),)),
    ))


def test_merge_concatenates_shared_chains_and_dedupes_hooks():
    merged = _nic('vnet0').merge(_nic('vnet1'))
    ip = merged.table('ip', 'filter')
    assert [c.name for c in ip.chains] == ['libvirt-in']
    assert [r[3] for r in ip.chain('libvirt-in').rules] == ['vnet0', 'vnet1']
    assert len(ip.hooks) == 1
    assert len(merged.table('eb', 'nat').chains) == 2


def test_render_restore_text():
    text = _nic('vnet0').render('ip')
    assert text == ('*filter\n:libvirt-in - [0:0]\n'
                    '-A libvirt-in -m physdev --physdev-in vnet0 -g FI-vnet0\n'
                    '-I FORWARD 1 -j libvirt-in\nCOMMIT\n')
    assert _nic('vnet0').render('eb').startswith('*nat\n:libvirt-I-vnet0 ACCEPT\n')
    assert _nic('vnet0').render('ip6') == ''


def test_quote_arg():
    assert quote_arg('plain') == 'plain'
    assert quote_arg('two words') == '"two words"'
    assert quote_arg('say "hi"') == '"say \\"hi\\""'
    assert quote_arg('') == '""'
