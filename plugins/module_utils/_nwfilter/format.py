# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canonical XML of nwfilter filters and bindings (what ``virsh nwfilter-dumpxml``
and ``virsh nwfilter-binding-dumpxml`` print with libvirt 11.3).

Two filters are the same definition exactly when their canonical texts are
equal: the ``nwfilter`` module compares these texts to decide ``changed`` and
shows them in ``--diff``.

Layout (2-space indentation, single-quoted attributes):

* ``<filter name='N' chain='C'>``, plus ``priority='P'`` when the effective chain
  priority is not 0; then ``<uuid>``; then rules and filterrefs in document order;
* ``<rule action='A' direction='D' priority='P'>`` (priority always), plus
  ``statematch='false'`` when state matching is off; a rule without protocol is
  an empty ``<rule .../>``;
* inside a rule, one element with the attributes that are not negated, then one
  with ``match='no'`` and the negated ones (each only if it has attributes; a
  bare ``<proto/>`` when there are none), attributes in the protocol table order,
  values normalised: numbers in decimal unless written in hex (``0x..``; not
  ``opcode``, always decimal), the
  symbolic name when one exists (protocolid, encap-protocol, opcode, protocol),
  MACs lower case, masks as prefix lengths, variables as ``$NAME``, ``$NAME[N]``,
  ``$NAME[@K]``;
* ``<filterref filter='X'>`` with its parameters sorted by name, the values of a
  list parameter in their original order.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import protocols as P
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import FilterRef, Rule
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.values import Value

_NUMERIC_KINDS = frozenset((P.UINT8, P.UINT16, P.UINT16_DEC, P.UINT32))
# libvirt's ARP opcode printer writes a number without a name in decimal even
# when it was entered in hex (checked against libvirt: opcode='0x36c8' -> '14024').
_ALWAYS_DECIMAL = frozenset(('opcode',))

# virBufferEscapeString's replacements (attribute values and text alike).
# Tab, line feed and carriage return as character references: a parser turns them into blanks otherwise.
_ESCAPES = (('&', '&amp;'), ('<', '&lt;'), ('>', '&gt;'), ("'", '&apos;'), ('"', '&quot;'),
            ('\t', '&#9;'), ('\n', '&#10;'), ('\r', '&#13;'))


def escape(text):
    """Escape text for a single-quoted attribute or element content, like libvirt."""
    for char, entity in _ESCAPES:
        text = text.replace(char, entity)
    return text


def format_value(protocol, value):
    """The canonical text of one parsed attribute value (a nwfilter_values.Value)."""
    if value.var is not None:
        return str(value.var)
    if value.kind in _NUMERIC_KINDS:
        spec = P.protocol(protocol).attr(value.name)
        for name, number in (spec.names if spec is not None else ()):
            if number == value.number:
                return name
        return ('0x%x' if value.hex and value.name not in _ALWAYS_DECIMAL else '%d') % value.number
    return value.text


def _protocol_element(rule, values, negated):
    protocol = rule.protocol
    attributes = ''
    for value in values:
        if value.name == 'ipsetflags' and rule.ipset_unusable:
            continue  # libvirt's default flag: printed, the stored filter would lose the ipset instead
        # the union of every element's literal state (libvirt ORs them), as libvirt prints it
        text = rule.state_flags if value.name == 'state' and value.var is None and rule.state_flags else \
            format_value(protocol, value)
        attributes += " %s='%s'" % (value.name, escape(text))
    return '    <%s%s%s/>\n' % (protocol, " match='no'" if negated else '', attributes)


def _iteration(accesses):
    """What of a rule's variable accesses decides its rule instances and their order: the set of
    accesses, and the order of the ``@K`` iterators (K > 0) by first appearance (iterator 0 always
    comes first; a ``$X[N]`` access has one position and does not change the order)."""
    accesses = list(accesses)
    order = []
    for access in accesses:
        if access.index is None and access.iterator and access.iterator not in order:
            order.append(access.iterator)
    return frozenset(accesses), tuple(order)


def _accesses(elements):
    """:func:`_iteration` of parsing ``elements`` ((values, negated), ...)."""
    return _iteration(value.var for values, _negated in elements for value in values if value.var is not None)


