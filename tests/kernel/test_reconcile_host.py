# -*- coding: utf-8 -*-
"""reconcile_host in a throwaway hypervisor: the stored state alone brings every rule back.

A network (iptables layout, nat, bridge we create) and two guest NIC bindings
are *stored* only (as a module leaves them); ``reconcile_host`` runs inside
the hypervisor namespace the way the host agent runs on a host (a Python
process in that namespace, so ``/sys``, ``/proc/sys`` and every tool are the
namespace's).  Then everything is flushed (iptables -F, ebtables -t nat -F,
nft flush ruleset) as firewalld or another tool would: check mode names what
is missing and changes nothing, a real run restores dumps identical to the
ones before, and the next run is in sync without writing.

Fail closed: a binding whose tap does not exist yet gets its rules; when the
tap appears, the first spoofed frames are already dropped.
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

import ansible_collections
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network import parse as network_parse
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import networks as network_store
from ansible_collections.hypervisor.netfilter.tests.lib.packets import (
    COPIES, frame_specs, require_environment, send_and_count)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor, missing_tools

COLLECTIONS_ROOT = os.path.dirname(list(ansible_collections.__path__)[0])
_COUNTERS = re.compile(r'\[\d+:\d+\]|counter packets \d+ bytes \d+|-c \d+ \d+')

# Runs inside the hypervisor namespace: one reconcile, the report as JSON.
_RECONCILE = r'''
import json, sys
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile.host import reconcile_host
args = json.loads(sys.argv[1])
report = reconcile_host(args["state_dir"], check_mode=args["check_mode"], firewalld="never")
out = report.to_dict()
out["nic_writes"] = [list(a) for a in report.nics.sync.writes] if report.nics is not None else None
print(json.dumps(out))
'''


def reconcile(ns, state_dir, check_mode=False):
    proc = ns.run([sys.executable, '-c', _RECONCILE, json.dumps({'state_dir': state_dir, 'check_mode': check_mode})],
                  check=False, env=dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dumps(ns):
    """Every table of the namespace, counters removed."""
    out = []
    for argv in (['iptables-save'], ['ip6tables-save'], ['ebtables-save'], ['nft', 'list', 'ruleset']):
        text = ns.run(argv).stdout
        out.append('### ' + argv[0])
        out.extend(_COUNTERS.sub('', line).rstrip() for line in text.splitlines() if not line.startswith('#'))
    return '\n'.join(out) + '\n'


def flush_everything(ns):
    for argv in (['iptables', '-F'], ['iptables', '-t', 'nat', '-F'], ['iptables', '-t', 'mangle', '-F'],
                 ['ip6tables', '-F'], ['ebtables', '-t', 'nat', '-F'], ['nft', 'flush', 'ruleset']):
        ns.run(argv)


def statuses(report):
    return dict(((o['kind'], o['name']), o['status']) for o in report['objects'])


def store_network(state_dir, bridge):
    spec = network_parse.spec_from_options({
        'name': 'default', 'bridge': bridge, 'forward_mode': 'nat',
        'ipv4': {'address': '192.168.150.1/24', 'dhcp_range': {'start': '192.168.150.2', 'end': '192.168.150.254'}},
        'ipv6': [{'address': 'fd00:150::1', 'prefix': 64}]})
    network_store.save(state_dir, network_store.StoredNetwork(spec=spec, backend='iptables', seq=1,
                                                              xtables_backend='nft'))


def store_bindings(state_dir, guests):
    binding_store.save_bindings(state_dir, [
        binding_store.make_binding(g.port, g.mac, 'clean-traffic', {'IP': g.ip}, seq=i + 1)
        for i, g in enumerate(guests)])


def _require():
    require_environment()
    missing = missing_tools('iptables-save', 'ip6tables-save', 'ebtables-save', 'nft')
    if missing:
        pytest.skip('missing tools: %s' % ', '.join(missing))


def test_flushed_host_is_reported_then_restored_identically(tmp_path):
    _require()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=2) as hv:
        bridge = 'hnfrc%d' % (os.getpid() % 10000)
        store_network(state_dir, bridge)
        store_bindings(state_dir, hv.guests)
        expected = {('network', 'default'), ('binding', 'vnet0'), ('binding', 'vnet1')}

        first = reconcile(hv.host, state_dir)
        assert not first['failed'] and first['changed'], first
        assert statuses(first) == dict((key, 'repaired') for key in expected)
        applied = dumps(hv.host)
        assert '-A LIBVIRT_PRT -s 192.168.150.0/24 ! -d 192.168.150.0/24 -j MASQUERADE' in applied
        assert '-A PREROUTING -i vnet0 -j libvirt-I-vnet0' in applied
        assert '-A PREROUTING -i vnet1 -j libvirt-I-vnet1' in applied
        assert bridge in hv.host.ip('link', 'show').stdout

        second = reconcile(hv.host, state_dir)
        assert not second['changed'] and second['nic_writes'] == []
        assert statuses(second) == dict((key, 'in_sync') for key in expected)
        assert dumps(hv.host) == applied

        flush_everything(hv.host)
        flushed = dumps(hv.host)
        assert 'libvirt-I-vnet0' not in flushed and 'LIBVIRT_PRT' not in flushed

        check = reconcile(hv.host, state_dir, check_mode=True)
        assert check['changed'] and not check['failed'] and check['nic_writes'] == []
        assert statuses(check) == dict((key, 'would_repair') for key in expected)
        missing = dict((o['name'], o['missing']) for o in check['objects'])
        assert 'missing chain ebtables nat libvirt-I-vnet0 (9 rules)' in missing['vnet0']
        assert 'missing hook ebtables nat PREROUTING: -i vnet0 -j libvirt-I-vnet0' in missing['vnet0']
        assert not any('vnet0' in line for line in missing['vnet1'])
        assert any('LIBVIRT_PRT' in line for line in missing['default'])
        assert dumps(hv.host) == flushed  # check mode changed nothing

        repaired = reconcile(hv.host, state_dir)
        assert statuses(repaired) == dict((key, 'repaired') for key in expected)
        assert dumps(hv.host) == applied

        third = reconcile(hv.host, state_dir)
        assert not third['changed'] and third['nic_writes'] == []
        assert statuses(third) == dict((key, 'in_sync') for key in expected)


def _add_tap(hv, guest):
    """Create ``guest``'s port again the way ThrowawayHypervisor wires a guest (a tap appearing)."""
    host = hv.host
    host.ip('link', 'add', guest.port, 'type', 'veth', 'peer', 'name', guest.nic, 'netns', guest.ns.name)
    host.ip('link', 'set', guest.port, 'master', hv.bridge)
    host.ip('link', 'set', guest.port, 'up')
    guest.ns.ip('link', 'set', guest.nic, 'address', guest.mac)
    guest.ns.ip('addr', 'add', guest.ip + '/24', 'dev', guest.nic)
    guest.ns.ip('link', 'set', guest.nic, 'up')


