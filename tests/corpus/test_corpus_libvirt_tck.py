# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt-tck's nwfilter host test (scripts/nwfilter/nwfilter2vmtest.sh), replayed
against our compiler and the real kernel.

For each ``nwfilterxml2xmlin/N.xml`` with an ``nwfilterxml2fwallout/N.fwall``:

* run the precondition of the input's first-line ``<!-- #cmd# -->`` comment in a
  fresh network namespace (the tck skips the case when it fails);
* define N.xml as ``tck-testcase`` and bind it like the tck's VM1 (interface
  vnet0, MAC 52:54:0:0:0:1, IP=10.2.2.2, the lists A, B, C and IPSETNAME); bind
  ``nwfiltertestfilter`` (clean-traffic + drop all/all-ipv6) like its VM2
  (IP=10.1.1.1, MAC 52:54:10:9f:33:da) on vnet1;
* load both with ``*-restore --noflush`` and run every ``#`` command of N.fwall
  (and of testvm.fwall.dat with vnet0 -> vnet1, as the tck does after each case);
* compare like the tck: actual output with ``-p 0x600`` -> ``-p Length``,
  ``--icmp-type 255/255`` -> ``--icmp-type any``, lowercased, then ``diff -w``.

``--ctdir``: the tck once swapped ORIGINAL/REPLY in the actual output on kernels
>= 2.6.39 (commit f04912c, 2013) and stopped in 2022 (commit 2ccf5ec) after
rewriting the .fwall files; its ``IPTABLES_CTRDIR_CORRECTED`` variable is now dead.
The .fwall files therefore carry libvirt's own spelling (FI/HI chains
``--ctdir Original``, FO ``--ctdir Reply``) and are compared literally.
``test_kernel_ctdir_is_corrected`` measures what this kernel does with real
packets, so a kernel that inverted the meaning again would be noticed.
"""

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets
from ansible_collections.hypervisor.netfilter.tests.corpus.corpus_lib import (
    builtin_filters, corpus_missing_reason, corpus_path, kernel_skip_reason, load_ruleset,
    parse_expectation_file, read, run_listing, squash_whitespace)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns

TCK = corpus_path('libvirt-tck')
XMLIN = os.path.join(TCK, 'nwfilterxml2xmlin')
FWALL = os.path.join(TCK, 'nwfilterxml2fwallout')
TESTVM_DATA = os.path.join(FWALL, 'testvm.fwall.dat')
TESTFILTER = os.path.join(TCK, 'embedded', 'nwfiltertestfilter.xml')

VM1_IF, VM1_MAC = 'vnet0', '52:54:0:0:0:1'
VM1_PARAMETERS = {
    'IP': '10.2.2.2',
    'A': ['1.1.1.1', '2.2.2.2', '3.3.3.3', '3.3.3.3'],
    'B': ['80', '90', '80', '80'],
    'C': ['1080', '1090', '1100', '1110'],
    'IPSETNAME': 'tck_test',
}
VM2_IF, VM2_MAC = 'vnet1', '52:54:10:9f:33:da'
VM2_PARAMETERS = {'IP': '10.1.1.1'}
ORIG_IFNAME = 'vnet0'
IPSET = 'tck_test'
# The tck runs its cases in one libvirt, in file-name order: the set that
# ipset-test's precondition creates still exists when zzz-ipset-cleanup runs.
CASES_AFTER_IPSET_CREATION = ('zzz-ipset-cleanup',)
# The tck's VMs sit on virbr0 of libvirt's default network, so its host also
# carries the network driver's top-level chains (ah-ipv6-test.fwall lists
# ``ip6tables -S INPUT`` whole and expects ``-A INPUT -j LIBVIRT_INP`` after
# nwfilter's ``libvirt-host-in``). We put them there before loading our rules,
# as libvirtd's network driver does at start (one jump per built-in chain).
HOST_NETWORK_CHAINS = '''*filter
:LIBVIRT_INP - [0:0]
:LIBVIRT_OUT - [0:0]
:LIBVIRT_FWO - [0:0]
:LIBVIRT_FWI - [0:0]
:LIBVIRT_FWX - [0:0]
-A INPUT -j LIBVIRT_INP
-A FORWARD -j LIBVIRT_FWX
-A FORWARD -j LIBVIRT_FWI
-A FORWARD -j LIBVIRT_FWO
-A OUTPUT -j LIBVIRT_OUT
COMMIT
'''

_PRECONDITION = re.compile(r'^<!--[\t ]*#(.*)#[\t ]*-->')


def _skip_reason():
    return corpus_missing_reason('libvirt-tck') or kernel_skip_reason()


def case_names():
    return sorted(name[:-len('.fwall')] for name in os.listdir(FWALL) if name.endswith('.fwall'))


def _normalise_actual(lines):
    out = []
    for line in lines:
        line = line.replace('-p 0x600', '-p Length', 1)
        line = line.replace('--icmp-type 255/255', '--icmp-type any', 1)
        out.append(line.lower())
    return out


def _parse_test_filter(text, source):
    """strict first; libvirt accepts more (strict=False): note which cases need it."""
    try:
        return parse_filter(text, source=source, strict=True), True
    except FilterError:
        return parse_filter(text, source=source, strict=False), False


def _check_blocks(ns, blocks, ifname, label):
    """Run the commands of one expectation file; [(command, ok, diff lines)]."""
    results = []
    for command, expected in blocks:
        command = command.replace(ORIG_IFNAME, ifname)
        expected = [line.replace(ORIG_IFNAME, ifname) for line in expected]
        _status, actual = run_listing(ns, command)
        actual = _normalise_actual(actual)
        ok = squash_whitespace(actual) == squash_whitespace(expected)
        diff = []
        if not ok:
            diff = ['  %s: #%s' % (label, command)]
            diff += ['    expected: %s' % line for line in expected]
            diff += ['    actual:   %s' % line for line in actual]
        results.append((command, ok, diff))
    return results


def run_case(name, filters, input_name=None):
    """Everything for one case in a fresh namespace; returns a dict of results.
    ``input_name`` loads another case's filter (to prove a wrong ruleset fails)."""
    xml = read(os.path.join(XMLIN, (input_name or name) + '.xml'))
    first_line = xml.splitlines()[0] if xml else ''
    precondition = _PRECONDITION.match(first_line)
    test_filter, strict_ok = _parse_test_filter(xml, name + '.xml')
    assert test_filter.name == 'tck-testcase', name
    all_filters = dict(filters)
    all_filters['tck-testcase'] = test_filter
    result = {'name': name, 'strict': strict_ok, 'skipped': None, 'vm1': [], 'vm2': []}
    with Netns(tag='tck') as ns:
        for tool in ('iptables-restore', 'ip6tables-restore'):
            ns.run([tool, '--noflush'], input_text=HOST_NETWORK_CHAINS)
        if name in CASES_AFTER_IPSET_CREATION:
            ns.run(['ipset', 'create', IPSET, 'hash:ip'])
        if precondition:
            status, _output = run_listing(ns, precondition.group(1))
            if status != 0:
                result['skipped'] = precondition.group(1)
                return result
        ruleset = merge_rulesets([
            compile_binding(VM1_IF, VM1_MAC, 'tck-testcase', VM1_PARAMETERS, all_filters),
            compile_binding(VM2_IF, VM2_MAC, 'nwfiltertestfilter', VM2_PARAMETERS, all_filters),
        ])
        load_ruleset(ns, ruleset)
        result['vm1'] = _check_blocks(ns, parse_expectation_file(read(os.path.join(FWALL, name + '.fwall'))),
                                      VM1_IF, name)
        result['vm2'] = _check_blocks(ns, parse_expectation_file(read(TESTVM_DATA)), VM2_IF,
                                      'testvm.fwall.dat after ' + name)
    return result


