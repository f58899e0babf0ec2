# -*- coding: utf-8 -*-
"""Our compiler against command streams recorded from a live libvirt 9.0.0.

``clean-traffic-apply.cmds`` covers $MAC/$IP substitution, the filterref tree of
the built-in clean-traffic, chain priorities and sub-chain interleaving;
``quirks.cmds`` covers negation quirks, filterref parameter precedence, iprange,
tcp flags/options, connlimit, state handling and the failing 'continue'.
Rules are compared chain by chain, in order, after libvirt's rename of its
temporary chains (J->I, P->O, FJ->FI, FP->FO, HJ->HI).
"""

from __future__ import annotations

import os
import re
import shlex

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import ResolveError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_binding, parse_filter
from ansible_collections.hypervisor.netfilter.tests.conformance.libvirt_vectors import (
    REFERENCE, final_chain_name, final_names_in_args)

LIVE = os.path.join(REFERENCE, 'live-libvirt-9.0.0')
BASE_CHAINS = ('libvirt-in', 'libvirt-out', 'libvirt-in-post', 'libvirt-host-in')
FAMILY = {'ebtables': 'eb', 'iptables': 'ip', 'ip6tables': 'ip6'}


def _skip_without_live():
    if not os.path.isdir(LIVE):
        pytest.skip('live libvirt captures not found at %s (../shared is absent in a user clone)' % LIVE)


def _builtins():
    return dict((name, parse_filter(xml, source=name)) for name, xml in BUILTIN_FILTERS.items())


def _chains_from_commands(lines):
    chains = {}
    for line in lines:
        if not line.strip() or line.startswith('#'):
            continue
        cmd = shlex.split(line)
        family = FAMILY[cmd[0]]
        args = [a for a in cmd[1:] if a not in ('--concurrent', '-w')]
        if args[:2] == ['-t', 'nat']:
            args = args[2:]
        if args[0] != '-A' or args[1] in ('PREROUTING', 'POSTROUTING') or args[1] in BASE_CHAINS:
            continue
        chains.setdefault((family, final_chain_name(args[1])), []).append(final_names_in_args(args[2:]))
    return chains


def _our_chains(ruleset):
    return dict(((t.family, c.name), [list(r) for r in c.rules])
                for t in ruleset.tables for c in t.chains if c.name not in BASE_CHAINS and c.rules)


def _commented_xml(lines):
    """The XML documents written as '# <...>' comment lines before the commands."""
    docs, current = [], []
    for line in lines:
        if not line.startswith('# '):
            continue
        text = line[2:]
        if text.lstrip().startswith('<filter ') or text.lstrip().startswith('<filterbinding>'):
            current = [text]
        elif current:
            current.append(text)
            if text.strip() in ('</filter>', '</filterbinding>'):
                docs.append('\n'.join(current))
                current = []
    return docs


def test_clean_traffic_live_apply():
    _skip_without_live()
    with open(os.path.join(LIVE, 'clean-traffic-apply.cmds')) as handle:
        lines = handle.read().splitlines()
    binding = parse_binding(_commented_xml(lines)[0], source='clean-traffic-apply.cmds')
    ruleset = compile_binding(binding.portdev, binding.mac, binding.filter, binding.parameters, _builtins())
    assert _our_chains(ruleset) == _chains_from_commands(lines)
    hooks = ruleset.table('eb', 'nat').hooks
    assert [h.args for h in hooks] == [('-i', 'vnet7', '-j', 'libvirt-I-vnet7'), ('-o', 'vnet7', '-j', 'libvirt-O-vnet7')]


def _quirk_sections():
    with open(os.path.join(LIVE, 'quirks.cmds')) as handle:
        text = handle.read()
    sections = re.split(r'^(########## .*)$', text, flags=re.M)
    return [(sections[i], sections[i + 1].splitlines()) for i in range(1, len(sections), 2)]


def test_quirks_live_apply():
    _skip_without_live()
    checked = 0
    for header, lines in _quirk_sections():
        filters = _builtins()
        docs = [parse_filter(doc, source=header) for doc in _commented_xml(lines)]
        filters.update((f.name, f) for f in docs)
        parameters = {'X': '9.9.9.9'} if 'X=9.9.9.9' in header else {}
        if any(line.startswith('# ERROR') for line in lines):
            with pytest.raises(ResolveError, match='continue'):
                compile_binding('vnet8', '52:54:00:11:22:33', docs[0].name, parameters, filters)
        else:
            ruleset = compile_binding('vnet8', '52:54:00:11:22:33', docs[0].name, parameters, filters)
            assert _our_chains(ruleset) == _chains_from_commands(lines), header
        checked += 1
    assert checked == 5
