# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``guest_nic_filter state: rendered`` on a host with the nftables NIC layout, through ``ansible-playbook``.

What ``rendered`` returns must be what ``present`` would install in the host's layout: the
``nft -f`` script of ``table bridge hnf_nic`` (loaded into an empty namespace it gives the same
table as the real run) plus the rules kept on iptables, and it touches nothing.
"""

from __future__ import annotations

import os
import re

from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns, ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import require_environment, run_tasks, web_filter

NIC = 'hypervisor.netfilter.guest_nic_filter'
WEB = web_filter('rnd-web')


def _table(ns):
    text = ns.run(['nft', 'list', 'table', 'bridge', 'hnf_nic']).stdout
    return re.sub(r'counter packets \d+ bytes \d+', 'counter', text)


def test_rendered_is_the_nftables_layout_present_installs(tmp_path):
    require_environment()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=2) as hv:
        g0, g1 = hv.guests
        nics = [dict(interface=g0.port, mac=g0.mac, filter='clean-traffic', parameters={'IP': g0.ip}),
                dict(interface=g1.port, mac=g1.mac, filter='rnd-web', parameters={'IP': g1.ip})]
        defined, _proc = run_tasks(hv.host, tmp_path, [('hypervisor.netfilter.nwfilter', dict(WEB, state_dir=state_dir))])
        assert defined[0]['changed']
        rendered, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(
            state_dir=state_dir, state='rendered', nics=nics, firewall_backend='nftables',
            drop_unbound_interfaces=['vnet*']))])
        out = rendered[0]['rendered']
        assert 'add table bridge hnf_nic' in out['nftables']
        assert '-A FI-%s' % g1.port in out['iptables']  # the IP layer that needs conntrack stays there
        assert 'libvirt-I-' not in out['ebtables']  # the Ethernet layer is nftables
        stored = set(os.listdir(state_dir))  # touched nothing: no bindings, no settings, no cache
        assert not stored & {'bindings.json', 'host.json', 'cache'}, stored
        assert 'hnf_nic' not in hv.host.run(['nft', 'list', 'tables']).stdout

        present, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(
            state_dir=state_dir, nics=nics, firewall_backend='nftables', drop_unbound_interfaces=['vnet*']))])
        assert present[0]['changed']
        with Netns(tag='rnd') as empty:
            empty.run(['nft', '-f', '-'], input_text=out['nftables'])
            assert _table(empty) == _table(hv.host)
        # With the stored layout (no option given) rendered says the same.
        again, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(state_dir=state_dir, state='rendered', nics=nics))])
        assert again[0]['rendered'] == out

        # nwfilter's rendered (the users of a changed filter) is in the host's layout too.
        changed_web = dict(WEB, rules=[dict(WEB['rules'][0], tcp={'dstportstart': 443}), WEB['rules'][1]])
        filt, _proc = run_tasks(hv.host, tmp_path, [('hypervisor.netfilter.nwfilter', dict(
            changed_web, state_dir=state_dir, state='rendered'))])
        assert filt[0]['rendered']['interfaces'] == [g1.port]
        assert 'add table bridge hnf_nic' in filt[0]['rendered']['nftables']
        assert '--sport 443' in filt[0]['rendered']['iptables'] and 'libvirt-I-' not in filt[0]['rendered']['ebtables']
