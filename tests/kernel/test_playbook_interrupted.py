# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A playbook killed (SIGKILL) in the middle of its apply, then run again.

The kill lands after the kernel accepted one family's restore (ebtables) and
before the next one (iptables) and before the run stored the new binding (``bindings.json`` is written only after the
kernel accepted every family): the kernel then has chains of an interface the
store does not list yet.  Running the same play again must finish the job,
not refuse the interface as "chains this collection did not make" (that is
for libvirt's chains, and needs ``takeover``).

The pause is made by wrappers of the ``*-nft-restore`` tools first in PATH:
after a restore in the host namespace (not in a scratch namespace) succeeded,
they write their parent's (the module's) pid and their own to a marker file and
sleep; the test kills the module (SIGKILL), the paused restore and the play.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
from ansible_collections.hypervisor.netfilter.tests.lib.playbook import (
    playbook_command, require_environment, run_tasks, write_play, web_filter)

NIC = 'hypervisor.netfilter.guest_nic_filter'
NWFILTER = 'hypervisor.netfilter.nwfilter'
# Ethernet and IP layer: the ebtables restore comes first, iptables' after it.
WEB = web_filter('int-web')
TOOLS = ('ebtables-nft-restore', 'iptables-nft-restore', 'ip6tables-nft-restore')
WRAPPER = '''#!/bin/sh
"%(real)s" "$@"
rc=$?
if [ "$rc" -eq 0 ] && [ -e "$HNF_TEST_PAUSE" ] && [ "$(readlink /proc/self/ns/net)" = "$HNF_TEST_NETNS" ]; then
    echo "$PPID $$" > "$HNF_TEST_PAUSE.tmp" && mv "$HNF_TEST_PAUSE.tmp" "$HNF_TEST_PAUSE.hit"
    exec sleep 300
fi
exit "$rc"
'''


def _dumps(hv):
    return dict((tool, [line for line in hv.host.run([tool]).stdout.splitlines() if not line.startswith('#')])
                for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save'))


def _wrappers(directory):
    os.makedirs(directory)
    for tool in TOOLS:
        real = '/usr/sbin/' + tool
        path = os.path.join(directory, tool)
        with open(path, 'w') as handle:
            handle.write(WRAPPER % {'real': real})
        os.chmod(path, 0o755)
    return directory


def _kill_after_first_restore(hv, tmp_path, tasks):
    """Run the play with the paused restores; SIGKILL its whole process group once the first
    host restore succeeded.  Returns the ansible-playbook output."""
    bin_dir = _wrappers(str(tmp_path / 'bin'))
    marker = str(tmp_path / 'pause')
    open(marker, 'w').close()
    netns = hv.host.run(['readlink', '/proc/self/ns/net']).stdout.strip()
    play_dir = tmp_path / 'killed'
    play_dir.mkdir()
    playbook, _results = write_play(play_dir, tasks)
    argv, env = playbook_command(playbook, env={'HNF_TEST_PAUSE': marker, 'HNF_TEST_NETNS': netns})
    env['PATH'] = bin_dir + os.pathsep + env.get('PATH', '')
    log = open(str(tmp_path / 'killed.log'), 'w+')
    proc = subprocess.Popen(hv.host.exec_argv(argv), stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while not os.path.exists(marker + '.hit') and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert os.path.exists(marker + '.hit'), 'the play did not reach a restore (rc %s)' % proc.poll()
    finally:
        # The module runs in a session of its own: kill it (the interruption), then the paused
        # wrapper, then the play's own process group.
        if os.path.exists(marker + '.hit'):
            with open(marker + '.hit') as handle:
                for pid in handle.read().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        log.seek(0)
        output = log.read()
        log.close()
    return output


def _nft_elements(hv, interface):
    out = hv.host.run(['nft', 'list', 'table', 'bridge', 'hnf_nic'], check=False).stdout
    return out.count('"%s"' % interface)


@pytest.mark.parametrize('layout', ['iptables', 'nftables'])
def test_rerun_after_a_kill_between_kernel_and_store_finishes_the_job(tmp_path, layout):
    require_environment()
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=2) as hv:
        g0, g1 = hv.guests
        hv.host.run(['iptables', '-A', 'FORWARD', '-m', 'comment', '--comment', 'admin', '-j', 'ACCEPT'])
        hv.host.run(['ebtables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'admin0', '-j', 'ACCEPT'])
        first = [dict(interface=g0.port, mac=g0.mac, filter='int-web', parameters={'IP': g0.ip})]
        both = first + [dict(interface=g1.port, mac=g1.mac, filter='int-web', parameters={'IP': g1.ip})]
        results, _proc = run_tasks(hv.host, tmp_path, [(NWFILTER, dict(WEB, state_dir=state_dir)), (NIC, dict(
            state_dir=state_dir, nics=first, firewall_backend=layout))])
        assert results[1]['changed']

        _kill_after_first_restore(hv, tmp_path, [(NIC, dict(state_dir=state_dir, nics=both))])
        with open(os.path.join(state_dir, 'bindings.json')) as handle:
            stored = [b['interface'] for b in json.load(handle)['bindings']]
        assert stored == [g0.port]  # killed before the store was written
        interrupted = _dumps(hv)
        if layout == 'iptables':  # killed after the ebtables restore, before iptables'
            assert any('libvirt-I-%s' % g1.port in line for line in interrupted['ebtables-save'])
            assert not any('FI-%s' % g1.port in line for line in interrupted['iptables-save'])
        else:  # nft -f first, then the iptables restore of the IP layer (conntrack): killed after both
            assert _nft_elements(hv, g1.port) > 0
            assert any('FI-%s' % g1.port in line for line in interrupted['iptables-save'])

        again, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(state_dir=state_dir, nics=both))])
        assert again[0]['changed'] and again[0]['added'] == [g1.port], again[0].get('msg')
        with open(os.path.join(state_dir, 'bindings.applied.json')) as handle:
            assert json.load(handle)['interfaces'] == sorted([g0.port, g1.port])
        applied = _dumps(hv)
        if layout == 'iptables':
            assert '-A I-%s-mac -s %s -j RETURN' % (g1.port, g1.mac) in applied['ebtables-save']
        else:
            assert _nft_elements(hv, g1.port) > 0
        assert any('FI-%s' % g1.port in line for line in applied['iptables-save'])
        assert '-A FORWARD -m comment --comment admin -j ACCEPT' in applied['iptables-save']
        assert '-A POSTROUTING -o admin0 -j ACCEPT' in applied['ebtables-save']
        last, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(state_dir=state_dir, nics=both))])
        assert not last[0]['changed']
        assert _dumps(hv) == applied

        # A genuinely foreign interface is still refused: chains made outside this collection.
        hv.host.run(['iptables', '-N', 'FI-vnet9'])
        refused, _proc = run_tasks(hv.host, tmp_path, [(NIC, dict(
            state_dir=state_dir, interface='vnet9', mac='52:54:00:4e:00:99', filter='clean-traffic',
            parameters={'IP': '192.0.2.99'}))], may_fail=True)
        assert refused[0]['failed'] and 'did not make' in refused[0]['msg']
        assert 'FI-vnet9' in hv.host.run(['iptables', '-S']).stdout