def test_binding_of_an_absent_tap_filters_from_its_first_frame(tmp_path):
    _require()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=2) as hv:
        guest, peer = hv.guests[0], hv.guests[1]
        hv.host.ip('link', 'del', guest.port)  # the guest is not running: no tap
        store_bindings(state_dir, [guest])

        first = reconcile(hv.host, state_dir)
        assert statuses(first) == {('binding', guest.port): 'repaired'}
        assert '-A PREROUTING -i %s -j libvirt-I-%s' % (guest.port, guest.port) in dumps(hv.host)
        again = reconcile(hv.host, state_dir)  # a run while the tap is absent keeps its rules
        assert not again['changed'] and again['nic_writes'] == []
        before_tap = dumps(hv.host)

        _add_tap(hv, guest)
        peer.ns.run(['ping', '-c', '1', '-W', '1', hv.host_ip], check=False)
        specs = frame_specs(guest, peer)
        # No reconcile after the tap appeared: the rules installed before are in force.
        counts = send_and_count(hv, specs, str(tmp_path), 'late-tap')
        assert counts == dict((name, expected) for name, expected, _b, _s in specs), counts
        assert counts['spoofed source MAC'] == 0 and counts['own IPv4 traffic'] == COPIES
        assert dumps(hv.host) == before_tap


def test_skip_missing_interfaces_is_the_old_behaviour_on_request(tmp_path):
    _require()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=1) as hv:
        guest = hv.guests[0]
        hv.host.ip('link', 'del', guest.port)
        store_bindings(state_dir, [guest])
        with open(os.path.join(state_dir, 'host.json'), 'w') as handle:
            json.dump({'version': 1, 'settings': {'skip_missing_interfaces': True}}, handle)
        report = reconcile(hv.host, state_dir)
        assert statuses(report) == {('binding', guest.port): 'skipped'}
        assert 'does not exist' in report['warnings'][0]
        assert 'libvirt-I-%s' % guest.port not in dumps(hv.host)


def test_libvirt_network_chains_stay_when_no_network_is_stored(tmp_path):
    """A host where we never stored a network: LIBVIRT_* chains (libvirtd's) are left alone."""
    _require()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=1) as hv:
        hv.host.run(['iptables', '-N', 'LIBVIRT_INP'])
        hv.host.run(['iptables', '-A', 'INPUT', '-j', 'LIBVIRT_INP'])
        store_bindings(state_dir, hv.guests)
        report = reconcile(hv.host, state_dir)
        assert statuses(report) == {('binding', 'vnet0'): 'repaired'}
        assert '-A INPUT -j LIBVIRT_INP' in dumps(hv.host)
