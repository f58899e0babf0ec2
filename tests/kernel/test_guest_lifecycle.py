# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guests' lives on one host, through ``ansible-playbook``, in both NIC layouts.

Two guests swap taps in one play (each tap gets the other's MAC and IP), a guest migrates
away (unbound) and back, a tap is recreated with another MAC.  Every step changes exactly
the NICs concerned, a repeat changes nothing, and the end state is the one a fresh host gets
from the final bindings in one run (same dumps).
"""

from __future__ import annotations

import re

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import require_environment, run_tasks

NIC = 'hypervisor.netfilter.guest_nic_filter'


def _dumps(hv):
    out = dict((tool, [line for line in hv.host.run([tool]).stdout.splitlines() if not line.startswith('#')])
               for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save'))
    table = hv.host.run(['nft', 'list', 'table', 'bridge', 'hnf_nic'], check=False).stdout
    out['nft'] = re.sub(r'counter packets \d+ bytes \d+', 'counter', table)
    return out


def _nic(port, mac, ip):
    return dict(interface=port, mac=mac, filter='clean-traffic', parameters={'IP': ip})


@pytest.mark.parametrize('layout', ['iptables', 'nftables'])
def test_swap_migrate_and_recreate(tmp_path, layout):
    require_environment()
    state_dir = str(tmp_path / 'state')

    def play(*tasks, **kwargs):
        results, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(t, state_dir=state_dir)) for t in tasks], **kwargs)
        return results[0]

    with ThrowawayHypervisor(guests=3) as hv:
        g0, g1, g2 = hv.guests
        first = play(dict(nics=[_nic(g.port, g.mac, g.ip) for g in hv.guests], firewall_backend=layout))
        assert first['changed']

        swapped = [_nic(g0.port, g1.mac, g1.ip), _nic(g1.port, g0.mac, g0.ip), _nic(g2.port, g2.mac, g2.ip)]
        check = play(dict(nics=swapped), check=True)
        assert check['changed'] and sorted(check['interfaces_changed']) == [g0.port, g1.port]
        done = play(dict(nics=swapped))
        assert sorted(done['updated']) == [g0.port, g1.port] and sorted(done['interfaces_changed']) == [g0.port, g1.port]
        assert not play(dict(nics=swapped))['changed']

        away = play(dict(state='absent', interface=g2.port))
        assert away['removed'] == [g2.port] and away['interfaces_changed'] == [g2.port]
        back = play(_nic(g2.port, g2.mac, g2.ip))
        assert back['added'] == [g2.port] and back['interfaces_changed'] == [g2.port]

        hv.host.ip('link', 'del', g0.port)  # the guest stops; its tap comes back with another MAC
        hv.host.ip('link', 'add', g0.port, 'type', 'veth', 'peer', 'name', 'lc-peer0')
        hv.host.own_interfaces.add('lc-peer0')
        recreated = play(_nic(g0.port, '52:54:00:aa:bb:cc', g1.ip))
        assert recreated['updated'] == [g0.port] and recreated['interfaces_changed'] == [g0.port]
        assert not play(_nic(g0.port, '52:54:00:aa:bb:cc', g1.ip))['changed']
        final = _dumps(hv)
        gathered = play(dict(state='gathered'))
        assert gathered['in_sync']
        bindings = [dict((k, b[k]) for k in ('interface', 'mac', 'filter', 'parameters')) for b in gathered['bindings']]

    fresh_dir = tmp_path / 'fresh'
    fresh_dir.mkdir()
    with ThrowawayHypervisor(guests=3) as hv:
        state_dir = str(fresh_dir / 'state')
        assert play(dict(nics=bindings, firewall_backend=layout))['changed']
        assert _dumps(hv) == final
