# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A hypervisor's life with playbooks and the agent, in throwaway namespaces.

Everything is driven through the public faces: ``ansible-playbook`` runs of the
modules inside the host namespace, and the agent's command line.

- nftables NIC layout with NICs that keep rules on xtables (an IP layer that
  needs conntrack, a filter using ``gratuitous`` ARP): a flush of those
  xtables chains is drift the agent's ``apply --check`` reports (exit 2, the
  binding and chain named) and ``apply`` repairs.
"""

from __future__ import annotations

from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import (
    dump_host, require_agent_kernel, run_agent)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import require_environment, run_tasks, web_filter

NWFILTER = 'hypervisor.netfilter.nwfilter'
NIC = 'hypervisor.netfilter.guest_nic_filter'
# An IP-layer accept rule (implicit conntrack): without bridge conntrack its IP layer stays on iptables.
WEB = web_filter('scn-web')
# gratuitous ARP has no nft spelling here: the whole NIC stays on ebtables, with a sub-chain I-<if>-arp.
GARP = dict(name='scn-garp', chain='arp',
            rules=[{'action': 'accept', 'direction': 'out', 'priority': 100, 'arp': {'gratuitous': True}},
                   {'action': 'drop', 'direction': 'inout', 'priority': 500, 'arp': {}}])
GARP_ROOT = dict(name='scn-garp-root', chain='root', filterrefs=[{'filter': 'scn-garp'}, {'filter': 'no-mac-spoofing'}])


def _lines(result):
    return result.stdout.splitlines()


def test_nftables_layout_xtables_share_drift_is_reported_and_repaired(tmp_path):
    require_agent_kernel()
    require_environment()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=2) as hv:
        g0, g1 = hv.guests
        nics = [dict(interface=g0.port, mac=g0.mac, filter='scn-web', parameters={'IP': g0.ip}),
                dict(interface=g1.port, mac=g1.mac, filter='scn-garp-root')]
        results, _proc = run_tasks(hv.host, tmp_path, [
            (NWFILTER, dict(WEB, state_dir=state_dir)), (NWFILTER, dict(GARP, state_dir=state_dir)),
            (NWFILTER, dict(GARP_ROOT, state_dir=state_dir)),
            (NIC, dict(state_dir=state_dir, nics=nics, firewall_backend='nftables'))])
        assert results[-1]['changed']
        assert 'table bridge hnf_nic' in hv.host.run(['nft', 'list', 'tables']).stdout
        in_sync = run_agent(['apply', '--check', '--state-dir', state_dir], ns=hv.host)
        assert in_sync.returncode == 0, in_sync.stdout + in_sync.stderr

        hv.host.run(['iptables', '-F', 'FI-%s' % g0.port])
        hv.host.run(['ebtables', '-t', 'nat', '-F', 'I-%s-arp' % g1.port])
        flushed = dump_host(hv.host)
        check = run_agent(['apply', '--check', '--state-dir', state_dir], ns=hv.host)
        assert check.returncode == 2, check.stdout + check.stderr
        lines = _lines(check)
        assert 'binding %s: would repair' % g0.port in lines, lines
        assert 'binding %s: would repair' % g1.port in lines, lines
        assert any('iptables filter FI-%s' % g0.port in line for line in lines), lines
        assert any('ebtables nat I-%s-arp' % g1.port in line for line in lines), lines
        assert dump_host(hv.host) == flushed

        # The module's check mode names the same bindings.
        results, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(state_dir=state_dir))], check=True)
        states = dict((o['name'], o['status']) for o in results[0]['objects'])
        assert results[0]['changed'] and states == {g0.port: 'would_repair', g1.port: 'would_repair'}, states

        repair = run_agent(['apply', '--state-dir', state_dir], ns=hv.host)
        assert repair.returncode == 0, repair.stdout + repair.stderr
        assert 'binding %s: repaired' % g0.port in _lines(repair)
        assert 'binding %s: repaired' % g1.port in _lines(repair)
        assert '-A FI-%s -j DROP' % g0.port in hv.host.run(['iptables', '-S', 'FI-%s' % g0.port]).stdout
        again = run_agent(['apply', '--check', '--state-dir', state_dir], ns=hv.host)
        assert again.returncode == 0, again.stdout + again.stderr
