# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tp-libvirt (avocado-vt, Red Hat QE) nwfilter cases against our engine.

* ``nwfilter_vm_start`` / ``nwfilter_vm_start-stock`` (positive): the filter (or a
  built-in) is bound to vnet0 with the interface's ``<filterref>`` parameters,
  loaded into a fresh namespace, and the output of ``check_cmd`` must contain a
  match of ``expect_match`` (``re.search``, as avocado does), for every pair.
* ``nwfilter_vm_start-negative`` and ``virsh_nwfilter_define-negative``
  (``status_error: yes``): parse or compile must fail, and the error text must
  name the problem (the variable, the parameter, the value).
* ``virsh_nwfilter_define-positive`` and the valid ``default_mac_arp_rule``:
  must parse (strict), compile with a plausible binding and load in the kernel.
* ``virsh_nwfilter_define-boundary-negative``: out-of-range values; upstream
  skips these (boundary_test_skip=yes), so the expectation is advisory: we
  report how many we reject and require that every rejection names an attribute.

Bindings: tp-libvirt's VMs learn their IP from libvirt's default network; we do
not learn IPs, so a filter tree that needs ``$IP`` without one in the
interface's ``<filterref>`` is first checked to be refused with an error naming
``IP``, then bound with IP=192.168.122.50 (an address of that network).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import (
    BindingError, FilterError, ResolveError)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.tests.corpus.corpus_lib import (
    builtin_filters, corpus_missing_reason, corpus_path, kernel_skip_reason, load_ruleset, read, run_listing)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns, NetnsError

TP = corpus_path('tp-libvirt')
DEVNAME = 'vnet0'
VMMAC = '52:54:00:4e:00:01'
LEARNED_IP = '192.168.122.50'
ENGINE_ERRORS = (FilterError, ResolveError, BindingError)


def _skip_if_absent(capsys, kernel=True):
    reason = corpus_missing_reason('tp-libvirt') or (kernel_skip_reason() if kernel else None)
    if reason:
        with capsys.disabled():
            print('\ncorpus tp-libvirt skipped: %s' % reason)
        pytest.skip(reason)


def _cases(folder, suffix):
    path = os.path.join(TP, folder)
    return sorted(name[:-len(suffix)] for name in os.listdir(path) if name.endswith(suffix))


def _expectation(folder, name):
    """Fields of N.expected.txt: check_cmd, expect_match, status_error, note."""
    fields = {}
    for line in read(os.path.join(TP, folder, name + '.expected.txt')).splitlines():
        key, sep, value = line.partition(': ')
        if sep:
            fields[key.strip()] = value
    return fields


def _filterref(folder, name):
    """(filter name, parameters name -> str or list) of N.interface-filterref.xml."""
    root = ET.fromstring(read(os.path.join(TP, folder, name + '.interface-filterref.xml')))
    params = {}
    for param in root.findall('parameter'):
        key, value = param.get('name'), param.get('value')
        if key in params:
            previous = params[key]
            params[key] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            params[key] = value
    return root.get('filter'), params


def _checks(fields, filter_chain):
    """[(command, regex)] pairs; lists in the cfg are comma separated, pairwise."""
    commands = [c.strip() for c in fields['check_cmd'].split(',')]
    if len(commands) == 1:
        matches = [fields['expect_match']]
    else:
        matches = [m.strip() for m in fields['expect_match'].split(', ')]
    assert len(commands) == len(matches), fields
    pairs = []
    for command, regex in zip(commands, matches):
        command = command.replace('DEVNAME', DEVNAME).replace('${filter_chain}', filter_chain or 'root')
        pairs.append((command, regex.replace('VMMAC', VMMAC)))
    return pairs


def _bind(filter_name, params, filters):
    """Compile; when the tree needs an IP the binding lacks, check the refusal
    names IP, then bind the learned address. Returns (ruleset, note)."""
    try:
        return compile_binding(DEVNAME, VMMAC, filter_name, params, filters), ''
    except ENGINE_ERRORS as exc:
        if 'IP' in params or not re.search(r'\bIP\b', str(exc)):
            raise
    with_ip = dict(params)
    with_ip['IP'] = LEARNED_IP
    return compile_binding(DEVNAME, VMMAC, filter_name, with_ip, filters), 'IP=%s given (libvirt would learn it)' % LEARNED_IP


