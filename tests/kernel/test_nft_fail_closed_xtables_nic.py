# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables layout with ``drop_unbound_interfaces``, and a bound NIC that stays on ebtables.

A filter using ``gratuitous`` ARP has no nft spelling here, so its NIC is filtered entirely by
ebtables/iptables.  It is bound all the same: the fail-closed drop for unbound taps
(``iifname "vnet*" drop``) must not cut it off, while its ebtables chains still see its frames
and an unbound tap stays dropped.  Driven by ``ansible-playbook`` in a throwaway hypervisor.
"""

from __future__ import annotations

import re

from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import require_environment, run_tasks

NWFILTER = 'hypervisor.netfilter.nwfilter'
NIC = 'hypervisor.netfilter.guest_nic_filter'
GARP = dict(name='fc-garp', chain='arp',
            rules=[{'action': 'accept', 'direction': 'out', 'priority': 100, 'arp': {'gratuitous': True}}])
GARP_ROOT = dict(name='fc-garp-root', chain='root',
                 filterrefs=[{'filter': 'fc-garp'}, {'filter': 'no-mac-spoofing'}])


def _pings(guest, address):
    proc = guest.ns.run(['ping', '-c', '2', '-i', '0.2', '-W', '1', address], check=False)
    match = re.search(r'(\d+) received', proc.stdout)
    return int(match.group(1)) if match else 0


def _mac_chain_packets(hv, port):
    """Frames ebtables' I-<port>-mac chain let through (its RETURN rule's counter)."""
    out = hv.host.run(['ebtables', '-t', 'nat', '-L', 'I-%s-mac' % port, '--Lc']).stdout
    match = re.search(r'-j RETURN\s*,\s*pcnt = (\d+)', out)
    return int(match.group(1)) if match else -1


def test_bound_xtables_nic_passes_the_fail_closed_drop(tmp_path):
    require_environment()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=3) as hv:
        g0, g1, g2 = hv.guests
        nics = [dict(interface=g0.port, mac=g0.mac, filter='clean-traffic', parameters={'IP': g0.ip}),
                dict(interface=g1.port, mac=g1.mac, filter='fc-garp-root')]
        results, _proc = run_tasks(hv.host, tmp_path, [
            (NWFILTER, dict(GARP, state_dir=state_dir)), (NWFILTER, dict(GARP_ROOT, state_dir=state_dir)),
            (NIC, dict(state_dir=state_dir, nics=nics, firewall_backend='nftables',
                       drop_unbound_interfaces=['vnet*']))])
        assert results[-1]['changed']
        assert any('stays on the ebtables/iptables layout' in w for w in results[-1].get('warnings', []))

        assert _pings(g0, hv.host_ip) == 2  # nftables-filtered NIC
        before = _mac_chain_packets(hv, g1.port)
        assert before >= 0
        assert _pings(g1, hv.host_ip) == 2  # bound, filtered by ebtables: not dropped as unbound
        assert _mac_chain_packets(hv, g1.port) > before  # ... and ebtables still saw its frames
        assert _pings(g2, hv.host_ip) == 0  # unbound: dropped

        again, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(state_dir=state_dir, nics=nics))])
        assert not again[0]['changed']
