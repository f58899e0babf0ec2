# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A binding parameter the tools refuse (``IP: 192.0.2.300``), through ``ansible-playbook``.

libvirt passes such a value to ebtables too, which refuses it; the error must say where: the
restore line (its chain names the NIC, and the value is in it), and nothing changes - for a new
NIC (its chains are created by the host's restore) and for a rebind (the chains exist: the
desired ones are first loaded in a scratch namespace).
"""

from __future__ import annotations

import json
import os

from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import require_environment, run_tasks

NIC = 'hypervisor.netfilter.guest_nic_filter'


def _dumps(hv):
    return [[line for line in hv.host.run([tool]).stdout.splitlines() if not line.startswith('#')]
            for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save')]


def test_refused_value_names_the_nic_line_and_changes_nothing(tmp_path):
    require_environment()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=2) as hv:
        g0, g1 = hv.guests
        good, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(state_dir=state_dir, interface=g0.port, mac=g0.mac,
                                                               filter='clean-traffic', parameters={'IP': g0.ip}))])
        assert good[0]['changed']
        before = _dumps(hv)
        with open(os.path.join(state_dir, 'bindings.json')) as handle:
            stored = json.load(handle)
        for port, mac in ((g1.port, g1.mac), (g0.port, g0.mac)):  # a new NIC, then a rebind
            bad, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(
                state_dir=state_dir, interface=port, mac=mac, filter='clean-traffic',
                parameters={'IP': '192.0.2.300'}))], may_fail=True)
            msg = bad[0]['msg']
            assert bad[0]['failed'] and 'at line' in msg, msg
            line = msg.split('at line', 1)[1]
            assert '-%s-' % port in line.split(';')[0] and '192.0.2.300' in line.split(';')[0], msg
            assert _dumps(hv) == before
            with open(os.path.join(state_dir, 'bindings.json')) as handle:
                assert json.load(handle) == stored