def _run_positive(folder, name, filters, own_filter):
    """None when every expect_match matches, else a failure description."""
    fields = _expectation(folder, name)
    filter_name, params = _filterref(folder, name)
    if own_filter is not None:
        filters = dict(filters)
        filters[own_filter.name] = own_filter
        assert own_filter.name == filter_name, (name, own_filter.name, filter_name)
    chain = filters[filter_name].chain if filter_name in filters else 'root'
    ruleset, _note = _bind(filter_name, params, filters)
    if 'check_cmd' not in fields:
        return None
    failures = []
    with Netns(tag='tp') as ns:
        if 'ipset -N blacklist' in fields.get('note', ''):
            ns.run(['ipset', 'create', 'blacklist', 'hash:ip'])
            ns.run(['ipset', 'add', 'blacklist', '192.168.123.236'])
        load_ruleset(ns, ruleset)
        for command, regex in _checks(fields, chain):
            _status, output = run_listing(ns, command)
            if not re.search(regex, '\n'.join(output)):
                failures.append('%s: `%s` has no match for /%s/:\n      %s'
                                % (name, command, regex, '\n      '.join(output)))
    return '\n'.join(failures) or None


def test_vm_start_positive(capsys):
    _skip_if_absent(capsys)
    filters = builtin_filters()
    results = {}
    for name in _cases('nwfilter_vm_start', '.filter.xml'):
        own = parse_filter(read(os.path.join(TP, 'nwfilter_vm_start', name + '.filter.xml')),
                           source=name + '.filter.xml')
        results['nwfilter_vm_start/' + name] = _run_positive('nwfilter_vm_start', name, filters, own)
    for name in _cases('nwfilter_vm_start-stock', '.interface-filterref.xml'):
        results['nwfilter_vm_start-stock/' + name] = _run_positive('nwfilter_vm_start-stock', name, filters, None)
    failures = dict((k, v) for k, v in results.items() if v)
    with capsys.disabled():
        print('\ncorpus tp-libvirt positive (vm_start + stock): %d/%d match'
              % (len(results) - len(failures), len(results)))
        for key, text in sorted(failures.items()):
            print('MISMATCH %s %s' % (key, text))
    assert not failures


def test_ip_learning_binding_is_refused_without_ip():
    """ip_learning binds clean-traffic with CTRL_IP_LEARNING=dhcp and no IP:
    libvirt learns the address; we refuse and name IP (documented decision)."""
    if corpus_missing_reason('tp-libvirt'):
        pytest.skip(corpus_missing_reason('tp-libvirt'))
    filters = builtin_filters()
    own = parse_filter(read(os.path.join(TP, 'nwfilter_vm_start', 'ip_learning.filter.xml')))
    filters[own.name] = own
    filter_name, params = _filterref('nwfilter_vm_start', 'ip_learning')
    with pytest.raises(ENGINE_ERRORS, match=r'\bIP\b'):
        compile_binding(DEVNAME, VMMAC, filter_name, params, filters)


# Each negative case: the words its error must contain (the problem, named).
# (ip_learning_err: FINDINGS.md F1, fixed in 7f760ec.)
NEGATIVE_WORDS = {
    'nwfilter_vm_start-negative/dhcpserver_variable_missing': ('DHCPSERVER',),
    'nwfilter_vm_start-negative/ip_learning_err': ('CTRL_IP_LEARNING', 'invalid'),
    'virsh_nwfilter_define-negative/invalid_rule_action': ('action', 'dropaaaa'),
}


# Defined by libvirt but never instantiable: libvirt fails applying the rules
# (measured on 9.0.0, test_corpus_real_world.py::test_libvirt_behaviour_behind_findings);
# we must parse them and refuse the binding at compile time, naming the attribute.
# (FINDINGS.md F2, fixed in 7f760ec.)
INSTANTIATION_REFUSED = {'vlan_test': 'vlanid'}


def _negative_outcome(key, filters):
    """The engine's error text for a negative case, or None if it was accepted."""
    folder, name = key.split('/')
    filters = dict(filters)
    try:
        own = parse_filter(read(os.path.join(TP, folder, name + '.filter.xml')), source=name + '.filter.xml')
        filters[own.name] = own
        if not os.path.exists(os.path.join(TP, folder, name + '.interface-filterref.xml')):
            return None
        filter_name, params = _filterref(folder, name)
        compile_binding(DEVNAME, VMMAC, filter_name, params, filters)
    except ENGINE_ERRORS as exc:
        return str(exc)
    return None


