# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RelaxNG schemas (written for this project) for nwfilter ``<filter>`` and
``<filterbinding>`` documents, and validators with precise error messages.

The schemas check *structure* strictly (unknown elements and attributes are
errors) and *values* loosely: every lexical pattern here accepts a superset of
what libvirt's parser accepts (libvirt tolerates leading blanks and a sign on
numbers, tries numbers in base 10 then base 16, treats any non-true boolean as
false, ...). The parser (nwfilter_parse) does the exact value checks and the
normalisation. The parser runs these validators only in strict mode; in
libvirt-compatible mode unknown attributes/elements are ignored like libvirt does.

The grammar itself is data in :mod:`._nwfilter.schema_rng` (a ``.py`` file
because AnsiballZ ships only Python files of module_utils to the managed host).
"""

from __future__ import annotations

import re

try:
    from lxml import etree
    HAS_LXML = True
    LXML_IMPORT_ERROR = None
except ImportError as exc:  # reported by modules with missing_required_lib('lxml')
    etree = None
    HAS_LXML = False
    LXML_IMPORT_ERROR = exc

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.schema_rng import DEFINES, RNG_NS


# The protocol element names, in the order libvirt documents them (the grammar's rule-content).
PROTOCOL_ELEMENTS = tuple(re.findall(r'<oneOrMore><ref name="p-([a-z0-9-]+)"/></oneOrMore>', DEFINES))


def _grammar(start):
    return ('<grammar xmlns="%s" datatypeLibrary="http://www.w3.org/2001/XMLSchema-datatypes">\n'
            '  <start><ref name="%s"/></start>\n' % (RNG_NS, start) + DEFINES + '</grammar>\n')


# The complete schemas, as text (e.g. for `jing` or for documentation).
FILTER_SCHEMA_TEXT = _grammar('filter')
BINDING_SCHEMA_TEXT = _grammar('filterbinding')

_COMPILED = {}


def _schema(start):
    """Compile (once per process) the grammar whose start pattern is ``start``."""
    if start not in _COMPILED:
        _COMPILED[start] = etree.RelaxNG(etree.fromstring(_grammar(start).encode('utf-8')))
    return _COMPILED[start]


# --------------------------------------------------------------------------
# Introspection of our own grammar: which attributes each element may carry and
# which are required.  Used to explain a validation failure precisely.

def _element_catalog(start):
    """Map element name -> (allowed attribute names, required attribute names)
    for the elements reachable from the grammar's ``start`` define."""
    root = etree.fromstring(_grammar(start).encode('utf-8'))
    defines = dict((d.get('name'), d) for d in root.iter('{%s}define' % RNG_NS))
    catalog = {}
    pending = [defines[start]]

    def collect(node, allowed, required, optional_depth):
        for child in node:
            if not isinstance(child.tag, str):
                continue
            tag = etree.QName(child).localname
            if tag == 'attribute':
                allowed.add(child.get('name'))
                if optional_depth == 0:
                    required.add(child.get('name'))
            elif tag == 'element':
                pending.append(child)  # catalogued on its own
            elif tag == 'ref':
                collect(defines[child.get('name')], allowed, required, optional_depth)
            elif tag in ('optional', 'zeroOrMore', 'choice'):
                collect(child, allowed, required, optional_depth + 1)
            elif tag in ('group', 'interleave', 'oneOrMore', 'define'):
                collect(child, allowed, required, optional_depth)

    done = set()
    while pending:
        node = pending.pop()
        path = node.getroottree().getpath(node)
        if path in done:
            continue
        done.add(path)
        if etree.QName(node).localname == 'define':
            collect(node, set(), set(), 0)
            continue
        allowed, required = set(), set()
        collect(node, allowed, required, 0)
        catalog[node.get('name')] = (frozenset(allowed), frozenset(required))
    return catalog


_CATALOGS = {}


def _catalog(kind):
    start = 'filter' if kind == 'filter' else 'filterbinding'
    if start not in _CATALOGS:
        _CATALOGS[start] = _element_catalog(start)
    return _CATALOGS[start]


def element_attributes(element_name, kind='filter'):
    """The attribute names the strict schema allows on ``element_name`` inside a
    ``kind`` ('filter' or 'binding') document (empty if the element is unknown)."""
    return _catalog(kind).get(element_name, (frozenset(), frozenset()))[0]


