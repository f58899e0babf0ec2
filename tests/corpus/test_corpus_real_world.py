# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters real projects generate: OpenStack nova (two eras), oVirt vdsm, the
cbugk homelab set and puppet-cirrax. None of them publishes expected rules, so:

* every ``<filter>`` must parse (strict where possible; which ones need
  ``strict=False`` and why is printed and documented in docs/corpus.md);
* nova's deliberately broken ``nova-provider-rules.INVALID.xml`` must be
  rejected in both modes, naming the XML problem;
* each deployment scenario (the filter tree and the binding the project's
  code creates) must resolve, compile, and load into a fresh namespace with
  ``*-restore`` in the real kernel; hand-derivable facts are asserted;
* against a live libvirt (``tests/differential/oracle.py``, same skip logic as
  the differential suite: root, ``../shared/tools/libvirt-oracle``, a
  startable libvirtd), the dumps of both sides are compared per interface.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import sys
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import (
    BindingError, FilterError, ResolveError)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets
from ansible_collections.hypervisor.netfilter.tests.corpus.corpus_lib import (
    REPO, builtin_filters, corpus_missing_reason, corpus_path, kernel_skip_reason, load_ruleset, read)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns

ENGINE_ERRORS = (FilterError, ResolveError, BindingError)
PARTS = ('openstack-nova', 'ovirt-vdsm', 'cbugk-libvirt-nwfilters', 'puppet-cirrax-libvirt')
INVALID = os.path.join('openstack-nova', 'diablo', 'nova-provider-rules.INVALID.xml')


def _skip_if_absent(capsys, kernel=False):
    reason = corpus_missing_reason()
    for part in PARTS:
        reason = reason or corpus_missing_reason(part)
    if not reason and kernel:
        reason = kernel_skip_reason()
    if reason:
        with capsys.disabled():
            print('\ncorpus real-world skipped: %s' % reason)
        pytest.skip(reason)


def filter_files():
    """Corpus-relative paths of every file whose root element is <filter>."""
    found = []
    for part in PARTS:
        for folder, _dirs, files in os.walk(corpus_path(part)):
            for name in files:
                if not name.endswith('.xml'):
                    continue
                path = os.path.join(folder, name)
                if re.search(r'^\s*(<!--.*?-->\s*)*<filter[\s>]', read(path), re.S):
                    found.append(os.path.relpath(path, corpus_path()))
    return sorted(found)


def _parse(rel, strict=True):
    return parse_filter(read(corpus_path(rel)), source=rel, strict=strict)


def _parse_as_libvirt_would(rel):
    """strict, else libvirt-compatible (what libvirt itself accepts)."""
    try:
        return _parse(rel, strict=True)
    except FilterError:
        return _parse(rel, strict=False)


