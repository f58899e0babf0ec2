# -*- coding: utf-8 -*-
"""_reconcile/foreign_nics: which live NIC chains belong to interfaces that are not ours."""
from __future__ import annotations

from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile.foreign_nics import foreign_ruleset

EB = '''*nat
:PREROUTING ACCEPT
:OUTPUT ACCEPT
:POSTROUTING ACCEPT
:libvirt-I-vnet1 ACCEPT
:I-vnet1-mac ACCEPT
:libvirt-I-vnet1-a ACCEPT
:I-vnet1-a-mac ACCEPT
:libvirt-I-vnet0 ACCEPT
-A PREROUTING -i vnet0 -j libvirt-I-vnet0
-A PREROUTING -i vnet1 -j libvirt-I-vnet1
-A PREROUTING -i vnet1-a -j libvirt-I-vnet1-a
-A PREROUTING -i admin0 -j ACCEPT
-A libvirt-I-vnet1 -j I-vnet1-mac
-A I-vnet1-mac -s 52:54:00:00:00:01 -j RETURN
-A I-vnet1-mac -j DROP
-A I-vnet1-a-mac -j DROP
'''
IP = '''*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:FI-vnet1 - [0:0]
:FI-vnet0 - [0:0]
:libvirt-in - [0:0]
:libvirt-in-post - [0:0]
-A FORWARD -j libvirt-in
-A FORWARD -j libvirt-in-post
-A FI-vnet1 -j DROP
-A libvirt-in -m physdev --physdev-in vnet0 -g FI-vnet0
-A libvirt-in -m physdev --physdev-in vnet1 -g FI-vnet1
-A libvirt-in-post -m physdev --physdev-in vnet1 -j ACCEPT
-A libvirt-in-post -m physdev --physdev-in vnet0 -j ACCEPT
COMMIT
'''


def _chains(ruleset, family):
    table = [t for t in ruleset.tables if t.family == family][0]
    return dict((c.name, c.rules) for c in table.chains), table.hooks


def test_none_when_every_interface_is_ours():
    assert foreign_ruleset({'eb': EB, 'ip': IP, 'ip6': ''}, {'vnet0', 'vnet1', 'vnet1-a'}) is None


def test_foreign_chains_hooks_and_shared_jumps_are_kept():
    kept = foreign_ruleset({'eb': EB, 'ip': IP, 'ip6': ''}, {'vnet0', 'vnet1-a'})
    eb, eb_hooks = _chains(kept, 'eb')
    # I-vnet1-a-mac belongs to vnet1-a (the longest interface it starts with), not to vnet1
    assert sorted(eb) == ['I-vnet1-mac', 'libvirt-I-vnet1']
    assert eb['I-vnet1-mac'] == (('-s', '52:54:00:00:00:01', '-j', 'RETURN'), ('-j', 'DROP'))
    assert [h.args for h in eb_hooks] == [('-i', 'vnet1', '-j', 'libvirt-I-vnet1')]
    ip, ip_hooks = _chains(kept, 'ip')
    assert sorted(ip) == ['FI-vnet1', 'libvirt-in', 'libvirt-in-post']
    assert ip['libvirt-in'] == (('-m', 'physdev', '--physdev-in', 'vnet1', '-g', 'FI-vnet1'),)
    assert ip['libvirt-in-post'] == (('-m', 'physdev', '--physdev-in', 'vnet1', '-j', 'ACCEPT'),)
    assert sorted((h.chain, h.args, h.position) for h in ip_hooks) == [
        ('FORWARD', ('-j', 'libvirt-in'), 1), ('FORWARD', ('-j', 'libvirt-in-post'), 3)]
