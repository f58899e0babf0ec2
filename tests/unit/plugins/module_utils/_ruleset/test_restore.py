# -*- coding: utf-8 -*-
"""The order of a restore's lines (``_ruleset.restore.table_text``)."""

from __future__ import annotations

from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.restore import table_text

ARGS = dict(hook_deletes=[('PREROUTING', '-i vnet9 -j libvirt-I-vnet9')],
            declare=['I-vnet0-mac', 'libvirt-I-vnet0', 'I-vnet9-mac'],
            fill=[('I-vnet0-mac', (('-j', 'DROP'),)), ('libvirt-I-vnet0', (('-j', 'I-vnet0-mac'),))],
            remove=['I-vnet9-mac'],
            hook_adds=[('PREROUTING', '-i vnet0 -j libvirt-I-vnet0', None)])


def test_plain_order():
    assert table_text('eb', 'nat', **ARGS).splitlines() == [
        '*nat', '-D PREROUTING -i vnet9 -j libvirt-I-vnet9',
        ':I-vnet0-mac ACCEPT', ':libvirt-I-vnet0 ACCEPT', ':I-vnet9-mac ACCEPT',
        '-A I-vnet0-mac -j DROP', '-A libvirt-I-vnet0 -j I-vnet0-mac', '-X I-vnet9-mac',
        '-A PREROUTING -i vnet0 -j libvirt-I-vnet0']


def test_whole_table_order_hooks_and_their_targets_before_the_list_command():
    assert table_text('eb', 'nat', whole_table={'libvirt-I-vnet0'}, **ARGS).splitlines() == [
        '*nat', '-D PREROUTING -i vnet9 -j libvirt-I-vnet9',
        ':libvirt-I-vnet0 ACCEPT', '-A PREROUTING -i vnet0 -j libvirt-I-vnet0', '-L',
        ':I-vnet0-mac ACCEPT', ':I-vnet9-mac ACCEPT',
        '-A I-vnet0-mac -j DROP', '-A libvirt-I-vnet0 -j I-vnet0-mac', '-X I-vnet9-mac']


def test_whole_table_iptables_lists_with_dash_s():
    lines = table_text('ip', 'filter', declare=['FI-vnet0', 'libvirt-in'], fill=[],
                       hook_adds=[('FORWARD', '-j libvirt-in', 1)], whole_table={'libvirt-in'}).splitlines()
    assert lines == ['*filter', ':libvirt-in - [0:0]', '-I FORWARD 1 -j libvirt-in', '-S', ':FI-vnet0 - [0:0]',
                     'COMMIT']
