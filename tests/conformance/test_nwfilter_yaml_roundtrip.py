# -*- coding: utf-8 -*-
"""The YAML form (nwfilter ``rules``) against the XML form, filter by filter.

For every filter of libvirt's test vectors (nwfilterxml2firewalldata and
nwfilterxml2xmlin, read from ../shared/reference), of the corpus
(../shared/reference/corpus) and the built-ins: XML -> canonical -> the YAML
form ``gathered`` returns -> defined again from that YAML gives byte-identical
canonical XML and the same model (hence the same compiled rules; the vectors
are compiled too). Then YAML-defined filters bound on a throwaway hypervisor
give the same kernel dump as their XML twins.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import pytest
from lxml import etree

from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.format import format_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import (
    FilterRef, Rule, parse_filter)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.yaml_form import (
    filter_from_options, filter_to_options)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'corpus'))
import libvirt_vectors as V  # noqa: E402  pylint: disable=wrong-import-position
import corpus_lib  # noqa: E402  pylint: disable=wrong-import-position

XML2XML = os.path.join(V.LIBVIRT, 'tests', 'nwfilterxml2xmlin')


def _xml_files(directory):
    found = []
    for base, _dirs, files in os.walk(directory):
        for name in sorted(files):
            if name.endswith('.xml'):
                found.append(os.path.join(base, name))
    return sorted(found)


def _filter_documents():
    """(label, XML text) of every <filter> document of the vectors and the corpus."""
    docs = []
    for label, directory in (('vectors', V.NWFILTER_VECTORS), ('xml2xml', XML2XML), ('corpus', corpus_lib.CORPUS)):
        if not os.path.isdir(directory):
            continue
        for path in _xml_files(directory):
            text = corpus_lib.read(path)
            try:
                root = etree.fromstring(text.encode('utf-8'))
            except etree.XMLSyntaxError:
                continue  # not well-formed: no filter to convert
            if root.tag == 'filter':
                docs.append(('%s:%s' % (label, os.path.relpath(path, directory)), text))
    return docs


def _reference_missing():
    missing = V.reference_missing_reason()
    if missing:
        return missing
    return corpus_lib.corpus_missing_reason()


def _without_lines(nwfilter):
    """The model without source line numbers (the only thing that depends on the text's layout)."""
    entries = tuple(dataclasses.replace(e, line=None) for e in nwfilter.entries)
    return dataclasses.replace(nwfilter, entries=entries)


def _round_trip(nwfilter):
    """(canonical, YAML form, canonical from the YAML form, model from the canonical, model from the YAML)."""
    canonical = format_filter(nwfilter)
    stored = parse_filter(canonical, source='canonical')
    options = filter_to_options(stored)
    again = filter_from_options(options, strict=True)
    return canonical, options, format_filter(again), stored, again


def test_builtins_round_trip_through_yaml():
    for name, text in sorted(BUILTIN_FILTERS.items()):
        canonical, options, back, stored, again = _round_trip(parse_filter(text))
        assert back == canonical, (name, options)
        assert _without_lines(again) == _without_lines(stored), name


def test_vectors_and_corpus_round_trip_through_yaml():
    reason = _reference_missing()
    if reason:
        pytest.skip(reason)
    documents = _filter_documents()
    checked = refused = 0
    for label, text in documents:
        try:
            nwfilter = parse_filter(text, source=label, strict=False)
        except NetfilterError:
            refused += 1  # a negative vector: libvirt refuses it too (checked by the xml2xml suite)
            continue
        canonical, options, back, stored, again = _round_trip(nwfilter)
        assert back == canonical, '%s\nYAML: %r\n--- canonical\n%s--- from YAML\n%s' % (label, options, canonical, back)
        assert _without_lines(again) == _without_lines(stored), label
        checked += 1
    sys.stderr.write('\nYAML round trip: %d filters byte-identical (%d negative documents skipped)\n'
                     % (checked, refused))
    assert checked >= 100, 'expected the vectors and the corpus, found %d filters' % checked


def test_vectors_compile_identically_from_yaml():
    reason = V.reference_missing_reason()
    if reason:
        pytest.skip(reason)
    builtins = dict((n, parse_filter(t)) for n, t in BUILTIN_FILTERS.items())
    compiled = 0
    for path in _xml_files(V.NWFILTER_VECTORS):
        xml_twin = parse_filter(format_filter(parse_filter(corpus_lib.read(path), strict=False)))
        yaml_twin = filter_from_options(filter_to_options(xml_twin))
        try:
            expected = compile_binding(V.HARNESS_INTERFACE, None, xml_twin.name, V.HARNESS_VARIABLES,
                                       dict(builtins, **{xml_twin.name: xml_twin}))
        except NetfilterError as exc:
            with pytest.raises(NetfilterError) as again:
                compile_binding(V.HARNESS_INTERFACE, None, yaml_twin.name, V.HARNESS_VARIABLES,
                                dict(builtins, **{yaml_twin.name: yaml_twin}))
            assert str(again.value) == str(exc)
            continue
        assert compile_binding(V.HARNESS_INTERFACE, None, yaml_twin.name, V.HARNESS_VARIABLES,
                               dict(builtins, **{yaml_twin.name: yaml_twin})) == expected, path
        compiled += 1
    assert compiled >= 30


# Variables for the built-ins beyond MAC and IP/IPV6 (as tests/differential/test_diff_builtins.py).
EXTRA = {
    'allow-dhcp-server': {'DHCPSERVER': ['10.0.0.1', '10.0.0.2']},
    'allow-dhcpv6-server': {'DHCPSERVER': ['fd00::1', 'fd00::2']},
    'clean-traffic-gateway': {'GATEWAY_MAC': '52:54:00:00:00:fe'},
    'clean-traffic': {'IP': ['192.0.2.10', '192.0.2.100']},
}


def _ruleset(filters, guests):
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets
    rulesets = []
    for index, name in enumerate(sorted(BUILTIN_FILTERS)):
        params = {'IP': '192.0.2.%d' % (10 + index), 'IPV6': '2001:db8:4e7::%x' % (10 + index)}
        params.update(EXTRA.get(name, {}))
        port = guests[index].port if index < len(guests) else 'yv%02d' % index
        mac = guests[index].mac if index < len(guests) else '52:54:00:4f:00:%02x' % index
        rulesets.append(compile_binding(port, mac, name, params, filters))
    return merge_rulesets(rulesets)


def _kernel_dump(filters):
    from ansible_collections.hypervisor.netfilter.tests.lib.netns import ThrowawayHypervisor
    with ThrowawayHypervisor(guests=2) as hypervisor:
        corpus_lib.load_ruleset(hypervisor.host, _ruleset(filters, hypervisor.guests))
        dump = []
        for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save'):
            out = hypervisor.host.run([tool]).stdout
            dump.append('### ' + tool)
            dump.extend(line for line in out.splitlines() if not line.startswith('#'))
        return '\n'.join(dump) + '\n'


def test_yaml_defined_builtins_give_the_same_kernel_dump_as_their_xml_twins():
    reason = corpus_lib.kernel_skip_reason()
    if reason:
        pytest.skip(reason)
    xml_twins = dict((n, parse_filter(t)) for n, t in BUILTIN_FILTERS.items())
    yaml_twins = dict((n, filter_from_options(filter_to_options(f))) for n, f in xml_twins.items())
    # the YAML twins really are separate objects built from the options, not the parsed XML
    assert all(isinstance(e, (Rule, FilterRef)) for f in yaml_twins.values() for e in f.entries)
    xml_dump = _kernel_dump(xml_twins)
    assert '-A ' in xml_dump and 'libvirt-I-vnet0' in xml_dump
    assert _kernel_dump(yaml_twins) == xml_dump