# --------------------------------------------------------------------------- scenarios


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A filter tree as a project deploys it, and the bindings it creates."""
    name: str
    files: tuple  # corpus-relative filter files defined for this scenario
    bindings: tuple  # (interface, mac, filter, parameters)


def _filterref_params(element):
    params = {}
    for param in element.findall('parameter'):
        key, value = param.get('name'), param.get('value')
        if key in params:
            previous = params[key]
            params[key] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            params[key] = value
    return params


def _interface_binding(rel, ifname):
    """(ifname, mac, filter, params) of a domain <interface> snippet. libvirt
    reads only the FIRST <filterref> of an interface (virXPathNode), so do we."""
    root = ET.fromstring(read(corpus_path(rel)))
    ref = root.find('filterref')
    target = root.find('target')
    return (target.get('dev') if target is not None else ifname, root.find('mac').get('address'),
            ref.get('filter'), _filterref_params(ref))


def _cbugk_template_params():
    ref = ET.fromstring(read(corpus_path('cbugk-libvirt-nwfilters', 'filterref-template.xml')))
    return ref.get('filter'), _filterref_params(ref)


def _cbugk_port_params(direction, action):
    prefix = 'PORT_%s_%s_' % (direction.upper(), action.upper())
    return {prefix + 'IP': ['10.20.30.1', '10.20.30.2'], prefix + 'START': ['22', '8000'],
            prefix + 'END': ['22', '8080']}


NOVA_D = 'openstack-nova/diablo/'
NOVA_S = 'openstack-nova/stein/'
CBUGK = 'cbugk-libvirt-nwfilters/nwfilters/'
DIABLO_FILES = tuple(NOVA_D + n for n in (
    'nova-allow-dhcp-server.xml', 'nova-allow-ra-server.xml', 'nova-base-ipv4.xml', 'nova-base-ipv6.xml',
    'nova-base.xml', 'nova-instance-instance-00000001-02163e4c2d11.xml',
    'nova-instance-instance-00000001-secgroup.xml', 'nova-project-v6.xml', 'nova-project.xml',
    'nova-provider-rules-empty.xml', 'nova-secgroup-7.xml', 'nova-secgroup-8-ipv4only.xml', 'nova-vpn.xml'))
# What diablo's firewall driver put on the instance's <filterref>.
DIABLO_PARAMS = {'IP': '10.0.0.5', 'DHCPSERVER': '10.0.0.1', 'PROJNET': '10.0.0.0', 'PROJMASK': '255.255.255.0',
                 'PROJNETV6': '2001:db8:0:1::', 'PROJMASKV6': '64', 'RASERVER': '2001:db8:0:1::1'}


def scenarios():
    cbugk_filter, cbugk_params = _cbugk_template_params()
    cbugk_files = tuple(CBUGK + n for n in sorted(os.listdir(corpus_path(CBUGK))) if n.endswith('.xml'))
    port_bindings = []
    for index, name in enumerate(sorted(n for n in os.listdir(corpus_path(CBUGK)) if n.startswith('nwfilter-port-')
                                        and n.endswith('.xml'))):
        direction, action = name[:-4].split('-')[2:]
        port_bindings.append(('cbp%d' % index, '52:54:00:cb:00:%02x' % (index + 16), 'port-%s-%s' % (direction, action),
                              _cbugk_port_params(direction, action)))
    return [
        Scenario('nova-stein', tuple(NOVA_S + n for n in sorted(os.listdir(corpus_path(NOVA_S))) if n.endswith('.xml')),
                 (('tap4c2d11', 'fa:16:3e:4c:2d:11', 'nova-instance-instance-00000001-fa163e4c2d11', {}),
                  ('tap4c2d22', 'fa:16:3e:4c:2d:22', 'nova-instance-instance-00000002-fa163e4c2d22', {}))),
        Scenario('nova-diablo', DIABLO_FILES,
                 (('vnet0', '02:16:3e:4c:2d:11', 'nova-instance-instance-00000001-02163e4c2d11', DIABLO_PARAMS),
                  ('vnet1', '02:16:3e:4c:2d:12', 'nova-vpn', {'DHCPSERVER': '10.0.0.1'}),
                  ('vnet2', '02:16:3e:4c:2d:13', 'nova-secgroup-8', {}))),
        Scenario('ovirt-no-mac-spoofing', ('ovirt-vdsm/vdsm-no-mac-spoofing.xml',),
                 (_interface_binding('ovirt-vdsm/interface-vdsm-no-mac-spoofing.domain-snippet.xml', 'vnet0'),)),
        Scenario('ovirt-no-mac-spoofing-uuid', ('ovirt-vdsm/vdsm-no-mac-spoofing.with-uuid.xml',),
                 (('vnet0', '00:1a:4a:16:01:50', 'vdsm-no-mac-spoofing', {}),)),
        Scenario('ovirt-isolatedprivatevlan', ('ovirt-vdsm/isolatedprivatevlan-hook/isolatedprivatevlan-vdsm.xml',),
                 (_interface_binding('ovirt-vdsm/isolatedprivatevlan-hook/interface-after-hook.snippet.xml', 'vnet1'),
                  _interface_binding('ovirt-vdsm/isolatedprivatevlan-hook/interface-gateway-only.snippet.xml',
                                     'vnet2')[:1] + ('00:1a:4a:16:01:52',)
                  + _interface_binding('ovirt-vdsm/isolatedprivatevlan-hook/interface-gateway-only.snippet.xml',
                                       'vnet2')[2:])),
        Scenario('cbugk-homelab', cbugk_files,
                 (('cbh0', '52:54:00:cb:00:01', cbugk_filter, cbugk_params),) + tuple(port_bindings)),
        Scenario('puppet-cirrax', ('puppet-cirrax-libvirt/simple-template.rendered.xml',),
                 (('vnet0', '52:54:00:c1:00:01', 'puppet-web01', {}),)),
    ]


def _scenario_filters(scenario):
    filters = builtin_filters()
    for rel in scenario.files:
        flt = _parse_as_libvirt_would(rel)
        filters[flt.name] = flt
    return filters


def compile_scenario(scenario):
    filters = _scenario_filters(scenario)
    return merge_rulesets([compile_binding(iface, mac, name, params, filters)
                           for iface, mac, name, params in scenario.bindings])


def _rules(ruleset, family, chain):
    for table in ruleset.tables:
        if table.family == family:
            for candidate in table.chains:
                if candidate.name == chain:
                    return [' '.join(rule) for rule in candidate.rules]
    return []


# Facts that follow from the inputs by hand (the corpus SOURCE.txt notes).
def _check_nova_stein(ruleset):
    ip_rules = _rules(ruleset, 'eb', 'I-tap4c2d11-ipv4-ip')
    # IP is a 2-valued list: one RETURN per address
    for address in ('10.0.0.5', '10.0.0.6'):
        assert len([r for r in ip_rules if '--ip-source %s ' % address in r and r.endswith('-j RETURN')]) == 1, ip_rules
    # nova-no-nd-reflection uses $MAC, set implicitly from the interface
    ipv6 = _rules(ruleset, 'eb', 'O-tap4c2d22-ipv6')  # direction in = towards the guest
    assert any('fa:16:3e:4c:2d:22' in r and '33:33:00:00:00:00' in r for r in ipv6), ipv6


def _address_pairs(rules, option, target):
    pairs = []
    for rule in rules:
        match = re.search(r'%s (\S+)/(\S+) .*-j %s$' % (option, target), rule)
        if match:
            pairs.append(match.groups())
    return pairs


def _check_cbugk(ruleset):
    fi = _rules(ruleset, 'ip', 'FI-cbh0')
    # subnet-reject: $SUBNET_REJECT_IP[@1] / $SUBNET_REJECT_MASK[@1] share iterator 1:
    # the three (ip, mask) pairs are zipped, never crossed. Each of its two rules
    # (in: srcipaddr, out: dstipaddr) also yields the reverse rule, so FI holds
    # every pair twice (libvirt's layout, see the 39 conformance vectors).
    zipped = [('10.0.0.0', '255.0.0.0'), ('172.16.0.0', '255.240.0.0'), ('192.168.0.0', '255.255.0.0')]
    assert _address_pairs(fi, '--destination', 'REJECT') == zipped * 2, fi
    drops = [('192.168.100.0', '255.255.255.0'), ('192.168.200.0', '255.255.255.0')]
    assert _address_pairs(fi, '--destination', 'DROP') == drops * 2, fi
    # port-out-reject: 1 IP (@1) x 2 ranges (@2 zips START/END) = 2 tcp + 2 udp
    ports = [r for r in fi if '--destination 10.20.30.1 ' in r and r.endswith('REJECT')]
    assert sorted(re.search(r'-p (\w+) .*--dport (\S+)', r).groups() for r in ports) == [
        ('tcp', '0:1023'), ('tcp', '9090:9090'), ('udp', '0:1023'), ('udp', '9090:9090')], ports


def _check_isolatedprivatevlan(ruleset):
    # negated dstmacaddr in the ipv4 chain of the gateway-only binding
    rules = _rules(ruleset, 'eb', 'O-vnet2-ipv4') + _rules(ruleset, 'eb', 'I-vnet2-ipv4')
    assert any('aa:bb:cc:dd:ee:ff' in r and '!' in r and r.endswith('DROP') for r in rules), rules


HAND_CHECKS = {'nova-stein': _check_nova_stein, 'cbugk-homelab': _check_cbugk,
               'ovirt-isolatedprivatevlan': _check_isolatedprivatevlan}


# --------------------------------------------------------------------------- tests


def test_every_filter_parses(capsys):
    _skip_if_absent(capsys)
    files = filter_files()
    strict_ok, lenient, failed = [], {}, {}
    for rel in files:
        if rel == INVALID:
            continue
        try:
            _parse(rel, strict=True)
            strict_ok.append(rel)
        except FilterError as exc:
            try:
                _parse(rel, strict=False)
                lenient[rel] = str(exc)
            except FilterError as exc2:
                failed[rel] = str(exc2)
    total = len(files) - 1
    with capsys.disabled():
        print('\ncorpus real-world parse: %d/%d strict, %d more only with strict=False, %d rejected'
              % (len(strict_ok), total, len(lenient), len(failed)))
        for rel, error in sorted(lenient.items()):
            print('  strict=False needed: %s: %s' % (rel, error))
        for rel, error in sorted(failed.items()):
            print('MISMATCH %s: %s' % (rel, error))
    assert not failed


@pytest.mark.parametrize('strict', [True, False], ids=['strict', 'libvirt-compatible'])
def test_invalid_nova_provider_rules_rejected(capsys, strict):
    _skip_if_absent(capsys)
    with pytest.raises(FilterError) as info:
        _parse(INVALID, strict=strict)
    text = str(info.value)
    # not well-formed (the tcp element is never closed): the error must say so and where
    assert 'nova-provider-rules.INVALID.xml' in text and re.search(r'line \d+', text), text
    assert re.search(r'well-formed|XML|attributes construct|not closed|parse', text, re.I), text


def test_cbugk_commented_out_filterrefs_need_their_variables(capsys):
    """The author had to comment out the port filterrefs whose variables the
    template does not supply: libvirt refuses such a tree, and so must we,
    naming the variables."""
    _skip_if_absent(capsys)
    text = read(corpus_path(CBUGK, 'nwfilter-homelab-isolation.xml'))
    enabled = re.sub(r"<!--\s*(<filterref filter='port-in-reject'[^>]*/>)\s*-->", r'\1', text)
    assert enabled != text
    filters = _scenario_filters([s for s in scenarios() if s.name == 'cbugk-homelab'][0])
    # libvirt ignores the priority attribute the author put on these filterrefs
    filters['homelab-isolation'] = parse_filter(enabled, source='homelab-isolation (port-in-reject enabled)',
                                                strict=False)
    filter_name, params = _cbugk_template_params()
    with pytest.raises(ResolveError) as info:
        compile_binding('cbh0', '52:54:00:cb:00:01', filter_name, params, filters)
    assert 'PORT_IN_REJECT_IP' in str(info.value), str(info.value)


def test_scenarios_compile_and_load(capsys):
    _skip_if_absent(capsys, kernel=True)
    results = {}
    for scenario in scenarios():
        try:
            ruleset = compile_scenario(scenario)
            check = HAND_CHECKS.get(scenario.name)
            if check:
                check(ruleset)
            with Netns(tag='rw') as ns:
                load_ruleset(ns, ruleset)
                dumped = ns.run(['ebtables-save']).stdout + ns.run(['iptables-save']).stdout
            for iface, _mac, _name, _params in scenario.bindings:
                assert iface in dumped, '%s: no rules for %s in the kernel' % (scenario.name, iface)
            results[scenario.name] = None
        except (AssertionError,) + ENGINE_ERRORS as exc:
            results[scenario.name] = '%s: %s' % (type(exc).__name__, exc)
    failures = dict((k, v) for k, v in results.items() if v)
    with capsys.disabled():
        print('\ncorpus real-world scenarios: %d/%d compile and load (%d bindings)'
              % (len(results) - len(failures), len(results), sum(len(s.bindings) for s in scenarios())))
        for name, text in sorted(failures.items()):
            print('MISMATCH %s: %s' % (name, text))
    assert not failures


# --------------------------------------------------------------------------- live libvirt


def _load_oracle_harness():
    """tests/differential/oracle.py, loaded from its real path: it finds
    ../shared relative to its own file, which the collection symlink would hide."""
    path = os.path.join(REPO, 'tests', 'differential', 'oracle.py')
    spec = importlib.util.spec_from_file_location('hnf_corpus_oracle', path)
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def libvirt_oracle():
    harness = _load_oracle_harness()
    reason = corpus_missing_reason() or harness.unavailable_reason()
    if reason:
        pytest.skip(reason)
    instance = harness.LibvirtOracle(ns=harness.unique_name('hnfcorp'))
    try:
        instance.start()
    except harness.OracleUnavailable as exc:
        pytest.skip(str(exc))
    yield harness, instance
    instance.stop()


@pytest.mark.libvirt_oracle
@pytest.mark.parametrize('name', [
    'nova-stein', 'nova-diablo', 'ovirt-no-mac-spoofing', 'ovirt-no-mac-spoofing-uuid',
    'ovirt-isolatedprivatevlan', 'cbugk-homelab', 'puppet-cirrax'])
def test_scenario_matches_libvirt(libvirt_oracle, name):  # pylint: disable=redefined-outer-name
    harness, oracle = libvirt_oracle
    scenario = [s for s in scenarios() if s.name == name][0]
    texts = {}
    for rel in scenario.files:
        texts[_parse_as_libvirt_would(rel).name] = read(corpus_path(rel))
    bindings = [harness.Binding.make(iface, mac, fname, params) for iface, mac, fname, params in scenario.bindings]
    # harness.compare parses strictly; some corpus filters need strict=False, so
    # compile here and hand our ruleset to the same load/dump/normalise steps.
    priorities = harness.chain_priorities(harness.all_filter_texts(texts))
    theirs = harness.normalise(oracle.dump(texts, bindings), priorities)
    ours = harness.normalise(harness.our_dump(texts, bindings, ruleset=compile_scenario(scenario)), priorities)
    comparison = harness.Comparison(theirs, ours, tuple(b.interface for b in bindings))
    assert any(line.startswith('-A') for line in comparison.libvirt.splitlines()), 'libvirt made no rules'
    diffs = comparison.interface_diffs()
    assert not diffs, '\n'.join('%s:\n%s' % (k, v) for k, v in diffs.items())


# What live libvirt does for the inputs behind FINDINGS.md F1 and F2 (the
# findings' "libvirt does X" statements are measured here, not remembered).
_VLAN_4095 = ("<filter name='hnf-vlan4095' chain='vlan'><rule action='accept' direction='out'>"
              "<vlan vlanid='0xfff'/></rule></filter>")
LIBVIRT_FINDING_CASES = {
    # F2: libvirt accepts the filter, then fails applying it with ebtables' message
    'F2-vlanid-4095': ({'hnf-vlan4095': _VLAN_4095}, ('fv0', '52:54:00:f0:00:01', 'hnf-vlan4095', {}),
                       r"Invalid --vlan-id range \('4095'\)"),
    # F1: without IP, libvirt names the learning value ...
    'F1-learning-invalid-no-ip': ({}, ('fv1', '52:54:00:f0:00:02', 'clean-traffic', {'CTRL_IP_LEARNING': 'invalid'}),
                                  r"learning value 'invalid' invalid"),
    # ... and with IP it ignores the variable
    'F1-learning-invalid-with-ip': ({}, ('fv2', '52:54:00:f0:00:03', 'clean-traffic',
                                         {'CTRL_IP_LEARNING': 'invalid', 'IP': '10.0.0.1'}), None),
}


@pytest.mark.libvirt_oracle
@pytest.mark.parametrize('case', sorted(LIBVIRT_FINDING_CASES))
def test_libvirt_behaviour_behind_findings(libvirt_oracle, case):  # pylint: disable=redefined-outer-name
    harness, oracle = libvirt_oracle
    filters, (iface, mac, fname, params), rejection = LIBVIRT_FINDING_CASES[case]
    binding = harness.Binding.make(iface, mac, fname, params)
    if rejection is None:
        dump = oracle.dump(filters, [binding])
        assert '-A PREROUTING -i %s -j libvirt-I-%s' % (iface, iface) in dump
    else:
        with pytest.raises(harness.LibvirtRejected, match=rejection):
            oracle.dump(filters, [binding])
