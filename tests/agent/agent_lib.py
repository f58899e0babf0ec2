# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the agent/role/unit tests: where things are, rendering the units,
running the agent, the real unit files of firewalld and libvirt."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, 'roles', 'host')
AGENT = os.path.join(ROLE, 'files', 'hypervisor-netfilter')
TEMPLATES = os.path.join(ROLE, 'templates')
UNITS = ('hypervisor-netfilter-restore.service', 'hypervisor-netfilter.target', 'hypervisor-netfilter.service')
OUTPUT = os.path.join(REPO, 'tests', 'output', 'agent')
SYSTEM_UNIT_DIRS = ('/usr/lib/systemd/system', '/lib/systemd/system')
# Debian's python3 runs the agent on a host; it has jeepney and lxml from Debian packages.
HOST_PYTHON = '/usr/bin/python3'


def load_agent_module():
    """The agent file as a Python module (its name has no .py)."""
    loader = importlib.machinery.SourceFileLoader('hnf_agent', AGENT)
    spec = importlib.util.spec_from_loader('hnf_agent', loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def role_defaults():
    import yaml
    with open(os.path.join(ROLE, 'defaults', 'main.yml')) as handle:
        return yaml.safe_load(handle)


def render_units(dest, **overrides):
    """Render the role's unit templates into ``dest`` (role defaults + overrides)."""
    import jinja2
    values = dict(role_defaults(), ansible_managed='Ansible managed (test)')
    values.update(overrides)
    paths = []
    for unit in UNITS:
        with open(os.path.join(TEMPLATES, unit + '.j2')) as handle:
            text = jinja2.Template(handle.read(), undefined=jinja2.StrictUndefined).render(**values)
        path = os.path.join(dest, unit)
        with open(path, 'w') as handle:
            handle.write(text)
        paths.append(path)
    return paths


def system_unit(name):
    for directory in SYSTEM_UNIT_DIRS:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def libvirt_unit_dir():
    """A directory holding libvirt's real unit files (libvirt-guests.service, libvirtd.service, ...).

    Installed ones when libvirt-daemon-system is installed; otherwise the ones of
    that Debian package, downloaded with ``apt-get download`` and unpacked (not
    installed: installing it would start and configure libvirt on this machine)
    into tests/output/agent once. Skips with the reason when neither works.
    """
    if system_unit('libvirt-guests.service') and system_unit('libvirtd.service'):
        return os.path.dirname(system_unit('libvirt-guests.service'))
    unpacked = os.path.join(OUTPUT, 'libvirt-daemon-system')
    for sub in SYSTEM_UNIT_DIRS:
        found = os.path.join(unpacked + sub, 'libvirt-guests.service')
        if os.path.isfile(found):
            return os.path.dirname(found)
    if not shutil.which('apt-get') or not shutil.which('dpkg-deb'):
        pytest.skip('libvirt-guests.service is not installed and apt-get/dpkg-deb are missing to unpack '
                    'it from libvirt-daemon-system')
    download = os.path.join(OUTPUT, 'debs')
    os.makedirs(download, exist_ok=True)
    os.chmod(download, 0o755)
    result = subprocess.run(['apt-get', 'download', 'libvirt-daemon-system'], cwd=download, check=False,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    debs = sorted(f for f in os.listdir(download) if f.startswith('libvirt-daemon-system_') and f.endswith('.deb'))
    if not debs:
        pytest.skip('libvirt-guests.service is not installed and apt-get download libvirt-daemon-system '
                    'failed: %s' % result.stdout.strip()[-300:])
    subprocess.run(['dpkg-deb', '-x', os.path.join(download, debs[-1]), unpacked], check=True)
    return libvirt_unit_dir()


def run_agent(args, python=None, env=None, ns=None, timeout=300):
    """Run the agent (list of args) with Debian's python3 (as on a host) unless told otherwise."""
    argv = [python or agent_python(), AGENT] + list(args)
    if ns is not None:
        argv = ns.exec_argv(argv)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout, check=False)


def agent_python():
    """The host's python3 when it can import the engine's dependencies, else this test's Python."""
    if os.path.exists(HOST_PYTHON):
        probe = subprocess.run([HOST_PYTHON, '-c', 'import lxml'], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False)
        if probe.returncode == 0:
            return HOST_PYTHON
    return sys.executable


ENGINE_ENTRY = os.path.join(REPO, 'plugins', 'module_utils', '_reconcile', 'host.py')


def require_engine():
    """The agent calls _reconcile/host.py: reconcile_host (the engine's one host reconcile)."""
    if not os.path.isfile(ENGINE_ENTRY):
        pytest.skip('the engine entry point %s is not in this checkout yet' % os.path.relpath(ENGINE_ENTRY, REPO))


def require_agent_kernel(*tools):
    from ansible_collections.hypervisor.netfilter.tests.lib.netns import can_create_namespaces, missing_tools
    ok, reason = can_create_namespaces()
    if not ok:
        pytest.skip(reason)
    missing = missing_tools('ebtables-save', 'iptables-save', 'ip6tables-save', 'nft', *tools)
    if missing:
        pytest.skip('missing tools: %s' % ', '.join(missing))
    require_engine()


def store_bindings(state_dir, nics):
    """Store guest NIC bindings (what guest_nic_filter stores) without applying them:
    ``nics`` = [(interface, mac, filter, parameters)]."""
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    binding_store.save_bindings(state_dir, [binding_store.make_binding(i, m, f, p, seq=n + 1)
                                            for n, (i, m, f, p) in enumerate(nics)])


_COUNTERS = __import__('re').compile(r'\[\d+:\d+\]|counter packets \d+ bytes \d+| -c \d+ \d+')


def dump_host(ns):
    """Everything the agent restores, normalised: the xtables dumps (no counters,
    no comment lines), the nft ruleset (tables sorted) and the bridges with their addresses."""
    import json
    out = {}
    for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save'):
        text = ns.run([tool]).stdout
        out[tool] = [_COUNTERS.sub('', line).rstrip() for line in text.splitlines() if not line.startswith('#')]
    tables = []
    for line in ns.run(['nft', 'list', 'ruleset']).stdout.splitlines():
        line = _COUNTERS.sub('counter', line).rstrip()
        if line.startswith('table '):
            tables.append([])
        if tables and line:
            tables[-1].append(line)
    out['nft'] = sorted(tables, key=lambda t: t[0])
    links = json.loads(ns.run(['ip', '-j', 'addr', 'show', 'type', 'bridge']).stdout or '[]')
    out['bridges'] = sorted((link['ifname'], sorted('%s/%s' % (a['local'], a['prefixlen'])
                                                    for a in link.get('addr_info', ())
                                                    if not a['local'].startswith('fe80')))
                            for link in links)
    return out


def rule_count(dump):
    return sum(1 for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save')
               for line in dump[tool] if line.startswith('-A '))


def ours(dump):
    """The part of a dump_host() the agent owns: every ebtables line, the iptables lines of
    libvirt's chains (LIBVIRT_*, libvirt-*, F?-/H?- NIC chains) and the hooks to them, the
    libvirt_* nft tables, the bridges; firewalld's own tables and chains (which it rebuilds
    in its own order on every reload) left out."""
    import re
    mine = re.compile(r'LIBVIRT_|libvirt-|\b[FH][IOJP]-')
    # firewalld's iptables backend has *_direct chains in the ebtables tables too
    out = {'ebtables-save': [line for line in dump['ebtables-save'] if '_direct' not in line],
           'bridges': dump['bridges']}
    for tool in ('iptables-save', 'ip6tables-save'):
        out[tool] = [line for line in dump[tool] if mine.search(line)]
    out['nft'] = [table for table in dump['nft'] if 'libvirt' in table[0]]
    return out
