# -*- coding: utf-8 -*-
"""Conformance of the nwfilter compiler with libvirt's own test vectors.

For every ``tests/nwfilterxml2firewalldata/N.xml`` that has an ``N-linux.args``
we compile N.xml with the variables and interface of libvirt's harness, then:

* ``test_rules_per_chain``: compare our rules, chain by chain and in order, with
  the ``-A`` commands of the vector (pure Python, no root);
* ``test_kernel_dumps``: load our restore text into one fresh network namespace
  and replay libvirt's commands in another, then compare the ``*-save`` dumps.

libvirt's vectors use its temporary chain names (``libvirt-J-vnet0``, ``FJ-``...),
which its swap step renames to the final ones we use; the dumps are compared
after that rename. The harness removed fixed set-up blocks from the vectors;
``_libvirt_prologue`` replays what those blocks did.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.tests.conformance.libvirt_vectors import (
    HARNESS_INTERFACE, HARNESS_VARIABLES, NWFILTER_VECTORS, final_chain_name, final_names_in_args,
    read_commands, reference_missing_reason, vector_names)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import (
    Netns, NetnsError, can_create_namespaces, missing_tools)

BASE_CHAINS = ('libvirt-in', 'libvirt-out', 'libvirt-in-post', 'libvirt-host-in')
FAMILY_OF_TOOL = {'ebtables': 'eb', 'iptables': 'ip', 'ip6tables': 'ip6'}
SAVE = {'eb': ['ebtables-save'], 'ip': ['iptables-save'], 'ip6': ['ip6tables-save']}
RESTORE = {'eb': ['ebtables-restore', '--noflush'], 'ip': ['iptables-restore', '--noflush'],
           'ip6': ['ip6tables-restore', '--noflush']}
# Commands libvirt runs in ignore-errors transactions or as "-F/-X before -N".
_IGNORED_OPS = ('-D', '-F', '-X', '-L')


def _skip_without_reference():
    reason = reference_missing_reason()
    if reason:
        print('nwfilter conformance skipped: %s' % reason)
        pytest.skip(reason)


def _compile(name):
    with open(os.path.join(NWFILTER_VECTORS, name + '.xml')) as handle:
        flt = parse_filter(handle.read(), source=name + '.xml', strict=False)
    return compile_binding(HARNESS_INTERFACE, None, flt.name, HARNESS_VARIABLES, {flt.name: flt})


def _expected_commands(name):
    return read_commands(os.path.join(NWFILTER_VECTORS, name + '-linux.args'))


def _split(cmd):
    """(family, args after the tool's lock/table options) of one vector command."""
    family = FAMILY_OF_TOOL[cmd[0]]
    args = cmd[1:]
    while args and args[0] in ('--concurrent', '-w'):
        args = args[1:]
    if args[:2] == ['-t', 'nat']:
        args = args[2:]
    return family, args


def _our_chains(ruleset):
    chains = {}
    for table in ruleset.tables:
        for chain in table.chains:
            if chain.name in BASE_CHAINS or not chain.rules:
                continue
            chains[(table.family, chain.name)] = [list(rule) for rule in chain.rules]
    return chains


def _vector_chains(commands):
    chains = {}
    for cmd in commands:
        family, args = _split(cmd)
        if args[0] == '-A' and args[1] not in ('PREROUTING', 'POSTROUTING'):
            chains.setdefault((family, final_chain_name(args[1])), []).append(final_names_in_args(args[2:]))
    return chains


def _chain_diff(ours, expected):
    lines = []
    for key in sorted(set(ours) | set(expected)):
        if ours.get(key) != expected.get(key):
            lines.append('  %s chain %s:' % key)
            lines += ['    ours: ' + ' '.join(r) for r in ours.get(key, [])]
            lines += ['    libv: ' + ' '.join(r) for r in expected.get(key, [])]
    return lines


def test_rules_per_chain(capsys):
    _skip_without_reference()
    names = vector_names()
    mismatches = []
    for name in names:
        ours = _our_chains(_compile(name))
        expected = _vector_chains(_expected_commands(name))
        if ours != expected:
            mismatches.append('%s:\n%s' % (name, '\n'.join(_chain_diff(ours, expected))))
    with capsys.disabled():
        print('\nnwfilter conformance (rules per chain): %d/%d vectors identical' % (
            len(names) - len(mismatches), len(names)))
        for text in mismatches:
            print('MISMATCH ' + text)
    assert not mismatches


# ---------------------------------------------------------------------------
# Kernel dumps


def _libvirt_prologue(commands):
    """Commands the harness stripped from the vector, reconstructed from what it uses."""
    eb = 'ebtables --concurrent -t nat'.split()
    text = [' '.join(c) for c in commands]
    joined = '\n'.join(text)
    prologue = []
    epilogue = []
    iface = HARNESS_INTERFACE
    for root, hook, flag in (('libvirt-J-' + iface, 'PREROUTING', '-i'), ('libvirt-P-' + iface, 'POSTROUTING', '-o')):
        used = re.search(r'-A %s ' % re.escape(root), joined)
        created = ('-N %s' % root) in joined
        if used and not created:
            prologue.append(eb + ['-N', root])
        hooked = ('-A %s %s %s -j %s' % (hook, flag, iface, root)) in joined
        if used and not hooked:
            epilogue.append(eb + ['-A', hook, flag, iface, '-j', root])
    for tool in ('iptables', 'ip6tables'):
        if not any(c[0] == tool for c in commands) or ('%s -w -N FP-%s' % (tool, iface)) in joined:
            continue
        xt = [tool, '-w']
        for chain in BASE_CHAINS:
            prologue.append(xt + ['-N', chain])
        prologue += [xt + ['-I', 'FORWARD', '1', '-j', 'libvirt-in'], xt + ['-I', 'FORWARD', '2', '-j', 'libvirt-out'],
                     xt + ['-I', 'FORWARD', '3', '-j', 'libvirt-in-post'],
                     xt + ['-I', 'INPUT', '1', '-j', 'libvirt-host-in']]
        prologue += [xt + ['-N', 'FP-' + iface], xt + ['-N', 'FJ-' + iface], xt + ['-N', 'HJ-' + iface]]
        prologue += [
            xt + ['-A', 'libvirt-out', '-m', 'physdev', '--physdev-is-bridged', '--physdev-out', iface, '-g', 'FP-' + iface],
            xt + ['-A', 'libvirt-in', '-m', 'physdev', '--physdev-in', iface, '-g', 'FJ-' + iface],
            xt + ['-A', 'libvirt-host-in', '-m', 'physdev', '--physdev-in', iface, '-g', 'HJ-' + iface],
            xt + ['-A', 'libvirt-in-post', '-m', 'physdev', '--physdev-in', iface, '-j', 'ACCEPT'],
        ]
    return prologue, epilogue


def _normalised_dump(ns, family, rename):
    out = ns.run(SAVE[family]).stdout
    declarations = []
    rules = []
    table = None
    for line in out.splitlines():
        if not line or line.startswith('#') or line == 'COMMIT':
            continue
        words = line.split(' ')
        if rename:
            words = [(':' + final_chain_name(w[1:])) if w.startswith(':') else final_chain_name(w) for w in words]
        line = re.sub(r' \[\d+:\d+\]$', '', ' '.join(words))
        if line.startswith('*'):
            table = line
        elif line.startswith(':'):
            declarations.append((table, line))
        else:
            rules.append((table, words[1] if len(words) > 1 else '', line))
    # Chain listing order is the tool's; rule order inside each chain is what matters.
    rules.sort(key=lambda r: (r[0], r[1]))
    return sorted(declarations), [r[0] + ' ' + r[2] for r in rules]


def _load_ours(ns, ruleset):
    for family in ruleset.families():
        ns.run(RESTORE[family], input_text=ruleset.render(family))


def _replay_libvirt(ns, commands):
    prologue, epilogue = _libvirt_prologue(commands)
    for cmd in prologue + commands + epilogue:
        family, args = _split(cmd)
        result = ns.run(cmd, check=False)
        if result.returncode != 0 and args[0] not in _IGNORED_OPS:
            raise AssertionError('libvirt command failed: %s\n%s' % (' '.join(cmd), result.stderr))


def _kernel_skip_reason():
    ok, reason = can_create_namespaces()
    if not ok:
        return reason
    missing = missing_tools('ebtables', 'iptables', 'ip6tables', 'ebtables-restore', 'iptables-restore', 'ipset')
    if missing:
        return 'missing tools: %s (apt-get install iptables ebtables ipset)' % ', '.join(missing)
    return None


def test_kernel_dumps(capsys):
    _skip_without_reference()
    reason = _kernel_skip_reason()
    if reason:
        pytest.skip(reason)
    names = vector_names()
    mismatches = []
    for name in names:
        ruleset = _compile(name)
        commands = _expected_commands(name)
        families = sorted(set(ruleset.families()) | set(FAMILY_OF_TOOL[c[0]] for c in commands))
        with Netns(tag='cv-ours') as ours_ns, Netns(tag='cv-libv') as libvirt_ns:
            try:
                for ns in (ours_ns, libvirt_ns):
                    # The ipset vector needs the set its header tells testers to create.
                    if HARNESS_VARIABLES['IPSETNAME'] in ' '.join(' '.join(c) for c in commands):
                        ns.run(['ipset', 'create', HARNESS_VARIABLES['IPSETNAME'], 'hash:ip'])
                _load_ours(ours_ns, ruleset)
                _replay_libvirt(libvirt_ns, commands)
            except (AssertionError, NetnsError, subprocess.CalledProcessError) as exc:
                mismatches.append('%s: %s' % (name, getattr(exc, 'stderr', None) or exc))
                continue
            for family in families:
                ours = _normalised_dump(ours_ns, family, rename=False)
                theirs = _normalised_dump(libvirt_ns, family, rename=True)
                if ours != theirs:
                    diff = ['  ours: %s' % line for line in ours[1] if line not in theirs[1]]
                    diff += ['  libv: %s' % line for line in theirs[1] if line not in ours[1]]
                    diff += ['  chains ours: %s' % ' '.join(d[1] for d in ours[0]),
                             '  chains libv: %s' % ' '.join(d[1] for d in theirs[0])]
                    mismatches.append('%s (%s):\n%s' % (name, family, '\n'.join(diff)))
    with capsys.disabled():
        print('\nnwfilter conformance: %d/%d vectors identical' % (
            len(names) - len(set(m.split(' ')[0].rstrip(':') for m in mismatches)), len(names)))
        for text in mismatches:
            print('MISMATCH ' + text)
    assert not mismatches