def test_negative_cases_are_rejected_with_a_clear_error(capsys):
    _skip_if_absent(capsys, kernel=False)
    filters = builtin_filters()
    outcomes = dict((key, _negative_outcome(key, filters)) for key in sorted(NEGATIVE_WORDS))
    problems = {}
    for key, error in outcomes.items():
        if error is None:
            problems[key] = 'accepted, but tp-libvirt expects a failure'
        elif not all(word in error for word in NEGATIVE_WORDS[key]):
            problems[key] = 'error does not name %s: %s' % (' and '.join(NEGATIVE_WORDS[key]), error)
    with capsys.disabled():
        print('\ncorpus tp-libvirt negative: %d/%d rejected with an error naming the problem'
              % (len(outcomes) - len(problems), len(outcomes)))
        for key, error in sorted(outcomes.items()):
            print('  %s: %s' % (key, error))
        for key, text in sorted(problems.items()):
            print('MISMATCH %s: %s' % (key, text))
    assert not problems


def test_define_positive_parse_compile_load(capsys):
    _skip_if_absent(capsys)
    filters = builtin_filters()
    cases = [('virsh_nwfilter_define-positive', n) for n in _cases('virsh_nwfilter_define-positive', '.filter.xml')]
    cases.append(('virsh_nwfilter_define-negative', 'default_mac_arp_rule'))
    failures = {}
    for folder, name in cases:
        failure = _define_and_load(folder, name, filters)
        if failure:
            failures[name] = failure
    with capsys.disabled():
        print('\ncorpus tp-libvirt define-positive: %d/%d parse strictly, then compile and load '
              '(or, for %s, are refused at compile time naming %s, where libvirt fails applying them)'
              % (len(cases) - len(failures), len(cases), ', '.join(sorted(INSTANTIATION_REFUSED)),
                 ', '.join(sorted(set(INSTANTIATION_REFUSED.values())))))
        for key, text in sorted(failures.items()):
            print('MISMATCH %s: %s' % (key, text))
    assert not failures


def _define_and_load(folder, name, filters):
    """None when the filter parses (strict), compiles to rules and loads (or is
    refused as INSTANTIATION_REFUSED says); else why not."""
    try:
        own = parse_filter(read(os.path.join(TP, folder, name + '.filter.xml')), source=name + '.filter.xml')
    except FilterError as exc:
        return 'libvirt defines it, we do not parse it: %s' % exc
    merged = dict(filters)
    merged[own.name] = own
    try:
        ruleset = compile_binding(DEVNAME, VMMAC, own.name, {'IP': LEARNED_IP}, merged)
    except ENGINE_ERRORS as exc:
        attribute = INSTANTIATION_REFUSED.get(name)
        if attribute and "attribute '%s'" % attribute in str(exc):
            return None
        return str(exc)
    if name in INSTANTIATION_REFUSED:
        return 'compiled, but no kernel can load it (libvirt fails applying it): refuse it at compile time'
    if not any(chain.rules for table in ruleset.tables for chain in table.chains):
        return 'compiled to no rules at all'
    with Netns(tag='tpdef') as ns:
        try:
            load_ruleset(ns, ruleset)
        except NetnsError as exc:
            return 'the kernel refused our rules: %s' % exc
    return None


def test_define_boundary_negative(capsys):
    _skip_if_absent(capsys, kernel=False)
    names = _cases('virsh_nwfilter_define-boundary-negative', '.filter.xml')
    rejected = {}
    accepted = []
    for name in names:
        text = read(os.path.join(TP, 'virsh_nwfilter_define-boundary-negative', name + '.filter.xml'))
        try:
            parse_filter(text, source=name + '.filter.xml')
        except FilterError as exc:
            rejected[name] = str(exc)
        else:
            accepted.append(name)
    with capsys.disabled():
        print('\ncorpus tp-libvirt boundary-negative (advisory upstream): %d/%d rejected'
              % (len(rejected), len(names)))
        for name in accepted:
            print('  accepted: %s' % name)
        for name, error in sorted(rejected.items()):
            print('  rejected: %s: %s' % (name, error))
    unclear = [name for name, error in rejected.items() if not re.search(r"attribute '[a-z-]+'", error)]
    assert not unclear, unclear