def _required_attributes(element_name, kind):
    return _catalog(kind).get(element_name, (frozenset(), frozenset()))[1]


# Minimal valid values for required attributes, used when probing one attribute alone.
_FILLERS = {'name': 'x', 'action': 'accept', 'direction': 'in', 'filter': 'x', 'value': 'x',
            'address': '00:00:00:00:00:00'}


_BINDING_TEMPLATE = ("<filterbinding><owner><name>x</name><uuid>00000000-0000-0000-0000-000000000000</uuid>"
                     "</owner><portdev name='x'/><linkdev name='x'/><mac address='00:00:00:00:00:00'/>"
                     "<filterref filter='x'><parameter name='x' value='x'/></filterref></filterbinding>")


def _probe_document(kind, element, attributes):
    """A minimal valid document in which one element is replaced by a copy of
    ``element`` carrying only ``attributes`` (and its text)."""
    tag = element.tag
    if kind != 'filter':
        document = etree.fromstring(_BINDING_TEMPLATE)
        if tag == 'filterbinding':
            return document
        parent_tag = element.getparent().tag if element.getparent() is not None else None
        for node in document.iter(tag):
            if parent_tag is None or node.getparent().tag == parent_tag:
                node.attrib.clear()
                node.attrib.update(attributes)
                if tag in ('uuid', 'name'):
                    node.text = element.text
                return document
        return document
    if tag == 'filter':
        return etree.Element('filter', attributes)
    node = etree.Element(tag, attributes)
    if tag == 'uuid':
        node.text = element.text
    if tag in PROTOCOL_ELEMENTS:
        parent = etree.Element('rule', action='accept', direction='in')
        parent.append(node)
        node = parent
    elif tag == 'parameter':
        parent = etree.Element('filterref', filter='x')
        parent.append(node)
        node = parent
    document = etree.Element('filter', name='x')
    document.append(node)
    return document


def _context(element):
    """(filter name, 'rule #N (priority P, line L)' or filterref description) of an element."""
    root = element.getroottree().getroot()
    filter_name = root.get('name') if root.tag == 'filter' else None
    node = element
    while node is not None and node.tag not in ('rule', 'filterref'):
        node = node.getparent()
    if node is None or node.getparent() is None:
        return filter_name, None
    siblings = [n for n in node.getparent() if isinstance(n.tag, str) and n.tag == node.tag]
    position = siblings.index(node) + 1
    if node.tag == 'rule':
        priority = node.get('priority', '500')
        return filter_name, 'rule #%d (priority %s, line %s)' % (position, priority, node.sourceline)
    return filter_name, "filterref #%d to '%s' (line %s)" % (position, node.get('filter', ''), node.sourceline)


# Children an element must have (the grammar's required elements), for messages.
_REQUIRED_CHILDREN = {
    'filterbinding': ('owner', 'portdev', 'mac', 'filterref'),
    'owner': ('name', 'uuid'),
}


def _allowed_children(element):
    tag = element.tag
    if tag == 'filter':
        return ('uuid', 'rule', 'filterref')
    if tag == 'rule':
        return PROTOCOL_ELEMENTS
    if tag == 'filterref':
        return ('parameter',)
    if tag == 'filterbinding':
        return ('owner', 'portdev', 'linkdev', 'mac', 'filterref')
    if tag == 'owner':
        return ('name', 'uuid')
    return ()


