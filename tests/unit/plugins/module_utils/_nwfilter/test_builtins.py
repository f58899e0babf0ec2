# -*- coding: utf-8 -*-
"""The built-in filters: well formed, named by their keys, fixed UUIDs, and the
same filters as libvirt's own (compared as parsed models, so our comments,
attribute order and spelling may differ but nothing that compiles may)."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import uuid
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS

try:
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
except ImportError as exc:  # the parser is developed in parallel
    parse_filter = None
    _PARSER_MISSING = 'nwfilter_parse.parse_filter is not importable: %s' % exc
else:
    _PARSER_MISSING = ''

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '..'))
REFERENCE_DIR = os.path.join(_REPO, '..', 'shared', 'reference', 'libvirt-11.3.0', 'default-filters')

# The names libvirt ships, and the UUIDs we gave them. A UUID must never change:
# hosts compare it to decide whether a filter needs redefining.
PINNED_UUIDS = {
    'allow-arp': 'ade76cfb-f537-4f70-8ca5-fc5d2de3a481',
    'allow-dhcp': 'c9608319-02ae-4ac6-890a-331214c9f6d2',
    'allow-dhcp-server': '7c452d39-71e2-41d1-a5ae-c8af92e3f9f8',
    'allow-dhcpv6': '140d5064-5980-4da3-98dd-363c58a28bf4',
    'allow-dhcpv6-server': 'f5502d9b-893c-4f5b-a480-f50d2ed1945d',
    'allow-incoming-ipv4': 'a254ac27-64d2-4b0e-ae34-7c9fdc9f9a3f',
    'allow-incoming-ipv6': '4abbb17a-c202-4ac6-9fc0-995c16b477b0',
    'allow-ipv4': '79b76570-6d18-4c35-b0e6-c7e5e89b64ca',
    'allow-ipv6': '3c392f28-48c2-4c3b-be8a-7802a9f58a02',
    'clean-traffic': 'c09e36b9-168c-4ab5-9a15-468069498400',
    'clean-traffic-gateway': 'ad239443-b6c0-42e1-8044-81cb9560c2ff',
    'no-arp-ip-spoofing': 'a14120d9-4936-4356-a3c6-8fe11755934d',
    'no-arp-mac-spoofing': '02ee5ccc-bb21-49c5-acc1-3ac7a1cf27c6',
    'no-arp-spoofing': 'cab970fb-f318-4245-b3fd-f5e6a47fd3fe',
    'no-ip-multicast': 'f2fe1213-a560-4a2f-973e-bcd0a65c2288',
    'no-ip-spoofing': 'f587253e-fb00-4c36-a812-f681d72b1a81',
    'no-ipv6-multicast': '44708076-fd2a-4997-941e-fc2d37ddaf69',
    'no-ipv6-spoofing': 'b6be8b3f-ec84-4297-b058-0a985b39f3cd',
    'no-mac-broadcast': 'b6b3bcf9-dd8c-4834-b8ea-d465e3970738',
    'no-mac-spoofing': '0dcc8d15-2afc-4d3a-9e81-dd82a98a818a',
    'no-other-l2-traffic': '673cb490-f952-450e-951f-4dce0a9683e7',
    'no-other-rarp-traffic': '84c4592d-89c9-4b25-a306-99f53591f1c3',
    'qemu-announce-self': '2b3e148a-3ed0-4693-968c-25392fcf4a0c',
    'qemu-announce-self-rarp': '7128632d-a6e2-4ccf-99f8-5a2b1e87ddb0',
}

NAMES = sorted(PINNED_UUIDS)
needs_parser = pytest.mark.skipif(parse_filter is None, reason=_PARSER_MISSING)

# Default chain priority by chain-name prefix (libvirt's code, including stp = 0).
_CHAIN_DEFAULTS = (('root', 0), ('mac', -800), ('vlan', -750), ('stp', 0), ('arp', -500),
                   ('rarp', -400), ('ipv4', -700), ('ipv6', -600))


def _reference_xml(name):
    path = os.path.join(REFERENCE_DIR, name + '.xml')
    if not os.path.isfile(path):
        pytest.skip('libvirt reference filters not found at %s (needs ../shared next to the '
                    'repository)' % os.path.normpath(REFERENCE_DIR))
    with open(path) as handle:
        return handle.read()


def test_exactly_the_24_libvirt_names():
    assert sorted(BUILTIN_FILTERS) == NAMES
    assert len(NAMES) == 24
    assert all(isinstance(text, str) for text in BUILTIN_FILTERS.values())


@pytest.mark.parametrize('name', NAMES)
def test_root_element_names_its_key(name):
    root = ET.fromstring(BUILTIN_FILTERS[name])
    assert root.tag == 'filter'
    assert root.get('name') == name


@pytest.mark.parametrize('name', NAMES)
def test_uuid_is_pinned(name):
    root = ET.fromstring(BUILTIN_FILTERS[name])
    text = root.findtext('uuid')
    assert text == PINNED_UUIDS[name]
    assert str(uuid.UUID(text)) == text


def test_uuids_unique():
    uuids = [ET.fromstring(x).findtext('uuid') for x in BUILTIN_FILTERS.values()]
    assert len(set(uuids)) == len(uuids)


def test_references_stay_inside_the_builtins_and_form_a_dag():
    refs = {}
    for name, text in BUILTIN_FILTERS.items():
        refs[name] = [ref.get('filter') for ref in ET.fromstring(text).iter('filterref')]
        assert set(refs[name]) <= set(BUILTIN_FILTERS), name

    def walk(name, path):
        assert name not in path, 'loop: %s' % ' -> '.join(path + (name,))
        for child in refs[name]:
            walk(child, path + (name,))

    for name in refs:
        walk(name, ())


def _canon_value(text):
    """Spelling-independent form of an attribute value, enough for the values
    the built-ins use: IPv6 addresses and MACs in their printed form."""
    if text.startswith('$'):
        return text
    if ':' in text and re.match(r'^[0-9A-Fa-f:.]+$', text) and not re.match(r'^([0-9A-Fa-f]{1,2}:){5}[0-9A-Fa-f]{1,2}$', text):
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
    return text.lower()


def _structure(text):
    """An independent, parser-free view of a filter: what compiles, in order."""
    root = ET.fromstring(text)
    chain = root.get('chain')
    priority = 0
    if chain is not None:
        for prefix, default in _CHAIN_DEFAULTS:
            if chain.startswith(prefix):
                priority = int(root.get('priority', default))
                break
    entries = []
    for child in root:
        if child.tag == 'filterref':
            params = sorted((p.get('name'), p.get('value')) for p in child.findall('parameter'))
            entries.append(('ref', child.get('filter'), tuple(params)))
        elif child.tag == 'rule':
            protos = [(el.tag, el.get('match', 'yes') == 'no',
                       tuple(sorted((k, _canon_value(v)) for k, v in el.attrib.items() if k != 'match')))
                      for el in child]
            entries.append(('rule', child.get('action'), child.get('direction'),
                            int(child.get('priority', '500')), child.get('statematch', 'true'),
                            tuple(protos)))
    return (root.get('name'), chain or 'root', priority, tuple(entries))


@pytest.mark.parametrize('name', NAMES)
def test_same_structure_as_libvirt(name):
    assert _structure(BUILTIN_FILTERS[name]) == _structure(_reference_xml(name))


@needs_parser
@pytest.mark.parametrize('name', NAMES)
def test_parses_strictly(name):
    parsed = parse_filter(BUILTIN_FILTERS[name], source=name, strict=True)
    assert parsed.name == name
    assert str(parsed.uuid) == PINNED_UUIDS[name]
    assert isinstance(parsed.priority, int)
    assert parsed.entries


# Fields that say where or which a definition is, or how a value was spelled
# ('raw': we write IPv6 addresses in lower case; the normalised 'text' that
# rules and canonical XML use is still compared), not what it compiles to.
_IDENTITY_FIELDS = ('uuid', 'source', 'line', 'raw')


def _without_identity(item):
    """The parsed model with UUIDs and source positions blanked, recursively."""
    if isinstance(item, tuple):
        return tuple(_without_identity(x) for x in item)
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        changes = {}
        for field in dataclasses.fields(item):
            value = getattr(item, field.name)
            changes[field.name] = None if field.name in _IDENTITY_FIELDS else _without_identity(value)
        return dataclasses.replace(item, **changes)
    return item


@needs_parser
@pytest.mark.parametrize('name', NAMES)
def test_parsed_model_equals_libvirt_filter(name):
    reference = parse_filter(_reference_xml(name), source=name, strict=True)
    ours = parse_filter(BUILTIN_FILTERS[name], source=name, strict=True)
    assert _without_identity(ours) == _without_identity(reference)


@needs_parser
def test_parsed_chain_priorities():
    expected = {'no-mac-spoofing': ('mac', -800), 'no-ip-spoofing': ('ipv4-ip', -710),
                'no-arp-mac-spoofing': ('arp-mac', -520), 'no-arp-ip-spoofing': ('arp-ip', -510),
                'no-ipv6-spoofing': ('ipv6-ip', -610), 'qemu-announce-self-rarp': ('rarp', -400),
                'allow-dhcp': ('ipv4', -700), 'allow-dhcpv6': ('ipv6', -600),
                'allow-arp': ('arp', -500), 'clean-traffic': ('root', 0),
                'no-other-l2-traffic': ('root', 0)}
    for name, (chain, priority) in expected.items():
        parsed = parse_filter(BUILTIN_FILTERS[name], source=name, strict=True)
        assert (parsed.chain, parsed.priority) == (chain, priority), name
