# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Changing a filter that half of 50 NICs use, with ``--check --diff`` first, in both NIC layouts.

Driven by ``ansible-playbook`` in a throwaway hypervisor (the taps need not exist: rules are
installed for absent taps too).  Check mode names exactly the NICs whose filter tree holds the
filter (``rebuilt`` and the objects that would be repaired) and changes nothing; the real run
changes exactly those; a second run changes nothing.
"""

from __future__ import annotations

import re

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import require_environment, run_tasks

NWFILTER = 'hypervisor.netfilter.nwfilter'
NIC = 'hypervisor.netfilter.guest_nic_filter'
COUNT = 50


def _web(port):
    return dict(name='many-web', chain='root', filterrefs=[{'filter': 'clean-traffic'}],
                rules=[{'action': 'accept', 'direction': 'in', 'priority': 100, 'tcp': {'dstportstart': port}},
                       {'action': 'drop', 'direction': 'in', 'priority': 1000, 'all': {}}])


def _dumps(hv):
    out = [hv.host.run([tool]).stdout for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save')]
    out.append(hv.host.run(['nft', 'list', 'ruleset']).stdout)
    return [re.sub(r'^#.*$|\[\d+:\d+\]|counter packets \d+ bytes \d+', '', text, flags=re.M) for text in out]


@pytest.mark.parametrize('layout', ['iptables', 'nftables'])
def test_filter_change_touches_exactly_its_users(tmp_path, layout):
    require_environment()
    state_dir = str(tmp_path / 'state')
    nics = [dict(interface='vm%d-eth0' % i, mac='52:54:00:10:00:%02x' % i, parameters={'IP': '10.1.0.%d' % (i + 1)},
                 filter='many-web' if i % 2 == 0 else 'clean-traffic') for i in range(COUNT)]
    users = sorted(n['interface'] for n in nics if n['filter'] == 'many-web')
    with ThrowawayHypervisor(guests=0) as hv:
        results, _proc = run_tasks(hv.host, tmp_path, [(NWFILTER, dict(_web(80), state_dir=state_dir)), (NIC, dict(
            state_dir=state_dir, nics=nics, firewall_backend=layout))])
        assert results[1]['changed']
        before = _dumps(hv)

        check, _proc = run_tasks(hv.host, tmp_path, [(NWFILTER, dict(_web(443), state_dir=state_dir))],
                                 check=True, diff=True)
        assert check[0]['changed'] and sorted(check[0]['rebuilt']) == users
        would = sorted(o['name'] for o in check[0]['objects'] if o['status'] != 'in_sync')
        assert would == users
        assert any('443' in d.get('after', '') for d in check[0]['diff'])
        assert _dumps(hv) == before

        real, _proc = run_tasks(hv.host, tmp_path, [(NWFILTER, dict(_web(443), state_dir=state_dir))])
        assert real[0]['changed'] and sorted(real[0]['rebuilt']) == users
        assert sorted(o['name'] for o in real[0]['objects'] if o['status'] == 'repaired') == users
        again, _proc = run_tasks(hv.host, tmp_path, [(NWFILTER, dict(_web(443), state_dir=state_dir)),
                                                     (NIC, dict(state_dir=state_dir, nics=nics))])
        assert not again[0]['changed'] and not again[1]['changed']
