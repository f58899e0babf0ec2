# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters written as Ansible data (the ``nwfilter`` module's ``rules`` form).

The YAML form is a dict of the module's own options::

    name: web-guest
    chain: root            # optional; as XML's chain attribute
    priority: -700         # optional; as XML's priority attribute
    uuid: 5d0e0a7c-...     # optional
    filterrefs:            # filterrefs before the first rule
      - {filter: clean-traffic, parameters: {IP: [10.0.0.5, 10.0.0.6]}}
    rules:
      - {action: accept, direction: in, priority: 100, tcp: {dstportstart: 443, state: NEW}}
      - {action: drop, direction: in, tcp: {match: false, srcipaddr: 192.0.2.0, srcipmask: 24}}
      - {action: accept, direction: out, ip: [{protocol: udp}, {match: false, dstipaddr: $DNS}]}
      - {filter: allow-dhcp}  # a filterref at this place among the rules
      - {action: drop, direction: inout, priority: 1000}  # no protocol: every frame

A rule holds at most one protocol key (the XML element name with ``_`` for
``-``, e.g. ``tcp_ipv6``; the dashed name works here but not in a module's options) whose value is the element's attributes, or a list of such
dicts for several elements of that protocol; ``match: false`` is XML's
``match='no'``. Values are strings, integers or booleans as YAML gives them.

One model, one validation: the form is turned into the ``<filter>`` document
it stands for and parsed by ``nwfilter_parse`` (schema, value checks,
libvirt's fix-ups), then errors are re-labelled with the YAML location
(``rules[3] (priority 100)``, key ``tcp.dstportstart``, value).
``filter_to_options`` is the inverse: the options that define the same
canonical filter.
"""

from __future__ import annotations

import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import protocols as P
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.format import format_value
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import (
    FilterRef, Rule, parse_filter_element, parse_xml_document)

try:
    from lxml import etree
except ImportError:  # parse_xml_document reports the missing library
    etree = None

RULE_KEYS = ('action', 'direction', 'priority', 'statematch')
FILTERREF_KEYS = ('filter', 'parameters')
FILTER_KEYS = ('name', 'chain', 'priority', 'uuid', 'filterrefs', 'rules')
# Option name of each protocol element: dashes become underscores (the XML name is an alias).
PROTOCOL_OPTIONS = dict((name.replace('-', '_'), name) for name in sorted(P.PROTOCOLS))
_ELEMENT_OF_KEY = dict(PROTOCOL_OPTIONS)
_ELEMENT_OF_KEY.update((name, name) for name in P.PROTOCOLS)
_NUMERIC = frozenset((P.UINT8, P.UINT16, P.UINT16_DEC, P.UINT32, P.IPV4MASK, P.IPV6MASK))
_XML_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_.-]*$')
_LINE = re.compile(r'\s*\(line (\d+)\)|,? ?line (\d+)')
_RULE_WHERE = re.compile(r'^rule #\d+ \((?:priority [^,]*, )?line (\d+)\)$')


# --------------------------------------------------------------------------
# Argument spec (the module validates what it can before the engine does)

def filterref_spec():
    return dict(
        filter=dict(type='str', required=True),
        parameters=dict(type='dict', default={}),
    )


def rule_spec():
    """Suboptions of one ``rules`` entry: a rule, or a filterref (``filter``)."""
    spec = dict(
        action=dict(type='str', choices=list(P.ACTIONS)),
        direction=dict(type='str', choices=list(P.DIRECTIONS)),
        priority=dict(type='int'),
        statematch=dict(type='bool'),
        filter=dict(type='str'),
        parameters=dict(type='dict'),
    )
    # Option names must be Python identifiers: tcp_ipv6 for <tcp-ipv6> (the library accepts both).
    for option in sorted(PROTOCOL_OPTIONS):
        spec[option] = dict(type='raw')
    return spec


def rule_spec_checks():
    """Cross-key checks of a ``rules`` entry (AnsibleModule suboption keywords)."""
    return dict(
        mutually_exclusive=[('filter', 'action'), ('filter', 'direction'), ('filter', 'priority'),
                            ('filter', 'statematch')] + [('filter', p) for p in sorted(PROTOCOL_OPTIONS)],
        required_one_of=[('filter', 'action')],
        required_together=[('action', 'direction')],
        required_by={'parameters': 'filter'},
    )


def argument_spec():
    """The options of the YAML form (``name`` excluded: the module has it)."""
    rules = dict(type='list', elements='dict', options=rule_spec())
    rules.update(rule_spec_checks())
    return dict(
        chain=dict(type='str'),
        priority=dict(type='int'),
        uuid=dict(type='str'),
        filterrefs=dict(type='list', elements='dict', options=filterref_spec()),
        rules=rules,
    )


# --------------------------------------------------------------------------
# Options -> Filter

class _Located:
    """Where each generated XML line came from in the YAML form."""

    def __init__(self):
        self.lines = []  # (first line, label, protocol option or None, is_filterref)

    def label_of_line(self, line):
        found = None
        for first, label, protocol, is_ref in self.lines:
            if first <= line:
                found = (label, protocol, is_ref)
        return found


def _fail(message, where=None, key=None, value=None, name=None, source=None):
    if key is not None:
        where = "%s, key '%s'" % (where, key) if where else "key '%s'" % key
    raise FilterError(message, filter_name=name, rule=where, value=value, source=source)


def _text(value, where, key, name, source, boolean=('true', 'false')):
    """Attribute text of a YAML scalar."""
    if isinstance(value, bool):
        return boolean[0] if value else boolean[1]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    if value is None:
        _fail('a value is required', where, key, value, name, source)
    _fail('must be a string, a number or a boolean, not %s' % type(value).__name__, where, key, value, name, source)


def _set(element, key, text, where, name, source, label=None):
    if not isinstance(key, str) or not _XML_NAME.match(key):
        _fail('not an attribute name', where, label or key, None, name, source)
    element.set(key, text)


def _attribute_name(protocol, key):
    """The attribute ``key`` stands for: the XML name, or the same with ``_`` for ``-``."""
    spec = P.protocol(protocol)
    if isinstance(key, str) and spec.attr(key) is None and spec.attr(key.replace('_', '-')) is not None:
        return key.replace('_', '-')
    return key


def _parameters(parent, parameters, where, name, source):
    if parameters is None:
        return
    if not isinstance(parameters, dict):
        _fail('parameters must be a dict of name: value (or list of values)', where, 'parameters', None, name,
              source)
    for param, values in parameters.items():
        for value in (values if isinstance(values, (list, tuple)) else [values]):
            text = _text(value, where, 'parameters.%s' % param, name, source)
            child = etree.SubElement(parent, 'parameter')
            child.set('name', str(param))
            child.set('value', text)


def _filterref(root, entry, where, name, source):
    if not isinstance(entry, dict):
        _fail('a filterref must be a dict with filter and parameters', where, None, None, name, source)
    for key in entry:
        if key not in FILTERREF_KEYS:
            _fail('unknown key in a filterref (allowed: filter, parameters)', where, key, None, name, source)
    ref = entry.get('filter')
    if not isinstance(ref, str) or not ref:
        _fail('filter must name the filter to reference', where, 'filter', ref, name, source)
    element = etree.SubElement(root, 'filterref')
    element.set('filter', ref)
    _parameters(element, entry.get('parameters'), where, name, source)
    return element


def _rule(root, entry, where, name, source, strict):
    element = etree.SubElement(root, 'rule')
    protocol_keys = []
    for key, value in entry.items():
        if key in RULE_KEYS:
            if value is None:
                continue  # an option Ansible filled in with its default (None)
            _set(element, key, _text(value, where, key, name, source), where, name, source)
        elif key in _ELEMENT_OF_KEY:
            if value is not None:
                protocol_keys.append(key)
        elif key in FILTERREF_KEYS:
            if value is not None:
                _fail('a rules entry is a rule (action, direction, ...) or a filterref (filter, parameters), '
                      'not both', where, key, None, name, source)
        elif strict:
            _fail('unknown key; a rule has action, direction, priority, statematch and one protocol (%s)'
                  % ', '.join(sorted(PROTOCOL_OPTIONS)), where, key, None, name, source)
    for key in protocol_keys:
        protocol = _ELEMENT_OF_KEY[key]
        elements = entry[key]
        if isinstance(elements, dict):
            elements = [elements]
        if not isinstance(elements, list) or not all(isinstance(e, dict) for e in elements):
            _fail('a protocol takes a dict of attributes (or a list of such dicts)', where, key, None, name, source)
        for attributes in elements:
            child = etree.SubElement(element, protocol)
            for attr, value in attributes.items():
                attr = _attribute_name(protocol, attr)
                label = '%s.%s' % (key, attr)
                if attr == 'match':
                    _set(child, attr, _text(value, where, label, name, source, ('yes', 'no')), where, name, source,
                         label)
                else:
                    _set(child, attr, _text(value, where, label, name, source), where, name, source, label)
    return element, (protocol_keys[0] if protocol_keys else None)


def options_to_document(options, strict=True, source=None):
    """The ``<filter>`` element the YAML form stands for, and where each line came from."""
    if etree is None:
        parse_xml_document('', source, 'filter')  # raises the missing-lxml error
    name = options.get('name')
    if not isinstance(name, str) or not name:
        _fail('name is required', source=source)
    root = etree.Element('filter')
    root.set('name', name)
    for key in ('chain', 'priority'):
        if options.get(key) is not None:
            _set(root, key, _text(options[key], None, key, name, source), None, name, source)
    if options.get('uuid') is not None:
        etree.SubElement(root, 'uuid').text = _text(options['uuid'], None, 'uuid', name, source)
    where = _Located()
    labelled = []
    for index, entry in enumerate(options.get('filterrefs') or ()):
        label = 'filterrefs[%d]' % index
        labelled.append((_filterref(root, entry, label, name, source), label, None, True))
    for index, entry in enumerate(options.get('rules') or ()):
        if not isinstance(entry, dict):
            _fail('a rules entry must be a dict', 'rules[%d]' % index, None, None, name, source)
        if entry.get('filter') is not None and all(entry.get(k) is None for k in RULE_KEYS):
            label = 'rules[%d] (filterref)' % index
            labelled.append((_filterref(root, dict((k, v) for k, v in entry.items() if v is not None),
                                        label, name, source), label, None, True))
            continue
        priority = entry.get('priority')
        label = 'rules[%d] (priority %s)' % (index, priority if priority is not None else P.RULE_PRIORITY_DEFAULT)
        element, protocol = _rule(root, entry, label, name, source, strict)
        labelled.append((element, label, protocol, False))
    # One element per line: a parser line number then names the YAML entry it came from.
    text = etree.tostring(root, pretty_print=True, encoding='unicode')
    parsed = parse_xml_document(text, source, 'filter')
    for (dummy, label, protocol, is_ref), element in zip(labelled, [c for c in parsed if c.tag != 'uuid']):
        where.lines.append((element.sourceline, label, protocol, is_ref))
    return parsed, where


def _relabel(exc, where, source):
    """The parser's error with the YAML location instead of rule numbers and lines."""
    message = getattr(exc, 'message', None) or str(exc)
    label = protocol = None
    line = None
    if exc.rule:
        match = _RULE_WHERE.match(exc.rule)
        if match:
            line = int(match.group(1))
    if line is None:
        found = _LINE.search(message)
        if found:
            line = int(found.group(1) or found.group(2))
    if line is not None:
        located = where.label_of_line(line)
        if located:
            label, protocol, dummy = located
    key = exc.attribute
    if key is None and '<uuid>' in message:
        key = 'uuid'
    if key and protocol and key not in RULE_KEYS and not key.startswith('parameter'):
        key = '%s.%s' % (protocol, key)
    message = _LINE.sub('', message)
    rule = label or exc.rule
    if key:
        rule = "%s, key '%s'" % (rule, key) if rule else "key '%s'" % key
    return FilterError(message, filter_name=exc.filter_name, rule=rule, value=exc.value, source=source)


def filter_from_options(options, strict=True, source=None):
    """The :class:`nwfilter_parse.Filter` the YAML form defines; FilterError names
    the YAML entry (``rules[3] (priority 100)``), the key and the value."""
    root, where = options_to_document(options, strict, source)
    try:
        return parse_filter_element(root, source, strict)
    except FilterError as exc:
        raise _relabel(exc, where, source)


def options_xml(options, strict=True, source=None):
    """The ``<filter>`` document text of the YAML form (e.g. for warnings about ignored items)."""
    return etree.tostring(options_to_document(options, strict, source)[0], encoding='unicode')


# --------------------------------------------------------------------------
# Filter -> options

def _yaml_value(protocol, value):
    text = format_value(protocol, value)
    if value.var is None:
        if value.kind in _NUMERIC and text.isdigit():
            return int(text)
        if value.kind == P.BOOLEAN:
            return text == 'true'
    return text


def _element_options(rule):
    plain = dict((v.name, _yaml_value(rule.protocol, v)) for v in rule.values if not v.negated)
    negated = [v for v in rule.values if v.negated]
    if not negated:
        return plain
    inverted = dict(match=False)
    inverted.update((v.name, _yaml_value(rule.protocol, v)) for v in negated)
    return [plain, inverted] if plain else inverted


def _parameter_options(parameters):
    return dict((name, values[0] if len(values) == 1 else list(values))
                for name, values in sorted(parameters, key=lambda item: item[0]))


def _filterref_options(ref):
    entry = dict(filter=ref.filter)
    if ref.parameters:
        entry['parameters'] = _parameter_options(ref.parameters)
    return entry


def rule_options(rule):
    entry = dict(action=rule.action, direction=rule.direction, priority=rule.priority)
    if not rule.statematch:
        entry['statematch'] = False
    if rule.protocol != 'none':
        entry[rule.protocol.replace('-', '_')] = _element_options(rule)
    return entry


def filter_to_options(nwfilter):
    """The YAML form (module options) that defines ``nwfilter``'s canonical XML."""
    options = dict(name=nwfilter.name, chain=nwfilter.chain)
    if nwfilter.priority != 0:
        options['priority'] = nwfilter.priority
    if nwfilter.uuid:
        options['uuid'] = nwfilter.uuid
    entries = list(nwfilter.entries)
    leading = []
    while entries and isinstance(entries[0], FilterRef):
        leading.append(_filterref_options(entries.pop(0)))
    if leading:
        options['filterrefs'] = leading
    rules = [rule_options(e) if isinstance(e, Rule) else _filterref_options(e) for e in entries]
    if rules:
        options['rules'] = rules
    return options
