# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host where another owner (libvirt's nwfilter driver, running or stopped) filters some guests.

Its chains have our names (``libvirt-I-vnet1``, ``FI-vnet1``, jumps in ``libvirt-in``, ...).
Binding, re-applying and unbinding our own NICs, the agent's reconcile and a move between
layouts must leave them exactly as they are (a guest libvirt filters, or one not handed over yet
while a host moves NIC by NIC as examples/import_from_libvirt.yml does, stays filtered);
``takeover`` makes them ours.  The foreign rules are made by this collection with a state
directory that is then thrown away: the same chains libvirt writes, as left by a stopped driver.
"""

from __future__ import annotations

import shutil

from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import run_agent
from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import require_environment, run_tasks, web_filter

NWFILTER = 'hypervisor.netfilter.nwfilter'
NIC = 'hypervisor.netfilter.guest_nic_filter'
# Ethernet and IP layer (so the shared libvirt-in/out/in-post/host-in chains carry its jumps).
WEB = web_filter('fgn-web')


def _lines_of(hv, port):
    """Every ebtables/iptables line that names ``port`` (its chains, hooks, shared-chain jumps)."""
    out = []
    for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save'):
        out.extend('%s: %s' % (tool, line) for line in hv.host.run([tool]).stdout.splitlines()
                   if port in line and not line.startswith('#'))
    return sorted(out)


def test_chains_of_interfaces_we_do_not_bind_are_left_alone(tmp_path):
    require_environment()
    state_dir = str(tmp_path / 'state')
    other_dir = str(tmp_path / 'other-owner')
    with ThrowawayHypervisor(guests=2) as hv:
        g0, g1 = hv.guests
        foreign = dict(interface=g1.port, mac=g1.mac, filter='fgn-web', parameters={'IP': g1.ip})
        run_tasks(hv.host, tmp_path, [(NWFILTER, dict(WEB, state_dir=other_dir)),
                                      (NIC, dict(foreign, state_dir=other_dir))])
        shutil.rmtree(other_dir)  # the other owner's rules stay in the kernel
        theirs = _lines_of(hv, g1.port)
        assert any('FI-%s' % g1.port in line for line in theirs) and any('libvirt-I-' in line for line in theirs)

        mine = dict(interface=g0.port, mac=g0.mac, filter='fgn-web', parameters={'IP': g0.ip}, state_dir=state_dir)
        results, _proc = run_tasks(hv.host, tmp_path, [(NWFILTER, dict(WEB, state_dir=state_dir)), (NIC, mine)])
        assert results[1]['changed'] and results[1]['interfaces_changed'] == [g0.port]
        assert _lines_of(hv, g1.port) == theirs
        assert any('FI-%s' % g0.port in line for line in _lines_of(hv, g0.port))
        again, _proc = run_tasks(hv.host, tmp_path, [(NIC, mine)], check=True)
        assert not again[0]['changed']
        check = run_agent(['apply', '--check', '--state-dir', state_dir], ns=hv.host)
        assert check.returncode == 0, check.stdout + check.stderr
        assert run_agent(['apply', '--state-dir', state_dir], ns=hv.host).returncode == 0
        assert _lines_of(hv, g1.port) == theirs

        # Both layouts: moving ours to nftables and back keeps theirs.
        for layout in ('nftables', 'iptables'):
            moved, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(mine, firewall_backend=layout))])
            assert moved[0]['changed']
            assert _lines_of(hv, g1.port) == theirs, layout

        gone, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(state_dir=state_dir, state='absent',
                                                               interface=g0.port))])
        assert gone[0]['changed'] and not _lines_of(hv, g0.port)
        assert _lines_of(hv, g1.port) == theirs

        # Taken over, they are ours: rebound with other values, then unbound, they go.
        taken, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(foreign, state_dir=state_dir, takeover=True,
                                                                parameters={'IP': '192.0.2.99'}))])
        assert taken[0]['changed'] and taken[0]['interfaces_changed'] == [g1.port]
        assert any('192.0.2.99' in line for line in _lines_of(hv, g1.port))
        dropped, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(state_dir=state_dir, state='absent',
                                                                  interface=g1.port))])
        assert dropped[0]['changed'] and not _lines_of(hv, g1.port)
