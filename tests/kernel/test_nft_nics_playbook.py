# -*- coding: utf-8 -*-
"""guest_nic_filter with ``firewall_backend: nftables`` through real ``ansible-playbook`` runs.

In a throwaway hypervisor: bind (table bridge hnf_nic appears, no libvirt
chains), re-run (changed false), change one NIC's IP under ``--check --diff``
(the diff names its elements, nothing written) then for real, a run without the
option keeps the stored layout, and ``firewall_backend: iptables`` moves every
binding back to libvirt's chains and removes our table.
"""

from __future__ import annotations

from ansible_collections.hypervisor.netfilter.tests.lib.playbook import play, require_environment
from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor


def test_playbook_with_the_nftables_layout(tmp_path):
    require_environment()
    with ThrowawayHypervisor(guests=2) as hv:
        state_dir = str(tmp_path / 'state')
        nics = [dict(interface=g.port, mac=g.mac, filter='clean-traffic', parameters={'IP': g.ip}) for g in hv.guests]
        args = dict(nics=nics, firewall_backend='nftables', state_dir=state_dir)

        def table():
            done = hv.host.run(['nft', 'list', 'table', 'bridge', 'hnf_nic'], check=False)
            return done.stdout if done.returncode == 0 else None

        first = play(hv, tmp_path, args)
        assert first['changed'] and first['firewall_backend'] == 'nftables', first
        assert table() is not None and 'libvirt' not in hv.host.run(['ebtables-save']).stdout
        again = play(hv, tmp_path, args)
        assert not again['changed'], again

        moved = [dict(nics[0], parameters={'IP': '192.0.2.77'}), nics[1]]
        check = play(hv, tmp_path, dict(args, nics=moved), check=True, diff=True)
        assert check['changed'] and check['interfaces_changed'] == [hv.guests[0].port], check
        text = ''.join(d.get('before', '') + d.get('after', '') for d in check['diff'])
        assert '192.0.2.77' in text and '192.0.2.10' in text
        assert '192.0.2.77' not in table()
        real = play(hv, tmp_path, dict(args, nics=moved))
        assert real['changed'] and real['families']['nftables']['elements_added'] >= 1, real
        # Without the option the stored setting (nftables) applies.
        without = play(hv, tmp_path, dict(nics=moved, state_dir=state_dir))
        assert not without['changed'] and without['firewall_backend'] == 'nftables', without

        back = play(hv, tmp_path, dict(args, nics=moved, firewall_backend='iptables'))
        assert back['changed'] and table() is None, back
        assert 'libvirt-I-%s' % hv.guests[0].port in hv.host.run(['ebtables-save']).stdout
        assert not play(hv, tmp_path, dict(nics=moved, state_dir=state_dir))['changed']
