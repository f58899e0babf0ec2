# -*- coding: utf-8 -*-
"""virt_network with a real firewalld running inside a test namespace.

The test starts a private D-Bus system bus (its own dbus-daemon on a socket in
the test's temp dir) and a firewalld inside a throwaway namespace with its own
configuration directory (``--system-config``), so neither the host's
firewalld (if any) nor its configuration is ever reached. The module talks
to it through ``firewall-cmd`` with ``DBUS_SYSTEM_BUS_ADDRESS`` pointing at the
private bus. Both processes are stopped by their pids, the namespace deleted.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host import firewalld as network_firewalld
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import Runner, find_tool
from ansible_collections.hypervisor.netfilter.tests.lib.network_support import (
    dump_all, require_kernel, run_module)
from ansible_collections.hypervisor.netfilter.tests.lib.firewalld import PrivateFirewalld, require_firewalld
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns
from ansible_collections.hypervisor.netfilter.tests.lib.network_traffic import UPSTREAM, UPSTREAM_HOST, Lab, connect


@pytest.fixture
def firewalld(tmp_path):
    require_kernel()
    require_firewalld()
    with Netns(tag='fwd') as ns:
        fw = PrivateFirewalld(ns, str(tmp_path / 'fw'))
        os.makedirs(fw.dir)
        try:
            fw.start()
            yield fw
        finally:
            fw.stop()


def _module(fw, tmp_path, **args):
    args.setdefault('state_dir', str(tmp_path / 'state'))
    return run_module(fw.ns, env=fw.env, **args)


@pytest.mark.parametrize('backend', ('nftables', 'iptables'))
def test_nat_bridge_lands_in_libvirt_zone_idempotent_and_absent(firewalld, tmp_path, backend):
    fw = firewalld
    assert 'libvirt' not in fw.cmd('--get-zones').stdout.split()
    args = dict(name='natnet', bridge='virbrf', forward_mode='nat', firewall_backend=backend,
                ipv4={'address': '10.70.0.1/24', 'dhcp': True})
    check = _module(fw, tmp_path, check=True, **args)
    assert check['changed'] is True and 'firewalld: define libvirt' in check['changes']
    assert 'libvirt' not in fw.cmd('--get-zones').stdout.split()

    first = _module(fw, tmp_path, **args)
    assert first['zone'] == 'libvirt'
    assert fw.zone_of('virbrf') == 'libvirt'
    assert fw.zone_of('virbrf', permanent=True) == 'libvirt'
    zone = fw.cmd('--zone=libvirt', '--list-all').stdout
    assert 'target: ACCEPT' in zone
    assert 'services: dhcp dhcpv6 dns ssh tftp' in zone
    assert 'protocols: icmp ipv6-icmp' in zone
    assert 'rule priority="32767" reject' in zone
    applied = dump_all(fw.ns)

    second = _module(fw, tmp_path, **args)
    assert second['changes'] == [] and second['changed'] is False and second['zone'] == 'libvirt', second['diff']
    assert dump_all(fw.ns) == applied

    gone = _module(fw, tmp_path, name='natnet', state='absent')
    assert gone['changed'] is True
    assert fw.zone_of('virbrf') is None
    assert fw.zone_of('virbrf', permanent=True) is None
    assert _module(fw, tmp_path, name='natnet', state='absent')['changed'] is False


def test_routed_network_uses_libvirt_routed_and_its_policies(firewalld, tmp_path):
    fw = firewalld
    result = _module(fw, tmp_path, name='rt', bridge='virbrq', forward_mode='route',
                     ipv4={'address': '10.71.0.1/24'})
    assert result['zone'] == 'libvirt-routed'
    assert fw.zone_of('virbrq') == 'libvirt-routed'
    policies = fw.cmd('--get-policies').stdout.split()
    assert {'libvirt-routed-in', 'libvirt-routed-out', 'libvirt-to-host'} <= set(policies)
    to_host = fw.cmd('--policy=libvirt-to-host', '--list-all').stdout
    assert 'target: REJECT' in to_host and 'ingress-zones: libvirt-routed' in to_host
    assert 'egress-zones: HOST' in to_host
    routed_in = fw.cmd('--policy=libvirt-routed-in', '--list-all').stdout
    assert 'target: ACCEPT' in routed_in and 'egress-zones: libvirt-routed' in routed_in
    assert _module(fw, tmp_path, name='rt', bridge='virbrq', forward_mode='route',
                   ipv4={'address': '10.71.0.1/24'})['changed'] is False


def test_explicit_zone_and_open_network(firewalld, tmp_path):
    fw = firewalld
    result = _module(fw, tmp_path, name='op', bridge='virbro', forward_mode='open', ipv4={'address': '10.72.0.1/24'})
    assert 'zone' not in result and fw.zone_of('virbro') is None
    result = _module(fw, tmp_path, name='tz', bridge='virbrz', forward_mode='nat', zone='trusted',
                     ipv4={'address': '10.73.0.1/24'})
    assert result['zone'] == 'trusted' and fw.zone_of('virbrz') == 'trusted'
    assert 'libvirt' not in fw.cmd('--get-zones').stdout.split()  # not needed, not defined
    failed = run_module(fw.ns, env=fw.env, expect_failure=True, name='nz', bridge='virbrn', forward_mode='nat',
                        zone='nosuchzone', state_dir=str(tmp_path / 'state'), ipv4={'address': '10.74.0.1/24'})
    assert 'firewalld zone nosuchzone (requested for network nz) does not exist' in failed['msg']


def test_busctl_and_firewall_cmd_give_the_same_answers(firewalld, monkeypatch):
    """The reads go through busctl (about 5 ms each, not a Python start); a host
    without busctl asks firewall-cmd the same questions and gets the same answers."""
    fw = firewalld
    if find_tool('busctl') is None:
        pytest.skip('busctl (systemd) is not installed')
    fw.cmd('--zone=trusted', '--change-interface=virbrq')
    fw.cmd('--permanent', '--zone=work', '--change-interface=virbrq')
    monkeypatch.setenv('DBUS_SYSTEM_BUS_ADDRESS', fw.env['DBUS_SYSTEM_BUS_ADDRESS'])
    answers = []
    for with_busctl in (True, False):
        runner = Runner()
        client = network_firewalld.Firewalld(runner)
        if not with_busctl:
            client.busctl = None
        answers.append((client.running(), client.version(), client.names('zones', permanent=True),
                        client.names('policies', permanent=True), client.zone_of('virbrq'),
                        client.zone_of('virbrq', permanent=True), client.zone_of('virbrnone'),
                        client.zone_of('virbrnone', permanent=True)))
        tools = set(os.path.basename(argv[0]) for _kind, argv in runner.calls)
        assert tools == ({'busctl'} if with_busctl else {'firewall-cmd'}), runner.calls
    assert answers[0] == answers[1]
    assert answers[0][0] is True and answers[0][4:] == ('trusted', 'work', None, None)
    assert {'public', 'trusted', 'work'} <= answers[0][2]


def test_zone_without_firewalld_is_an_error(tmp_path):
    require_kernel()
    with Netns(tag='nofw') as ns:
        before = dump_all(ns)
        failed = run_module(ns, expect_failure=True, env={'DBUS_SYSTEM_BUS_ADDRESS': 'unix:path=/nonexistent/bus'},
                            name='z', bridge='virbrw', forward_mode='nat', zone='libvirt',
                            state_dir=str(tmp_path), ipv4={'address': '10.75.0.1/24'})
        assert failed['msg'] == 'zone libvirt requested for network z but firewalld is not active'
        assert dump_all(ns) == before
        # without a zone and without firewalld nothing of firewalld is touched
        result = run_module(ns, env={'DBUS_SYSTEM_BUS_ADDRESS': 'unix:path=/nonexistent/bus'}, name='z',
                            bridge='virbrw', forward_mode='nat', state_dir=str(tmp_path),
                            ipv4={'address': '10.75.0.1/24'})
        assert 'zone' not in result
        assert not any('firewalld' in change for change in result['changes'])


REFERENCE_FIREWALLD = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))),
                                   '..', 'shared', 'reference', 'libvirt-11.3.0', 'firewalld')


def _firewalld_effect(ns_tag, tmp_dir, preload_reference):
    """Start firewalld (optionally with libvirt's own zone/policy files), put a NAT
    and a routed network in with the module, return what firewalld made of it."""
    with Netns(tag=ns_tag) as ns:
        fw = PrivateFirewalld(ns, tmp_dir)
        os.makedirs(tmp_dir)
        if preload_reference:
            etc = os.path.join(tmp_dir, 'etc')
            for sub in ('zones', 'policies'):
                os.makedirs(os.path.join(etc, sub))
            for name in sorted(os.listdir(REFERENCE_FIREWALLD)):
                base, kind = os.path.splitext(name)
                target = os.path.join(etc, 'zones' if kind == '.zone' else 'policies', base + '.xml')
                with open(os.path.join(REFERENCE_FIREWALLD, name)) as src, open(target, 'w') as dst:
                    dst.write(src.read())
        try:
            fw.start()
            state_dir = os.path.join(tmp_dir, 'state')
            nat = run_module(ns, env=fw.env, name='n', bridge='virbr0', forward_mode='nat', state_dir=state_dir,
                             ipv4={'address': '10.90.0.1/24'})
            routed = run_module(ns, env=fw.env, name='r', bridge='virbr1', forward_mode='route',
                                state_dir=state_dir, ipv4={'address': '10.91.0.1/24'})
            defined = [c for c in nat['changes'] + routed['changes'] if c.startswith('firewalld: define')]
            listing = {}
            for zone in ('libvirt', 'libvirt-routed'):
                listing[zone] = fw.cmd('--zone=' + zone, '--list-all').stdout
            for policy in ('libvirt-routed-in', 'libvirt-routed-out', 'libvirt-to-host'):
                listing[policy] = fw.cmd('--policy=' + policy, '--list-all').stdout
            nft = _chains_sorted(ns.run(['nft', 'list', 'table', 'inet', 'firewalld']).stdout)
            return defined, listing, nft
        finally:
            fw.stop()


def _chains_sorted(listing):
    """An nft table listing with its chain (and other object) blocks sorted by
    name: firewalld creates chains of zones it learns later further down."""
    blocks = []
    for line in listing.splitlines():
        if line.startswith('\t') and not line.startswith('\t\t') and line.rstrip().endswith('{'):
            blocks.append([line])
        elif blocks and blocks[-1][-1] != '\t}':
            blocks[-1].append(line)
    return '\n'.join('\n'.join(block) for block in sorted(blocks, key=lambda b: b[0]))


def test_our_zone_definitions_act_like_libvirts_files(tmp_path):
    """firewalld with libvirt's own zone/policy files vs. firewalld with the
    definitions this module writes: same zone/policy settings, same nft rules."""
    require_kernel()
    require_firewalld()
    if not os.path.isdir(REFERENCE_FIREWALLD):
        pytest.skip('libvirt reference firewalld files not found at %s (../shared is absent)' % REFERENCE_FIREWALLD)
    ref_defined, ref_listing, ref_nft = _firewalld_effect('fwref', str(tmp_path / 'ref'), True)
    our_defined, our_listing, our_nft = _firewalld_effect('fwour', str(tmp_path / 'our'), False)
    assert ref_defined == []  # libvirt's files were there: nothing to define
    assert sorted(our_defined) == ['firewalld: define libvirt', 'firewalld: define libvirt-routed',
                                   'firewalld: define libvirt-routed-in', 'firewalld: define libvirt-routed-out',
                                   'firewalld: define libvirt-to-host']
    assert our_listing == ref_listing
    assert 'iifname "virbr0" goto filter_IN_libvirt' in our_nft
    assert our_nft == ref_nft


def test_guest_traffic_passes_firewalld_only_through_the_libvirt_zone(tmp_path):
    """firewalld's default zone rejects forwarded traffic; the libvirt zone lets the
    network's own rules decide. A zone changed behind our back is put back."""
    require_kernel()
    require_firewalld()
    with Lab('fwt') as lab:
        fw = PrivateFirewalld(lab.host, str(tmp_path / 'fw'))
        os.makedirs(fw.dir)
        try:
            fw.start()
            args = dict(name='natfw', bridge='virbrt', forward_mode='nat', firewall_backend='nftables',
                        state_dir=str(tmp_path / 'state'), ipv4={'address': '10.54.0.1/24'})
            assert _module(fw, tmp_path, **args)['zone'] == 'libvirt'
            lab.plug_guests('virbrt', '10.54.0')
            server = lab.server(lab.upstream, UPSTREAM, 8080)
            assert connect(lab.guests[0], UPSTREAM, 8080) == 'ok'
            fw.cmd('--zone=public', '--change-interface=virbrt')
            # firewalld's public zone: reject with icmpx admin-prohibited -> EHOSTUNREACH (113)
            assert connect(lab.guests[0], UPSTREAM, 8080) == 'error 113'
            repaired = _module(fw, tmp_path, **args)
            assert repaired['changed'] is True and 'firewalld: put virbrt into zone libvirt' in repaired['changes']
            assert fw.zone_of('virbrt') == 'libvirt'
            assert connect(lab.guests[0], UPSTREAM, 8080) == 'ok'
            assert server.peers() == [UPSTREAM_HOST, UPSTREAM_HOST]
        finally:
            fw.stop()
