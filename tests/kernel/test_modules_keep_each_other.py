# -*- coding: utf-8 -*-
"""No module run leaves another module's rules missing (issue 10).

A real ``ansible-playbook`` in a throwaway hypervisor with a real firewalld
(private D-Bus, own configuration) in the same namespace: bind the guest NICs
with guest_nic_filter, then add a NAT network with virt_network.  Defining
libvirt's firewalld zone makes virt_network reload firewalld, and firewalld
1.3 flushes the ebtables and iptables tables on reload, so without the closing
whole-host reconcile every NIC filter is gone while both tasks report success.
Then a flush by another tool, repaired by guest_nic_filter without restating
any NIC.
"""

from __future__ import annotations

import os

from ansible_collections.hypervisor.netfilter.tests.lib.firewalld import PrivateFirewalld, require_firewalld
from ansible_collections.hypervisor.netfilter.tests.lib.fixtures import require_tools, skip_unless_namespaces
from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import playbook_binary, run_tasks


def nic_rules(hv):
    """Our guest NIC rules: every ebtables/iptables/ip6tables line that names a guest port."""
    out = {}
    for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save'):
        text = hv.host.run([tool]).stdout
        out[tool] = [line for line in text.splitlines() if 'vnet' in line and not line.startswith('#')]
    return out


def test_nic_filters_survive_virt_network_reloading_firewalld(tmp_path):
    skip_unless_namespaces()
    require_tools('ebtables-save', 'iptables-save', 'nft')
    require_firewalld()
    assert playbook_binary(), 'ansible-playbook not found'
    with ThrowawayHypervisor(guests=2, tag='keep') as hv:
        fw = PrivateFirewalld(hv.host, str(tmp_path / 'fw'))
        os.makedirs(fw.dir)
        try:
            fw.start()
            state_dir = str(tmp_path / 'state')
            nics = dict(state_dir=state_dir, nics=[
                dict(interface=g.port, mac=g.mac, filter='clean-traffic', parameters={'IP': g.ip})
                for g in hv.guests])
            network = dict(state_dir=state_dir, name='keepnet', bridge='virbrk', forward_mode='nat',
                           ipv4={'address': '10.77.0.1/24'})
            (bound,), _proc = run_tasks(hv.host, tmp_path, [('hypervisor.netfilter.guest_nic_filter', nics)],
                                        env=fw.env)
            assert bound['changed']
            filtered = nic_rules(hv)
            assert '-A I-%s-mac -s %s -j RETURN' % (hv.guests[0].port, hv.guests[0].mac) in filtered['ebtables-save']

            (net,), _proc = run_tasks(hv.host, tmp_path, [('hypervisor.netfilter.virt_network', network)],
                                      env=fw.env)
            assert net['changed'] and 'firewalld: define libvirt' in net['changes']
            assert fw.zone_of('virbrk') == 'libvirt'
            # The reload flushed the NIC filters; the closing reconcile put them back and says so.
            assert nic_rules(hv) == filtered
            repaired = sorted(o['name'] for o in net['objects'] if o['kind'] == 'binding' and o['status'] == 'repaired')
            assert repaired == sorted(g.port for g in hv.guests)
            assert [o['status'] for o in net['objects'] if o['kind'] == 'network'] == ['in_sync']

            # The whole play again: nothing to do, nothing lost.
            again, _proc = run_tasks(hv.host, tmp_path, [('hypervisor.netfilter.guest_nic_filter', nics),
                                                         ('hypervisor.netfilter.virt_network', network)], env=fw.env)
            assert [r['changed'] for r in again] == [False, False]
            assert nic_rules(hv) == filtered

            # Flushed by another tool: guest_nic_filter with nothing restated puts every stored binding back.
            hv.host.run(['ebtables', '-t', 'nat', '-F'])
            assert nic_rules(hv)['ebtables-save'] != filtered['ebtables-save']
            (reapplied,), _proc = run_tasks(hv.host, tmp_path, [('hypervisor.netfilter.guest_nic_filter',
                                                                 dict(state_dir=state_dir))], env=fw.env)
            assert reapplied['changed'] and reapplied['added'] == [] and nic_rules(hv) == filtered
            assert sorted(o['name'] for o in reapplied['objects'] if o['status'] == 'repaired') == \
                sorted(g.port for g in hv.guests)
        finally:
            fw.stop()
