# -*- coding: utf-8 -*-
"""guest_nic_filter through real ``ansible-playbook`` runs inside a throwaway hypervisor.

Each play runs under ``ip netns exec <host namespace>``, so the module (shipped
by AnsiballZ like on a real host) sees only the throwaway bridge and its guest
ports.  Bind, re-run (changed false), rebind with other parameters, external
flush then ``--check --diff`` (changed, diff) then repair, unbind (no chain of
ours left), with the admin's rules compared byte for byte.
"""

from __future__ import annotations

from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import play, require_environment


def save(hv):
    """Dumps without the comment lines (they carry timestamps)."""
    return dict((tool, '\n'.join(l for l in hv.host.run([tool]).stdout.splitlines() if not l.startswith('#')))
                for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save'))


def rules(text):
    return [line for line in text.splitlines() if line.startswith('-A ')]


def test_playbook_lifecycle(tmp_path):
    require_environment()
    with ThrowawayHypervisor(guests=2) as hv:
        g0, g1 = hv.guests
        state_dir = str(tmp_path / 'state')
        hv.host.run(['iptables', '-A', 'FORWARD', '-m', 'comment', '--comment', 'admin', '-j', 'ACCEPT'])
        hv.host.run(['ebtables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'admin0', '-j', 'ACCEPT'])
        admin = save(hv)
        nics = [dict(interface=g.port, mac=g.mac, filter='clean-traffic', parameters={'IP': g.ip}) for g in (g0, g1)]

        bound = play(hv, tmp_path, dict(state_dir=state_dir, nics=nics))
        assert bound['changed'] and sorted(bound['interfaces_changed']) == [g0.port, g1.port]
        eb = save(hv)['ebtables-save']
        assert '-A I-%s-mac -s %s -j RETURN' % (g0.port, g0.mac) in eb
        assert '-A POSTROUTING -o %s -j libvirt-O-%s' % (g1.port, g1.port) in eb

        again = play(hv, tmp_path, dict(state_dir=state_dir, nics=nics))
        assert not again['changed']

        rebind = play(hv, tmp_path, dict(state_dir=state_dir, interface=g1.port, mac=g1.mac,
                                         filter='clean-traffic', parameters={'IP': [g1.ip, '192.0.2.77']}))
        assert rebind['changed'] and rebind['interfaces_changed'] == [g1.port]
        assert '--arp-ip-src 192.0.2.77' in save(hv)['ebtables-save']
        applied = save(hv)

        hv.host.run(['ebtables', '-t', 'nat', '-F', 'libvirt-I-%s' % g0.port])
        flushed = save(hv)
        check = play(hv, tmp_path, dict(state_dir=state_dir, interface=g0.port, mac=g0.mac,
                                        filter='clean-traffic', parameters={'IP': g0.ip}), check=True, diff=True)
        assert check['changed'] and check['interfaces_changed'] == [g0.port]
        assert save(hv) == flushed
        after_text = ''.join(d['after'] for d in check['diff'])
        assert '-A libvirt-I-%s -j I-%s-mac' % (g0.port, g0.port) in after_text
        repair = play(hv, tmp_path, dict(state_dir=state_dir, interface=g0.port, mac=g0.mac,
                                         filter='clean-traffic', parameters={'IP': g0.ip}))
        assert repair['changed'] and save(hv) == applied

        unbind = play(hv, tmp_path, dict(state_dir=state_dir, nics=[], exclusive=True))
        assert sorted(unbind['removed']) == [g0.port, g1.port]
        final = save(hv)
        for tool, text in final.items():
            assert 'libvirt' not in text and 'vnet' not in text, tool
            assert rules(text) == rules(admin[tool]), tool