def _diagnose(tree_root, source, kind):
    """Find the first element/attribute our grammar rejects and explain it.

    Returns the keyword arguments of a FilterError, or None when no single
    culprit could be isolated.
    """
    expected_root = 'filter' if kind == 'filter' else 'filterbinding'
    if tree_root.tag != expected_root:
        return dict(message='root element is <%s>, expected <%s>' % (tree_root.tag, expected_root))
    schema = _schema(expected_root)
    for element in tree_root.iter():
        if not isinstance(element.tag, str):
            continue  # comments, processing instructions
        filter_name, rule = _context(element)
        fields = dict(filter_name=filter_name, rule=rule)
        at = '<%s> (line %s)' % (element.tag, element.sourceline)
        parent = element.getparent()
        if parent is not None and element.tag not in _allowed_children(parent):
            return dict(fields, message='element %s is not allowed inside <%s> (allowed: %s)' % (
                at, parent.tag, ', '.join(_allowed_children(parent)) or 'nothing'))
        present = [c.tag for c in element if isinstance(c.tag, str)]
        for child in _REQUIRED_CHILDREN.get(element.tag, ()):
            if present.count(child) != 1:
                return dict(fields, message='%s needs exactly one <%s> element' % (at, child))
        if element.tag == 'rule' and len(set(present)) > 1:
            return dict(fields, message='a rule holds one protocol; found <%s>. Elements of one protocol may '
                                        'repeat, other protocols need a rule of their own' % '>, <'.join(present))
        if element.tag == 'filter' and present.count('uuid') > 1:
            return dict(fields, message='more than one <uuid>')
        allowed = element_attributes(element.tag, kind)
        for attribute in element.attrib:
            if attribute not in allowed:
                return dict(fields, attribute=attribute, value=element.get(attribute),
                            message='unknown attribute of %s; allowed: %s' % (at, ', '.join(sorted(allowed)) or 'none'))
        for attribute in sorted(_required_attributes(element.tag, kind)):
            if element.get(attribute) is None:
                return dict(fields, attribute=attribute, message='required attribute missing on %s' % at)
        for attribute, value in element.attrib.items():
            attributes = dict((name, _FILLERS[name]) for name in _required_attributes(element.tag, kind))
            attributes[attribute] = value
            if not schema.validate(_probe_document(kind, element, attributes)):
                return dict(fields, attribute=attribute, value=value, message='invalid value on %s' % at)
        if element.tag in ('uuid', 'name'):
            if not schema.validate(_probe_document(kind, element, {})):
                return dict(fields, value=element.text,
                            message='invalid %s %s' % ('UUID' if element.tag == 'uuid' else 'name', at))
        text = (element.text or '').strip()
        if text and element.tag not in ('uuid', 'name'):
            return dict(fields, value=text, message='unexpected text in %s' % at)
    return None


def _validate(tree, source, kind):
    if not HAS_LXML:
        raise FilterError('the lxml Python library is required to validate nwfilter XML', source=source)
    root = tree.getroot() if hasattr(tree, 'getroot') else tree
    schema = _schema('filter' if kind == 'filter' else 'filterbinding')
    if schema.validate(root):
        return
    detail = _diagnose(root, source, kind)
    if detail is None:
        errors = schema.error_log.filter_from_errors()
        if errors:
            detail = dict(message='line %s: %s' % (errors[0].line, errors[0].message))
        else:
            detail = dict(message='document does not match the %s schema' % kind)
    message = detail.pop('message')
    raise FilterError('schema violation: ' + message, source=source, **detail)


def validate_filter_tree(tree, source='<filter>'):
    """Validate a parsed ``<filter>`` document (ElementTree or root element) against
    the strict schema; on failure raise FilterError naming the source, filter,
    rule (position, priority, line), element, attribute and value."""
    _validate(tree, source, 'filter')


def validate_binding_tree(tree, source='<filterbinding>'):
    """Validate a parsed ``<filterbinding>`` document against the strict schema."""
    _validate(tree, source, 'binding')


def ignored_items(root):
    """What libvirt (and our libvirt-compatible mode) silently ignores in a
    ``<filter>`` element: unknown elements, unknown attributes, and elements of a
    second protocol inside a rule.  Returns human-readable descriptions, in
    document order, for warnings."""
    if not HAS_LXML:
        return []
    found = []

    def visit(element):
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if child.tag not in _allowed_children(element):
                found.append('element <%s> (line %s) inside <%s>' % (child.tag, child.sourceline, element.tag))
                continue
            if element.tag == 'rule':
                first = next(c.tag for c in element if isinstance(c.tag, str) and c.tag in PROTOCOL_ELEMENTS)
                if child.tag != first:
                    found.append('element <%s> (line %s) in a rule whose protocol is <%s>'
                                 % (child.tag, child.sourceline, first))
                    continue
            check_attributes(child)
            visit(child)

    def check_attributes(element):
        allowed = element_attributes(element.tag, 'filter')
        for attribute in element.attrib:
            if attribute not in allowed:
                found.append("attribute %s='%s' of <%s> (line %s)"
                             % (attribute, element.get(attribute), element.tag, element.sourceline))

    if root.tag == 'filter':
        check_attributes(root)
        visit(root)
    return found
