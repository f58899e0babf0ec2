# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host moving between iptables-legacy and iptables-nft (``xtables_backend``), with playbooks.

Both variants are rule sets of their own, both in force.  After the move our chains must be
in the new variant only: left in the old one, a guest keeps its old filter (also once unbound).
The admin's rules in either variant stay as they are; ``--check`` reports the leftovers and
changes nothing; a second run changes nothing.
"""

from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor, missing_tools
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import require_environment, run_tasks, web_filter

NWFILTER = 'hypervisor.netfilter.nwfilter'
NIC = 'hypervisor.netfilter.guest_nic_filter'
# An IP-layer rule (implicit conntrack): iptables chains in both layouts (no bridge conntrack here).
WEB = web_filter('var-web')


def _ours(hv, variant):
    """Our lines in ``iptables-<variant>-save`` (chains named after the NIC and libvirt's)."""
    text = hv.host.run(['iptables-%s-save' % variant]).stdout
    return [line for line in text.splitlines() if 'vnet0' in line or 'libvirt-' in line]


def _admin(hv, variant):
    return [line for line in hv.host.run(['iptables-%s-save' % variant]).stdout.splitlines() if 'admin' in line]


@pytest.mark.parametrize('layout', ['iptables', 'nftables'])
def test_moving_between_iptables_variants_leaves_nothing_behind(tmp_path, layout):
    require_environment()
    missing = missing_tools('iptables-legacy-save', 'iptables-nft-save')
    if missing:
        pytest.skip('missing tools: %s' % ', '.join(missing))
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=1) as hv:
        guest = hv.guests[0]
        hv.host.run(['iptables-legacy', '-A', 'INPUT', '-s', '10.0.0.1', '-m', 'comment', '--comment',
                     'admin-legacy', '-j', 'ACCEPT'])
        hv.host.run(['iptables-nft', '-A', 'INPUT', '-s', '10.0.0.2', '-m', 'comment', '--comment',
                     'admin-nft', '-j', 'ACCEPT'])
        admin = dict((v, _admin(hv, v)) for v in ('legacy', 'nft'))
        nic = dict(state_dir=state_dir, interface=guest.port, mac=guest.mac, filter='var-web',
                   parameters={'IP': guest.ip}, firewall_backend=layout)
        results, _proc = run_tasks(hv.host, tmp_path, [(NWFILTER, dict(WEB, state_dir=state_dir)),
                                                       (NIC, dict(nic, xtables_backend='legacy'))])
        assert results[1]['changed']
        assert any('FI-vnet0' in line for line in _ours(hv, 'legacy')) and not _ours(hv, 'nft')
        on_legacy = _ours(hv, 'legacy')

        for old, new in (('legacy', 'nft'), ('nft', 'legacy')):
            check, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(nic, xtables_backend=new))], check=True, diff=True)
            assert check[0]['changed']
            headers = [d.get('before_header') for d in check[0]['diff']]
            assert 'iptables (%s): live' % old in headers, headers
            assert _ours(hv, old) and not _ours(hv, new)  # check mode changed nothing

            moved, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(nic, xtables_backend=new))])
            assert moved[0]['changed'] and moved[0]['interfaces_changed'] == [guest.port], moved[0]
            assert not _ours(hv, old), _ours(hv, old)
            assert sorted(_ours(hv, new)) == sorted(on_legacy)
            assert dict((v, _admin(hv, v)) for v in ('legacy', 'nft')) == admin
            again, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(nic, xtables_backend=new))])
            assert not again[0]['changed']

        gone, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(state_dir=state_dir, state='absent',
                                                               interface=guest.port))])
        assert gone[0]['changed']
        assert not _ours(hv, 'legacy') and not _ours(hv, 'nft')
        assert dict((v, _admin(hv, v)) for v in ('legacy', 'nft')) == admin


def _libvirt_lines(hv, variant):
    return [line for line in hv.host.run(['iptables-%s-save' % variant]).stdout.splitlines() if 'LIBVIRT_' in line]


def test_network_moving_between_iptables_variants_leaves_nothing_behind(tmp_path):
    require_environment()
    missing = missing_tools('iptables-legacy-save', 'iptables-nft-save')
    if missing:
        pytest.skip('missing tools: %s' % ', '.join(missing))
    state_dir = str(tmp_path / 'state')
    net = dict(state_dir=state_dir, name='varnet', bridge='virbr-var', forward_mode='route',
               firewall_backend='iptables', ipv4={'address': '10.79.0.1/24'})
    with ThrowawayHypervisor(guests=0) as hv:
        hv.host.run(['iptables-legacy', '-A', 'FORWARD', '-m', 'comment', '--comment', 'admin-legacy', '-j', 'DROP'])
        admin = _admin(hv, 'legacy')
        results, _proc = run_tasks(hv.host, tmp_path, [('hypervisor.netfilter.virt_network',
                                                        dict(net, xtables_backend='legacy'))])
        assert results[0]['changed']
        on_legacy = _libvirt_lines(hv, 'legacy')
        assert on_legacy and not _libvirt_lines(hv, 'nft')
        check, _proc = run_tasks(hv.host, tmp_path, [('hypervisor.netfilter.virt_network',
                                                      dict(net, xtables_backend='nft'))], check=True, diff=True)
        assert check[0]['changed'] and _libvirt_lines(hv, 'legacy') == on_legacy
        assert 'iptables (legacy): live' in [d.get('before_header') for d in check[0]['diff']]
        moved, _proc = run_tasks(hv.host, tmp_path, [('hypervisor.netfilter.virt_network',
                                                      dict(net, xtables_backend='nft'))])
        assert moved[0]['changed']
        assert not _libvirt_lines(hv, 'legacy') and sorted(_libvirt_lines(hv, 'nft')) == sorted(on_legacy)
        assert _admin(hv, 'legacy') == admin
        again, _proc = run_tasks(hv.host, tmp_path, [('hypervisor.netfilter.virt_network',
                                                      dict(net, xtables_backend='nft'))])
        assert not again[0]['changed']
