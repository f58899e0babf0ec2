# -*- coding: utf-8 -*-
"""guest_nic_filter through real ``ansible-playbook`` runs inside a throwaway hypervisor.

Each play runs under ``ip netns exec <host namespace>``, so the module (shipped
by AnsiballZ like on a real host) sees only the throwaway bridge and its guest
ports.  Bind, re-run (changed false), rebind with other parameters, external
flush then ``--check --diff`` (changed, diff) then repair, unbind (no chain of
ours left), with the admin's rules compared byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.netns import (
    ThrowawayHypervisor, can_create_namespaces, missing_tools)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, '.ansible', 'collections')  # tests/conftest.py links the checkout there


def _playbook_binary():
    candidate = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return candidate if os.path.exists(candidate) else shutil.which('ansible-playbook')


def require_environment():
    ok, reason = can_create_namespaces()
    if not ok:
        pytest.skip(reason)
    missing = missing_tools('ebtables-save', 'iptables-save')
    if missing or not _playbook_binary():
        pytest.skip('missing tools: %s' % ', '.join(missing + ([] if _playbook_binary() else ['ansible-playbook'])))


def play(hv, tmp_path, module_args, check=False, diff=False):
    """Run one guest_nic_filter task; returns its result dict."""
    playbook = tmp_path / 'play.yml'  # JSON is YAML
    result_file = tmp_path / 'result.json'
    if result_file.exists():
        result_file.unlink()
    playbook.write_text(json.dumps([{
        'hosts': 'localhost', 'gather_facts': False,
        'tasks': [
            {'hypervisor.netfilter.guest_nic_filter': module_args, 'register': 'out'},
            # The result as JSON for the test (written in check mode too).
            {'ansible.builtin.copy': {'content': '{{ out | to_json }}', 'dest': str(result_file)},
             'check_mode': False, 'diff': False},
        ],
    }]))
    argv = [_playbook_binary(), '-i', 'localhost,', '-c', 'local', str(playbook),
            '-e', 'ansible_python_interpreter=%s' % sys.executable]
    if check:
        argv.append('--check')
    if diff:
        argv.append('--diff')
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING='False',
               ANSIBLE_NOCOLOR='1')
    proc = hv.host.run(argv, check=False, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(result_file.read_text())


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
