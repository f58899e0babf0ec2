# -*- coding: utf-8 -*-
"""Differential test against a live libvirt (9.0, iptables layout).

For nat, routed, isolated and an IPv4+IPv6 network, ``../shared/tools/libvirt-oracle``
starts the network with a real libvirtd in a namespace of its own and prints
the normalised ``iptables-save``/``ip6tables-save``; the module applies the same
XML in a fresh namespace of ours. Both dumps must be identical, table by table
(the order in which tables appear in a dump depends on which tool touched them
first and means nothing). Skips with the reason when the oracle is absent or
cannot run.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.network_support import (
    REPO, require_kernel, run_module)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns

SHARED = os.path.join(os.path.dirname(REPO), 'shared')
ORACLE = os.path.join(SHARED, 'tools', 'libvirt-oracle')
EXAMPLES = os.path.join(SHARED, 'tools', 'libvirt-oracle-examples', 'networks')

DUAL_STACK_XML = '''<network>
  <name>oracle-dual</name>
  <forward mode='nat'/>
  <bridge name='virbr5' stp='on' delay='0'/>
  <ip address='192.168.155.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.155.2' end='192.168.155.254'/></dhcp>
  </ip>
  <ip family='ipv6' address='fd00:db8:155::1' prefix='64'/>
</network>
'''

ROUTED_DUAL_XML = '''<network>
  <name>oracle-routed6</name>
  <forward mode='route'/>
  <bridge name='virbr6' stp='on' delay='0'/>
  <ip address='192.168.156.1' prefix='24'/>
  <ip family='ipv6' address='fd00:db8:156::1' prefix='64'>
    <dhcp><range start='fd00:db8:156::10' end='fd00:db8:156::ff'/></dhcp>
  </ip>
</network>
'''

SNAT_XML = '''<network>
  <name>oracle-snat</name>
  <forward mode='nat'>
    <nat>
      <address start='198.51.100.10' end='198.51.100.20'/>
      <port start='20000' end='30000'/>
    </nat>
  </forward>
  <bridge name='virbr7' stp='on' delay='0'/>
  <ip address='192.168.157.1' netmask='255.255.255.0'>
    <tftp root='/tmp'/>
    <dhcp><range start='192.168.157.2' end='192.168.157.254'/></dhcp>
  </ip>
  <ip address='192.168.158.1' prefix='24'/>
</network>
'''

_CHAIN_COUNTERS = re.compile(r'\s*\[\d+:\d+\]\s*$')


def _oracle_skip_reason():
    if not os.path.isfile(ORACLE):
        return 'libvirt oracle not found at %s (../shared is absent)' % ORACLE
    return None


def _normalise(text):
    """The oracle's normalisation of a *-save dump, as {table: lines}."""
    tables = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        if line.startswith(':'):
            line = _CHAIN_COUNTERS.sub('', line)
        if line.startswith('*'):
            current = line[1:]
            tables[current] = []
        elif current is not None:
            tables[current].append(line.rstrip())
    return tables


def _sections(dump):
    out = {}
    name = None
    for line in dump.splitlines():
        if line.startswith('### '):
            name = line[4:].strip()
            out[name] = []
        elif name is not None:
            out[name].append(line)
    return out


def _oracle_dump(xml_path):
    ns = 'hnf-%d-or-%s' % (os.getpid(), uuid.uuid4().hex[:6])
    try:
        proc = subprocess.run([ORACLE, '--ns', ns, 'network', '--xml', xml_path], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=900, check=False)
    finally:
        subprocess.run([ORACLE, '--ns', ns, 'stop'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300, check=False)
    if proc.returncode != 0:
        pytest.skip('libvirt oracle could not run: %s' % proc.stderr.strip()[-500:])
    sections = _sections(proc.stdout)
    return {tool: _normalise('\n'.join(sections.get(tool + '-save', []))) for tool in ('iptables', 'ip6tables')}


def _our_dump(xml_path, state_dir):
    with open(xml_path) as handle:
        xml = handle.read()
    with Netns(tag='ours') as ns:
        result = run_module(ns, xml=xml, firewall_backend='iptables', state_dir=state_dir)
        assert result['changed'] is True
        return {tool: _normalise(ns.run([tool + '-save']).stdout) for tool in ('iptables', 'ip6tables')}


def _cases(tmp_dir):
    cases = [(name, os.path.join(EXAMPLES, name + '.xml')) for name in ('nat', 'routed', 'isolated')]
    for name, text in (('nat-ipv4-ipv6', DUAL_STACK_XML), ('routed-ipv4-ipv6', ROUTED_DUAL_XML),
                       ('snat-ports-tftp', SNAT_XML)):
        path = os.path.join(tmp_dir, name + '.xml')
        with open(path, 'w') as handle:
            handle.write(text)
        cases.append((name, path))
    return cases


@pytest.mark.parametrize('case', ['nat', 'routed', 'isolated', 'nat-ipv4-ipv6', 'routed-ipv4-ipv6',
                                  'snat-ports-tftp'])
def test_same_rules_as_live_libvirt(case, tmp_path):
    require_kernel()
    reason = _oracle_skip_reason()
    if reason:
        pytest.skip(reason)
    xml_path = dict(_cases(str(tmp_path)))[case]
    theirs = _oracle_dump(xml_path)
    ours = _our_dump(xml_path, str(tmp_path / 'state'))
    assert any('LIBVIRT_FWX' in line for line in theirs['iptables']['filter'])
    assert ours == theirs