def _elements(rule):
    """``((values, negated), ...)`` to print: the plain attributes, then the negated ones, as libvirt
    does, unless that would change what the rule iterates over (stored filters are parsed again)."""
    plain = [v for v in rule.values if not v.negated]
    negated = [v for v in rule.values if v.negated]
    elements = [(plain, False)] if plain or not negated else []
    if negated:
        elements.append((negated, True))
    state = rule.get('state')
    if rule.state_flags and state is not None and state.var is not None:
        # a literal state of an earlier element still counts (a $VAR state does not): keep it in front
        elements.insert(0, ([Value('state', rule.state_flags, P.STATE, text=rule.state_flags)], False))
    wanted = _iteration(rule.var_accesses)
    if _accesses(elements) == wanted:
        return elements
    if _accesses(elements[::-1]) == wanted:
        return elements[::-1]  # the negated element held the first iterator
    carrier = (plain + negated)[:1]
    if not carrier and P.protocol(rule.protocol).layer != 'eb' and rule.protocol not in ('all', 'all-ipv6'):
        # every attribute went with libvirt's ipset fix-up, which also drops an ipsetflags given alone
        carrier = [Value('ipsetflags', '', P.IPSETFLAGS)]
    if not carrier:
        return elements
    # Accesses whose value a later element overwrote (or in another order): one element each, in
    # libvirt's order, on an attribute the elements after them set again. Read only by strict: false.
    carried = [([dataclasses.replace(carrier[0], var=access, negated=False)], False) for access in rule.var_accesses]
    return carried + elements


def format_rule(rule):
    """Canonical ``<rule>`` element of a nwfilter_parse.Rule, indented for a filter."""
    head = "  <rule action='%s' direction='%s' priority='%d'" % (rule.action, rule.direction, rule.priority)
    if not rule.statematch:
        head += " statematch='false'"
    if rule.protocol == 'none':
        return head + '/>\n'
    body = ''.join(_protocol_element(rule, values, negated) for values, negated in _elements(rule))
    return head + '>\n' + body + '  </rule>\n'


def _format_parameters(parameters, indent):
    """``<parameter>`` lines sorted by name; a list keeps its order."""
    lines = ''
    for name, values in sorted(parameters, key=lambda item: item[0]):
        for value in values:
            lines += "%s<parameter name='%s' value='%s'/>\n" % (indent, escape(name), escape(value))
    return lines


def format_filterref(ref, indent='  '):
    head = "%s<filterref filter='%s'" % (indent, escape(ref.filter))
    if not ref.parameters:
        return head + '/>\n'
    return head + '>\n' + _format_parameters(ref.parameters, indent + '  ') + indent + '</filterref>\n'


def format_filter(nwfilter):
    """Canonical XML text of a nwfilter_parse.Filter (ends with a newline)."""
    text = "<filter name='%s' chain='%s'" % (escape(nwfilter.name), escape(nwfilter.chain))
    if nwfilter.priority != 0:
        text += " priority='%d'" % nwfilter.priority
    text += '>\n'
    if nwfilter.uuid:
        text += '  <uuid>%s</uuid>\n' % nwfilter.uuid
    for entry in nwfilter.entries:
        if isinstance(entry, Rule):
            text += format_rule(entry)
        elif isinstance(entry, FilterRef):
            text += format_filterref(entry)
        else:  # pragma: no cover - the parser produces only these two
            raise TypeError('unexpected filter entry %r' % (entry,))
    return text + '</filter>\n'


def format_binding(binding):
    """Canonical XML text of a nwfilter_parse.Binding (``<filterbinding>``)."""
    text = '<filterbinding>\n'
    if binding.owner_name is not None or binding.owner_uuid is not None:
        text += '  <owner>\n'
        if binding.owner_name is not None:
            text += '    <name>%s</name>\n' % escape(binding.owner_name)
        if binding.owner_uuid is not None:
            text += '    <uuid>%s</uuid>\n' % binding.owner_uuid
        text += '  </owner>\n'
    text += "  <portdev name='%s'/>\n" % escape(binding.portdev)
    if binding.linkdev:
        text += "  <linkdev name='%s'/>\n" % escape(binding.linkdev)
    text += "  <mac address='%s'/>\n" % escape(binding.mac)
    text += format_filterref(FilterRef(binding.filter, binding.parameters))
    return text + '</filterbinding>\n'
