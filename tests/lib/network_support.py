# -*- coding: utf-8 -*-
"""Helpers for the virt_network kernel tests (no tests in here).

``run_module`` executes the real module file inside a namespace the way
Ansible does for a local module (``python MODULE ARGS.json``) and returns its
JSON result; everything that changes kernel state happens in namespaces made
by ``tests/lib/netns.py`` and deleted after each test.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile

import pytest

import ansible_collections
from ansible_collections.hypervisor.netfilter.tests.lib.netns import can_create_namespaces, missing_tools

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
MODULE = os.path.join(REPO, 'plugins', 'modules', 'virt_network.py')
COLLECTIONS_ROOT = os.path.dirname(list(ansible_collections.__path__)[0])
PYTHON = sys.executable

_COUNTERS = re.compile(r'\[\d+:\d+\]|counter packets \d+ bytes \d+')


def kernel_skip_reason(*extra_tools):
    ok, reason = can_create_namespaces()
    if not ok:
        return reason
    missing = missing_tools('iptables-save', 'iptables-restore', 'ip6tables-save', 'nft', *extra_tools)
    if missing:
        return 'missing tools: %s' % ', '.join(missing)
    return None


def require_kernel(*extra_tools):
    reason = kernel_skip_reason(*extra_tools)
    if reason:
        pytest.skip(reason)


class ModuleFailed(AssertionError):
    pass


def run_module(ns, check=False, diff=True, expect_failure=False, env=None, **args):
    """Run virt_network in ``ns`` with ``args``; returns the result dict."""
    payload = {'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=check, _ansible_diff=diff)}
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as handle:
        json.dump(payload, handle)
        path = handle.name
    try:
        run_env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT)
        run_env.update(env or {})
        proc = ns.run([PYTHON, MODULE, path], check=False, env=run_env)
    finally:
        os.unlink(path)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
    if not lines:
        raise ModuleFailed('module printed no JSON (rc=%d): %s %s' % (proc.returncode, proc.stdout, proc.stderr))
    result = json.loads(lines[-1])
    if expect_failure:
        if not result.get('failed'):
            raise ModuleFailed('module was expected to fail: %r' % result)
    elif result.get('failed'):
        raise ModuleFailed('module failed: %s' % result.get('msg'))
    return result


def dump_xtables(ns):
    """Normalised iptables-save + ip6tables-save of ``ns``."""
    out = []
    for tool in ('iptables-save', 'ip6tables-save'):
        text = ns.run([tool]).stdout
        out.append('### ' + tool)
        out.extend(_COUNTERS.sub('', line).rstrip() for line in text.splitlines() if not line.startswith('#'))
    return '\n'.join(out) + '\n'


def dump_nft(ns):
    """Normalised ``nft list ruleset``: counters removed, tables sorted by name
    (re-creating a table moves it to the end of the listing; that order means nothing)."""
    text = ns.run(['nft', 'list', 'ruleset']).stdout
    tables = []
    for line in text.splitlines():
        line = _COUNTERS.sub('counter', line).rstrip()
        if line.startswith('table '):
            tables.append([])
        if tables and line:
            tables[-1].append(line)
    return ''.join('\n'.join(t) + '\n' for t in sorted(tables, key=lambda t: t[0]))


def dump_all(ns):
    return dump_xtables(ns) + '### nft\n' + dump_nft(ns)


def sysctl(ns, key):
    return ns.run(['cat', '/proc/sys/' + key]).stdout.strip()


def stored_networks(state_dir):
    directory = os.path.join(state_dir, 'networks')
    if not os.path.isdir(directory):
        return []
    return sorted(f[:-5] for f in os.listdir(directory) if f.endswith('.json'))


def rules_only(dump):
    """The rule lines of a dump (xtables ``-A`` lines and nft rule lines), in order:
    empty tables/chains that tools leave behind do not count."""
    out = []
    for line in dump.splitlines():
        if line.startswith('-A') or (line.startswith('\t\t') and not line.strip().startswith('type ')):
            out.append(line)
    return out
