# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role hypervisor.netfilter.host through ansible-playbook against a
throwaway host: a network namespace (ThrowawayHypervisor) and a private mount
namespace with a tmpfs as the install root (tests/agent/role_runner.py), so
neither this machine's /etc, /usr nor its systemd is touched.

First run installs the engine, the agent and the units (enabled offline with
``systemctl --root``) and applies a filter, a network and two NICs; the second
run changes nothing; after a flush by another tool, a check-mode run reports
the drift and changes nothing; the installed agent (no Ansible, a clean
environment) says what is missing (exit 2) and repairs it; a last check-mode
run finds nothing to do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys

import pytest

import ansible_collections

from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import (
    agent_python, dump_host, require_agent_kernel)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor

# the directory that holds ansible_collections/hypervisor/netfilter (tests/conftest.py links the checkout)
COLLECTIONS = os.path.dirname(list(ansible_collections.__path__)[0])
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'role_runner.py')
FILTER = '''<filter name='agent-web' chain='root'>
  <filterref filter='clean-traffic'/>
  <rule action='accept' direction='in' priority='100'><tcp dstportstart='80'/></rule>
  <rule action='drop' direction='in' priority='1000'><all/></rule>
</filter>'''
UNUSED_FILTER = "<filter name='agent-unused' chain='ipv4'><rule action='drop' direction='in'><udp/></rule></filter>"
RECAP = re.compile(r'^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


def _playbook_binary():
    candidate = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return candidate if os.path.exists(candidate) else shutil.which('ansible-playbook')


def _recap(result):
    match = RECAP.search(result['stdout'])
    assert match and result['rc'] == 0, result['stdout'][-4000:] + result['stderr'][-2000:]
    ok, changed, unreachable, failed = (int(g) for g in match.groups())
    assert unreachable == 0 and failed == 0
    return changed


def test_role_installs_applies_is_idempotent_and_reports_drift(tmp_path):
    require_agent_kernel('systemctl', 'findmnt')
    if not _playbook_binary():
        pytest.skip('ansible-playbook is missing')
    root = tmp_path / 'root'
    root.mkdir()
    state_dir = str(root / 'etc' / 'hypervisor-netfilter')
    with ThrowawayHypervisor(guests=2) as hv:
        g0, g1 = hv.guests
        role_vars = {
            'host_install_root': str(root),
            'host_state_dir': state_dir,
            'host_install_packages': False,  # present here; apt on this machine is not the test's to change
            'host_systemd': 'offline',
            'host_filters': [FILTER],
            'host_networks': [{'name': 'rolenet', 'bridge': 'virbr-role', 'forward_mode': 'nat',
                               'ipv4': {'address': '10.76.0.1/24'}}],
            'host_nics': [{'interface': g0.port, 'mac': g0.mac, 'filter': 'agent-web', 'parameters': {'IP': g0.ip}},
                          {'interface': g1.port, 'mac': g1.mac, 'filter': 'clean-traffic',
                           'parameters': {'IP': g1.ip}}],
            'host_exclusive': True,
        }
        playbook = tmp_path / 'site.yml'
        playbook.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False,
                                         'roles': [{'role': 'hypervisor.netfilter.host', 'vars': role_vars}]}]))
        play = [_playbook_binary(), '-i', 'localhost,', '-c', 'local', str(playbook),
                '-e', 'ansible_python_interpreter=%s' % sys.executable]
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING='False',
                   ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
        installed = str(root / 'usr' / 'sbin' / 'hypervisor-netfilter')
        clean_env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin'}
        steps = [
            {'name': 'first', 'argv': play, 'stop_on_error': True},
            {'name': 'second', 'argv': play},
            {'name': 'files', 'argv': ['find', str(root), '-path', '*/__pycache__', '-prune', '-o', '-printf',
                                       '%P %M %l\\n']},
            {'name': 'dump-applied', 'argv': [sys.executable, '-c', _DUMP]},
            {'name': 'flush-eb', 'argv': ['ebtables', '-t', 'nat', '-F']},
            {'name': 'flush-nft', 'argv': ['nft', 'flush', 'table', 'ip', 'libvirt_network']},
            {'name': 'dump-flushed', 'argv': [sys.executable, '-c', _DUMP]},
            {'name': 'check', 'argv': play + ['--check', '--diff']},
            {'name': 'dump-after-check', 'argv': [sys.executable, '-c', _DUMP]},
            {'name': 'agent-check', 'argv': [agent_python(), installed, 'apply', '--check', '--state-dir', state_dir],
             'env': clean_env},
            {'name': 'agent-apply', 'argv': [agent_python(), installed, 'apply', '--state-dir', state_dir],
             'env': clean_env},
            {'name': 'dump-repaired', 'argv': [sys.executable, '-c', _DUMP]},
            {'name': 'check-again', 'argv': play + ['--check']},
        ]
        # Exclusive: vnet1, the network and the unused filter are no longer listed.
        fewer = dict(role_vars, host_networks=[], host_nics=role_vars['host_nics'][:1],
                     host_filters=[FILTER])
        first_vars = dict(role_vars, host_filters=[FILTER, UNUSED_FILTER])
        playbook.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False,
                                         'roles': [{'role': 'hypervisor.netfilter.host', 'vars': first_vars}]}]))
        exclusive = tmp_path / 'exclusive.yml'
        exclusive.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False,
                                          'roles': [{'role': 'hypervisor.netfilter.host', 'vars': fewer}]}]))
        unused_check = [agent_python(), installed, 'status', '--state-dir', state_dir]
        steps += [
            {'name': 'status-before', 'argv': unused_check, 'env': clean_env},
            {'name': 'exclusive', 'argv': play[:5] + [str(exclusive)] + play[6:]},
            {'name': 'status-after', 'argv': unused_check, 'env': clean_env},
            {'name': 'dump-exclusive', 'argv': [sys.executable, '-c', _DUMP]},
        ]
        spec = tmp_path / 'spec.json'
        out = tmp_path / 'result.json'
        spec.write_text(json.dumps({'root': str(root), 'steps': steps, 'env': env}))
        proc = hv.host.run([sys.executable, RUNNER, str(spec), str(out)], check=False, timeout=900)
        assert proc.returncode == 0, proc.stderr
        results = dict((r['name'], r) for r in json.loads(out.read_text()))
        after_ns = dump_host(hv.host)
    # The tmpfs was in the namespace only: nothing was installed on this machine.
    assert os.listdir(str(root)) == []

    assert _recap(results['first']) > 5
    assert _recap(results['second']) == 0, results['second']['stdout'][-4000:]
    files = results['files']['stdout'].splitlines()
    collection = 'usr/lib/hypervisor-netfilter/ansible_collections/hypervisor/netfilter'
    assert '%s/plugins/module_utils/_reconcile/host.py -rw-r--r-- ' % collection in files
    assert '%s/roles/host/files/hypervisor-netfilter -rwxr-xr-x ' % collection in files
    assert ('usr/sbin/hypervisor-netfilter lrwxrwxrwx ../lib/hypervisor-netfilter/ansible_collections/hypervisor/'
            'netfilter/roles/host/files/hypervisor-netfilter') in files
    for unit in ('hypervisor-netfilter-restore.service', 'hypervisor-netfilter.target', 'hypervisor-netfilter.service'):
        assert 'etc/systemd/system/%s -rw-r--r-- ' % unit in files
    assert ('etc/systemd/system/libvirt-guests.service.requires/hypervisor-netfilter-restore.service lrwxrwxrwx '
            '/etc/systemd/system/hypervisor-netfilter-restore.service') in files
    assert 'etc/hypervisor-netfilter drwx------ ' in files

    applied = json.loads(results['dump-applied']['stdout'])
    assert any('libvirt-I-%s' % g0.port in line for line in applied['ebtables-save'])
    assert any('libvirt_network' in table[0] for table in applied['nft'])
    flushed = json.loads(results['dump-flushed']['stdout'])
    assert flushed != applied
    # check mode after the flush: drift reported, nothing changed
    assert _recap(results['check']) >= 2, results['check']['stdout'][-4000:]
    assert json.loads(results['dump-after-check']['stdout']) == flushed
    # the installed agent, without Ansible
    assert results['agent-check']['rc'] == 2, results['agent-check']
    assert 'binding %s: would repair' % g0.port in results['agent-check']['stdout']
    assert 'network rolenet: would repair' in results['agent-check']['stdout']
    assert results['agent-apply']['rc'] == 0, results['agent-apply']
    assert json.loads(results['dump-repaired']['stdout']) == applied
    assert _recap(results['check-again']) == 0, results['check-again']['stdout'][-4000:]
    # exclusive: what is not listed is gone (NIC, then network with the bridge it made, then the filter)
    assert 'filters defined: agent-unused, agent-web' in results['status-before']['stdout']
    assert _recap(results['exclusive']) >= 3, results['exclusive']['stdout'][-4000:]
    status = results['status-after']['stdout']
    assert 'filters defined: agent-web' in status and 'networks: 0' in status and 'bindings: 1' in status, status
    assert results['status-after']['rc'] == 0, status
    left = json.loads(results['dump-exclusive']['stdout'])
    assert not any(g1.port in line for line in left['ebtables-save'])
    assert any('libvirt-I-%s' % g0.port in line for line in left['ebtables-save'])
    assert not any('libvirt_network' in table[0] for table in left['nft'])
    assert 'virbr-role' not in [bridge[0] for bridge in left['bridges']]
    assert [list(bridge) for bridge in after_ns['bridges']] == left['bridges']


_DUMP = '''
import json, sys
sys.path.insert(0, %r)
from ansible_collections.hypervisor.netfilter.tests.agent.agent_lib import dump_host
class Here:
    def run(self, argv):
        import subprocess
        return subprocess.run(argv, stdout=subprocess.PIPE, universal_newlines=True, check=True)
print(json.dumps(dump_host(Here())))
''' % COLLECTIONS
