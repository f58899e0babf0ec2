# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_network on a bridge the admin made (``create_bridge: true`` adopts an existing bridge).

The network adds its gateway addresses to the admin's bridge; when it changes them or goes
away, it takes back the addresses it added and only those: the admin's own addresses stay,
also one the network definition named, and the bridge stays.  ``--check`` says what it would
remove and changes nothing.  Driven by ``ansible-playbook`` in a throwaway namespace.
"""

from __future__ import annotations

import json

from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import require_environment, run_tasks

NET = 'hypervisor.netfilter.virt_network'
BRIDGE = 'adm-br'


def _addresses(hv):
    links = json.loads(hv.host.run(['ip', '-j', 'addr', 'show', 'dev', BRIDGE]).stdout)
    return sorted('%s/%s' % (a['local'], a['prefixlen']) for link in links for a in link.get('addr_info', ())
                  if not a['local'].startswith('fe80'))


def test_network_on_the_admins_bridge_takes_back_only_its_addresses(tmp_path):
    require_environment()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=0) as hv:
        hv.host.ip('link', 'add', BRIDGE, 'type', 'bridge')
        hv.host.own_interfaces.add(BRIDGE)
        hv.host.ip('addr', 'add', '10.9.9.1/24', 'dev', BRIDGE)  # the admin's
        hv.host.ip('link', 'set', BRIDGE, 'up')
        net = dict(state_dir=state_dir, name='adopt', bridge=BRIDGE, forward_mode='nat')

        def play(check=False, **args):
            results, _proc = run_tasks(hv.host, tmp_path, [(NET, dict(net, **args))], check=check, diff=check)
            return results[0]

        assert play(ipv4={'address': '10.9.0.1/24'}, ipv6={'address': '2001:db8:99::1/64'})['changed']
        assert _addresses(hv) == ['10.9.0.1/24', '10.9.9.1/24', '2001:db8:99::1/64']
        assert not play(ipv4={'address': '10.9.0.1/24'}, ipv6={'address': '2001:db8:99::1/64'})['changed']

        # Moving the gateway to the admin's own address: ours go, the admin's is not taken over.
        assert play(ipv4={'address': '10.9.9.1/24'})['changed']
        assert _addresses(hv) == ['10.9.9.1/24']
        assert play(ipv4={'address': '10.9.1.1/24'})['changed']
        assert _addresses(hv) == ['10.9.1.1/24', '10.9.9.1/24']

        check = play(check=True, state='absent')
        assert check['changed'] and _addresses(hv) == ['10.9.1.1/24', '10.9.9.1/24']
        assert any('remove address 10.9.1.1/24 from %s' % BRIDGE in d.get('after', '') for d in check['diff'])
        assert play(state='absent')['changed']
        assert _addresses(hv) == ['10.9.9.1/24']  # the bridge and the admin's address stay
        assert not play(state='absent')['changed']