def _filters_with_testfilter():
    filters = builtin_filters()
    testfilter = parse_filter(read(TESTFILTER), source='nwfiltertestfilter.xml')
    filters[testfilter.name] = testfilter
    return filters


def test_libvirt_tck_fwall(capsys):
    reason = _skip_reason()
    if reason:
        with capsys.disabled():
            print('\ncorpus libvirt-tck skipped: %s' % reason)
        pytest.skip(reason)
    filters = _filters_with_testfilter()
    names = case_names()
    results = [run_case(name, filters) for name in names]
    identical = [r for r in results if not r['skipped'] and r['vm1'] and all(ok for _c, ok, _d in r['vm1'])]
    skipped = [r for r in results if r['skipped']]
    vm2_checks = [check for r in results for check in r['vm2']]
    vm2_ok = bool(vm2_checks) and all(ok for _c, ok, _d in vm2_checks)
    commands = [check for r in results for check in r['vm1'] + r['vm2']]
    commands_ok = [check for check in commands if check[1]]
    lenient = [r['name'] for r in results if not r['strict']]
    mismatches = [line for r in results for _c, ok, diff in r['vm1'] + r['vm2'] if not ok for line in diff]
    with capsys.disabled():
        print('\ncorpus libvirt-tck: %d/%d identical (.fwall cases; testvm.fwall.dat %s after every case)'
              % (len(identical), len(names), 'identical' if vm2_ok else 'DIFFERENT'))
        print('corpus libvirt-tck: %d/%d listing commands identical' % (len(commands_ok), len(commands)))
        if skipped:
            print('corpus libvirt-tck: skipped by their precondition: %s'
                  % ', '.join('%s (%s)' % (r['name'], r['skipped']) for r in skipped))
        if lenient:
            print('corpus libvirt-tck: parsed only with strict=False: %s' % ', '.join(lenient))
        for line in mismatches:
            print('MISMATCH' + line)
    assert not skipped, 'a precondition failed here; the tck would skip these cases'
    assert vm2_ok
    assert len(identical) == len(names)


def test_comparison_detects_wrong_rules():
    """The replay is not vacuous: udp-test's rules checked against tcp-test.fwall
    must differ, while testvm.fwall.dat (same VM2 rules) still matches."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    result = run_case('tcp-test', _filters_with_testfilter(), input_name='udp-test')
    assert not all(ok for _c, ok, _d in result['vm1'])
    assert all(ok for _c, ok, _d in result['vm2'])


def test_kernel_ctdir_is_corrected():
    """The direction ``--ctdir ORIGINAL`` matches, measured with real packets:
    a ping to ourselves in a namespace passes OUTPUT twice (request: original
    direction, reply: reply direction)."""
    reason = kernel_skip_reason()
    if reason:
        pytest.skip(reason)
    with Netns(tag='ctdir') as ns:
        for ctdir in ('ORIGINAL', 'REPLY'):
            ns.run(['iptables', '-A', 'OUTPUT', '-p', 'icmp', '--icmp-type', 'echo-request',
                    '-m', 'conntrack', '--ctdir', ctdir])
        ns.run(['ping', '-c', '1', '-W', '2', '127.0.0.1'])
        counts = {}
        for line in ns.run(['iptables', '-L', 'OUTPUT', '-v', '-n', '-x']).stdout.splitlines():
            match = re.search(r'^\s*(\d+)\s.*ctdir (ORIGINAL|REPLY)', line)
            if match:
                counts[match.group(2)] = int(match.group(1))
    # Corrected meaning (kernels >= 2.6.39): the request belongs to the original direction.
    assert counts == {'ORIGINAL': 1, 'REPLY': 0}, counts
