# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a real ``ansible-playbook`` inside a namespace and get every task's result.

:func:`run_tasks` writes a one-play playbook (JSON is YAML) whose tasks are
the given module calls, each registered and written out as JSON (also in
check mode), runs it with ``ip netns exec`` in the given namespace (the
modules are shipped by AnsiballZ as on a real host, from the checkout the
tests run in) and returns the results in task order.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.netns import can_create_namespaces, missing_tools

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, '.ansible', 'collections')  # tests/conftest.py links the checkout there


def playbook_binary():
    """ansible-playbook of the interpreter running the tests, else the one on PATH (None: none)."""
    candidate = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return candidate if os.path.exists(candidate) else shutil.which('ansible-playbook')


def write_play(directory, tasks, ignore_errors=False):
    """Write the one-play playbook for ``tasks``; returns ``(playbook path, result files)``."""
    directory = str(directory)
    play = []
    result_files = []
    for index, (module, args) in enumerate(tasks):
        result_file = os.path.join(directory, 'result-%d.json' % index)
        if os.path.exists(result_file):
            os.unlink(result_file)
        result_files.append(result_file)
        name = 'out%d' % index
        play.append({'name': 'task %d' % index, module: args, 'register': name, 'ignore_errors': ignore_errors})
        play.append({'ansible.builtin.copy': {'content': '{{ %s | to_json }}' % name, 'dest': result_file},
                     'check_mode': False, 'diff': False})
    playbook = os.path.join(directory, 'play.yml')
    with open(playbook, 'w') as handle:
        json.dump([{'hosts': 'localhost', 'gather_facts': False, 'tasks': play}], handle)
    return playbook, result_files


def playbook_command(playbook, check=False, diff=False, env=None):
    """``(argv, env)`` of an ``ansible-playbook`` run of ``playbook`` on localhost with this checkout."""
    argv = [playbook_binary(), '-i', 'localhost,', '-c', 'local', playbook,
            '-e', 'ansible_python_interpreter=%s' % sys.executable]
    if check:
        argv.append('--check')
    if diff:
        argv.append('--diff')
    run_env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING='False',
                   ANSIBLE_NOCOLOR='1')
    run_env.update(env or {})
    return argv, run_env


def run_tasks(ns, directory, tasks, check=False, diff=False, env=None, may_fail=False):
    """Run ``tasks`` (``[(module name, args)]``) as one play in ``ns``; returns
    ``(results, proc)`` with one registered result dict per task.  With ``may_fail``
    the tasks ignore errors (their results say ``failed``), else the play must succeed."""
    playbook, result_files = write_play(directory, tasks, ignore_errors=may_fail)
    argv, run_env = playbook_command(playbook, check=check, diff=diff, env=env)
    proc = ns.run(argv, check=False, env=run_env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    results = []
    for path in result_files:
        with open(path) as handle:
            results.append(json.load(handle))
    return results, proc


def require_environment():
    ok, reason = can_create_namespaces()
    if not ok:
        pytest.skip(reason)
    missing = missing_tools('ebtables-save', 'iptables-save')
    if missing or not playbook_binary():
        pytest.skip('missing tools: %s' % ', '.join(missing + ([] if playbook_binary() else ['ansible-playbook'])))


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
    argv = [playbook_binary(), '-i', 'localhost,', '-c', 'local', str(playbook),
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


def web_filter(name):
    """An nwfilter module filter (YAML form) with both layers: clean-traffic, then accept TCP 80 in and drop
    the rest in (an IP-layer rule with implicit conntrack: iptables chains in both NIC layouts here)."""
    return dict(name=name, chain='root', filterrefs=[{'filter': 'clean-traffic'}],
                rules=[{'action': 'accept', 'direction': 'in', 'priority': 100, 'tcp': {'dstportstart': 80}},
                       {'action': 'drop', 'direction': 'in', 'priority': 1000, 'all': {}}])
