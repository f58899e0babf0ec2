# -*- coding: utf-8 -*-
"""Stored networks, firewalld planning (with a scripted firewall-cmd; the real
daemon is exercised in tests/kernel/test_network_firewalld.py) and nft listing
normalisation."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host import firewalld as network_firewalld
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_apply as network_nft_apply
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import networks as network_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.parse import (
    NetworkSpecError, spec_from_options)


def _spec(name='a', bridge='br-a', mode='nat', **kwargs):
    params = dict(name=name, bridge=bridge, forward_mode=mode, forward_dev=None, ipv4={'address': '10.1.0.1/24'},
                  ipv6=None, ipv6_no_gateway=None, nat=None, dns=None, zone=None)
    params.update(kwargs)
    return spec_from_options(params)


def test_store_round_trip_and_order(tmp_path):
    state_dir = str(tmp_path)
    assert network_store.load_all(state_dir) == ()
    second = network_store.StoredNetwork(_spec('b', 'br-b', ipv4={'address': '10.2.0.1/24'}), 'nftables', 2)
    first = network_store.StoredNetwork(_spec('a'), 'iptables', 1, bridge_created=True, zone='libvirt')
    network_store.save(state_dir, second)
    network_store.save(state_dir, first)
    loaded = network_store.load_all(state_dir)
    assert loaded == (first, second)
    assert network_store.next_seq(loaded) == 3
    assert oct(os.stat(os.path.join(state_dir, 'networks')).st_mode & 0o777) == '0o700'
    network_store.remove(state_dir, 'a')
    assert [n.spec.name for n in network_store.load_all(state_dir)] == ['b']
    assert os.listdir(os.path.join(state_dir, 'networks')) == ['b.json']  # no temp files left


def test_store_rejects_damaged_files(tmp_path):
    directory = tmp_path / 'networks'
    directory.mkdir()
    (directory / 'x.json').write_text('{not json')
    with pytest.raises(NetworkSpecError, match='cannot read stored network'):
        network_store.load_all(str(tmp_path))
    (directory / 'x.json').write_text(json.dumps({'version': 1, 'backend': 'iptables', 'seq': 1,
                                                  'spec': dict(_spec().to_dict(), bridge='bad/name')}))
    with pytest.raises(NetworkSpecError, match="bridge 'bad/name' is not a valid interface name"):
        network_store.load_all(str(tmp_path))


class FakeFirewalld(network_firewalld.Firewalld):
    """Answers firewall-cmd reads from a dict; records writes."""

    def __init__(self, running=True, version='1.3.3', zones=('public',), policies=(), bound=None):
        self._running = running
        self._version = version
        self.zones = set(zones)
        self.policies = set(policies)
        self.bound = dict(bound or {})  # (interface, permanent) -> zone
        self.tool = 'firewall-cmd'
        self.writes = []

    def running(self):
        return self._running

    def cmd(self, *args, **kwargs):
        if kwargs.get('write'):
            self.writes.append(args)
            return 0, '', ''
        permanent = args[0] == '--permanent'
        last = args[-1]
        if last == '--version':
            return 0, self._version, ''
        if last == '--get-zones':
            return 0, ' '.join(sorted(self.zones)), ''
        if last == '--get-policies':
            return 0, ' '.join(sorted(self.policies)), ''
        if last.startswith('--get-zone-of-interface='):
            zone = self.bound.get((last.split('=', 1)[1], permanent))
            return (0, zone, '') if zone else (2, 'no zone', '')
        raise AssertionError('unexpected firewall-cmd %r' % (args,))


def test_no_firewalld_means_nothing_unless_a_zone_is_asked_for():
    assert network_firewalld.plan(_spec(), 'present', fw=FakeFirewalld(running=False)) is None
    with pytest.raises(NetworkSpecError, match='zone z requested for network a but firewalld is not active'):
        network_firewalld.plan(_spec(zone='z'), 'present', fw=FakeFirewalld(running=False))


def test_missing_libvirt_zone_is_defined_then_bound():
    fw = FakeFirewalld()
    plan = network_firewalld.plan(_spec(), 'present', fw=fw)
    assert plan.zone == 'libvirt'
    assert plan.commands[0] == ('--permanent', '--new-zone=libvirt')
    assert ('--permanent', '--zone=libvirt', '--set-target=ACCEPT') in plan.commands
    assert ('--reload',) in plan.commands and plan.reloads
    assert plan.commands[-2:] == (('--zone=libvirt', '--change-interface=br-a'),
                                  ('--permanent', '--zone=libvirt', '--change-interface=br-a'))
    assert fw.writes == []  # planning never writes


def test_bound_already_means_no_change():
    fw = FakeFirewalld(zones=('public', 'libvirt'),
                       bound={('br-a', False): 'libvirt', ('br-a', True): 'libvirt'})
    plan = network_firewalld.plan(_spec(), 'present', fw=fw)
    assert plan.zone == 'libvirt' and not plan.changed


def test_routed_zone_needs_policies_and_new_enough_firewalld():
    fw = FakeFirewalld(zones=('public', 'libvirt', 'libvirt-routed'), policies=('libvirt-routed-in',))
    plan = network_firewalld.plan(_spec(mode='route'), 'present', fw=fw)
    assert plan.zone == 'libvirt-routed'
    assert ('--permanent', '--new-policy=libvirt-routed-out') in plan.commands
    assert ('--permanent', '--new-policy=libvirt-routed-in') not in plan.commands
    old = FakeFirewalld(version='0.8.2', zones=('public', 'libvirt'))
    assert network_firewalld.plan(_spec(mode='route'), 'present', fw=old).zone == 'libvirt'
    too_old = FakeFirewalld(version='0.6.3')
    with pytest.raises(NetworkSpecError, match='firewalld 0.6.3 is too old'):
        network_firewalld.plan(_spec(), 'present', fw=too_old)


def test_open_network_and_absent():
    assert network_firewalld.plan(_spec(mode='open'), 'present', fw=FakeFirewalld()).zone is None
    fw = FakeFirewalld(zones=('public', 'libvirt'), bound={('br-a', False): 'libvirt', ('br-a', True): 'libvirt'})
    plan = network_firewalld.plan(_spec(), 'absent', previous_zone='libvirt', fw=fw)
    assert plan.commands == (('--zone=libvirt', '--remove-interface=br-a'),
                             ('--permanent', '--zone=libvirt', '--remove-interface=br-a'))
    assert not network_firewalld.plan(_spec(), 'absent', previous_zone=None, fw=fw).changed


def test_nft_listing_normalisation():
    text = ('table ip libvirt_network { # handle 7\n\tchain guest_cross { # handle 3\n'
            '\t\tiif "virbr0" oif "virbr0" counter packets 12 bytes 3400 accept # handle 9\n\t}\n}\n')
    assert network_nft_apply.normalise_listing(text) == (
        'table ip libvirt_network {\n\tchain guest_cross {\n\t\tiif "virbr0" oif "virbr0" counter accept\n\t}\n}\n')
    assert network_nft_apply.normalise_listing(None) is None
