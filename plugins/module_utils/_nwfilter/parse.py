# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse libvirt nwfilter XML (``<filter>``) and binding XML (``<filterbinding>``).

Two modes:

* ``strict=True`` (default): the document must also be valid against our
  RelaxNG schema and may not carry unknown elements, attributes or parameters.
  An admin's typo (``srcporttend``) is an error instead of a silently ignored
  attribute.
* ``strict=False``: accept exactly what libvirt accepts: unknown attributes,
  elements and malformed filterref parameters are ignored.

In both modes every illegal value of a known attribute rejects the whole
filter, as libvirt does.
"""

from __future__ import annotations

import dataclasses
import re
import uuid as uuidlib

from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import protocols as P
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import schema as nwfilter_schema
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.values import (
    IllegalValue, Value, parameter_problem, parse_mac, parse_state, parse_value, parse_var_access)

try:
    from lxml import etree
    HAS_LXML = True
    LXML_IMPORT_ERROR = None
except ImportError as exc:  # reported by the modules with missing_required_lib
    etree = None
    HAS_LXML = False
    LXML_IMPORT_ERROR = exc

_CHAIN_CHARS = re.compile(r'^[A-Za-z0-9_.:-]+$')
# What virStrToLong_i reads (strtol, base 10): leading blanks and a sign allowed, nothing after the digits.
_INT = re.compile(r'^[ \t\n\r\f\v]*[+-]?[0-9]+$')


@dataclasses.dataclass(frozen=True)
class Rule:
    action: str
    direction: str
    priority: int
    statematch: bool
    protocol: str  # element name, or 'none'
    values: tuple  # Value, in the protocol's attribute-table order
    position: int  # 1-based among the filter's <rule> elements
    line: int | None = None
    # libvirt keeps an ipset without ipsetflags with a default flag it cannot
    # compile; such a rule is valid XML but fails at instantiation.
    ipset_unusable: bool = False
    # Every $VAR access seen while parsing, in libvirt's order (element by element,
    # attribute-table order within each), including accesses whose attribute a
    # later element of the same protocol overwrote: libvirt still iterates over
    # (and requires) them.
    var_accesses: tuple = ()
    # Connection states the rule matches: the union of every literal ``state``
    # of its elements (libvirt ORs them), 'NONE' if any says NONE, None if no
    # literal state was given (a ``$VAR`` state is ignored by libvirt too).
    state_flags: str | None = None

    def get(self, name):
        for value in self.values:
            if value.name == name:
                return value
        return None

    @property
    def layer(self):
        return P.protocol(self.protocol).layer

    def where(self):
        line = ', line %d' % self.line if self.line else ''
        return 'rule #%d (priority %d%s)' % (self.position, self.priority, line)


@dataclasses.dataclass(frozen=True)
class FilterRef:
    filter: str
    parameters: tuple = ()  # ((name, (value, ...)), ...) in order of first appearance
    line: int | None = None
    # ((name, value, problem), ...): parameters libvirt drops (name or value
    # outside its character set). Not part of the definition (libvirt does not
    # keep them either); the compiler refuses a binding whose rules need one.
    ignored: tuple = dataclasses.field(default=(), compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Filter:
    name: str
    chain: str = 'root'
    priority: int = 0  # effective chain priority
    priority_text: str | None = None  # as written (printed back only with a chain attribute)
    chain_given: bool = False
    uuid: str | None = None
    entries: tuple = ()  # Rule and FilterRef in document order

    @property
    def rules(self):
        return tuple(e for e in self.entries if isinstance(e, Rule))

    @property
    def references(self):
        return tuple(e.filter for e in self.entries if isinstance(e, FilterRef))

    def with_uuid(self, new_uuid):
        return dataclasses.replace(self, uuid=new_uuid)


@dataclasses.dataclass(frozen=True)
class Binding:
    """A libvirt ``<filterbinding>``: one filter bound to one guest NIC."""

    portdev: str
    mac: str
    filter: str
    parameters: tuple = ()  # ((name, (value, ...)), ...)
    owner_name: str | None = None
    owner_uuid: str | None = None
    linkdev: str | None = None


def _require_lxml():
    if not HAS_LXML:
        raise FilterError('the Python library lxml is required to parse nwfilter XML (%s)' % LXML_IMPORT_ERROR)


def parse_xml_document(text, source, expected_root):
    """Parse XML text safely (no entities, no network) and check the root element."""
    _require_lxml()
    if isinstance(text, str):
        text = text.encode('utf-8')
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True,
                             remove_pis=True, huge_tree=False)
    try:
        root = etree.fromstring(text, parser)
    except etree.XMLSyntaxError as exc:
        raise FilterError('malformed XML: %s' % exc, source=source)
    if root.tag != expected_root:
        raise FilterError('root element must be <%s>, not <%s>' % (expected_root, root.tag), source=source)
    return root


def _check_unknown_attributes(element, allowed, context, filter_name, rule=None):
    for attr in element.attrib:
        if attr not in allowed:
            raise FilterError('unknown attribute on <%s> (line %s); allowed: %s' % (
                element.tag, element.sourceline, ', '.join(sorted(allowed)) or 'none'),
                filter_name=filter_name, rule=rule, attribute=attr, value=element.get(attr), source=context)


def _parse_chain(element, name, source):
    chain = element.get('chain')
    if chain is None:
        return 'root', False
    if len(chain) > P.MAX_CHAIN_NAME or not _CHAIN_CHARS.match(chain):
        raise FilterError('chain name must be at most %d characters of [A-Za-z0-9_.:-]' % P.MAX_CHAIN_NAME,
                          filter_name=name, attribute='chain', value=chain, source=source)
    if chain == 'root':
        return chain, True
    for prefix in P.CHAIN_PREFIXES[1:]:
        if chain.startswith(prefix):
            return chain, True
    raise FilterError("chain must be 'root' or start with one of %s" % ', '.join(P.CHAIN_PREFIXES[1:]),
                      filter_name=name, attribute='chain', value=chain, source=source)


def chain_prefix(chain):
    for prefix in P.CHAIN_PREFIXES:
        if chain == prefix or (prefix != 'root' and chain.startswith(prefix)):
            return prefix
    return 'root'


def _parse_filter_priority(element, name, chain, chain_given, source, strict=False):
    text = element.get('priority')
    if text is not None:
        if not _INT.match(text) or not P.PRIORITY_MIN <= int(text) <= P.PRIORITY_MAX:
            raise FilterError('filter priority must be an integer in [%d, %d]' % (P.PRIORITY_MIN, P.PRIORITY_MAX),
                              filter_name=name, attribute='priority', value=text, source=source)
    if not chain_given:
        # A filter without a chain attribute is a root filter whatever its priority says.
        if text is not None and strict:
            raise FilterError('a filter priority without a chain attribute is ignored by libvirt (the filter is a '
                              "root filter); add chain='...' or remove the priority (strict: false ignores it)",
                              filter_name=name, attribute='priority', value=text, source=source)
        return 0, None
    if text is not None:
        return int(text), text
    return P.CHAIN_DEFAULT_PRIORITY[chain_prefix(chain)], None


def _parse_rule_priority(element, name, position, source, strict):
    """libvirt uses a rule priority it can read as an integer in [-1000, 1000]
    and silently uses 500 for anything else (checked with libvirt-oracle):
    strict mode refuses those, lenient mode does as libvirt."""
    text = element.get('priority')
    if text is None:
        return P.RULE_PRIORITY_DEFAULT
    number = int(text) if _INT.match(text) else None
    if number is not None and P.PRIORITY_MIN <= number <= P.PRIORITY_MAX:
        return number
    if strict:
        raise FilterError('rule priority must be an integer in [%d, %d] (libvirt silently uses %d instead; '
                          'strict: false does too)' % (P.PRIORITY_MIN, P.PRIORITY_MAX, P.RULE_PRIORITY_DEFAULT),
                          filter_name=name, rule='rule #%d (line %s)' % (position, element.sourceline),
                          attribute='priority', value=text, source=source)
    return P.RULE_PRIORITY_DEFAULT


def _rule_where(element, position, priority=None):
    text = 'rule #%d' % position
    detail = []
    if priority is not None:
        detail.append('priority %d' % priority)
    detail.append('line %s' % element.sourceline)
    return '%s (%s)' % (text, ', '.join(detail))


def _rule_protocol_elements(element, filter_name, where, strict, source):
    """``(protocol name or None, [elements])``: the rule's elements of its (first) protocol."""
    protocol_name = None
    chosen = []
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if child.tag in P.PROTOCOLS:
            if protocol_name is None:
                protocol_name = child.tag
            if child.tag == protocol_name:
                chosen.append(child)
                continue
        if strict:
            raise FilterError('unexpected element <%s> (line %s); a rule holds one protocol element%s' % (
                child.tag, child.sourceline,
                ' (<%s>)' % protocol_name if protocol_name else ''),
                filter_name=filter_name, rule=where, source=source)
    return protocol_name, chosen


def _rule_raw_values(chosen, spec, protocol_name, filter_name, where, strict, source):
    """``(raw values, negated, variable accesses, literal states)`` of a rule's protocol elements."""
    raw_values = {}
    negated = {}
    var_accesses = []
    literal_states = []
    for child in chosen:
        is_negated = child.get('match') == 'no'
        if strict:
            _check_unknown_attributes(child, spec.attr_names + ('match',), source, filter_name, where)
            match = child.get('match')
            if match is not None and match not in ('yes', 'no'):
                raise FilterError("match must be 'yes' or 'no'", filter_name=filter_name, rule=where,
                                  attribute='match', value=match, source=source)
        for attr_spec in spec.attrs:
            raw = child.get(attr_spec.name)
            if raw is None:
                continue
            if strict:
                _strict_value_checks(attr_spec, raw, attr_spec.name in raw_values, filter_name, where, source)
            raw_values[attr_spec.name] = raw
            negated[attr_spec.name] = is_negated
            if attr_spec.name == 'state' and not raw.startswith('$'):
                literal_states.append(raw)
            if raw.startswith('$'):
                try:
                    access = parse_var_access(raw[1:])
                except IllegalValue as exc:
                    raise FilterError('illegal value in <%s>: %s' % (protocol_name, exc),
                                      filter_name=filter_name, rule=where,
                                      attribute=attr_spec.name, value=raw, source=source)
                if access not in var_accesses:
                    var_accesses.append(access)
    # Followers take their leader's negation (libvirt's fix-up after parsing).
    for follower, leader in spec.leaders:
        if follower in raw_values:
            negated[follower] = negated.get(leader, False) if leader in raw_values else False
    return raw_values, negated, var_accesses, literal_states


def _rule_head(element, filter_name, position, strict, source):
    """``(action, direction, priority, statematch)`` of a ``<rule>``."""
    if strict:
        _check_unknown_attributes(element, ('action', 'direction', 'priority', 'statematch'), source,
                                  filter_name, _rule_where(element, position))
    action = element.get('action')
    direction = element.get('direction')
    if action is None or action not in P.ACTIONS:
        raise FilterError('action must be one of %s' % ', '.join(P.ACTIONS), filter_name=filter_name,
                          rule=_rule_where(element, position), attribute='action', value=action, source=source)
    if direction is None or direction not in P.DIRECTIONS:
        raise FilterError('direction must be one of %s' % ', '.join(P.DIRECTIONS), filter_name=filter_name,
                          rule=_rule_where(element, position), attribute='direction', value=direction,
                          source=source)
    priority = _parse_rule_priority(element, filter_name, position, source, strict)
    statematch_text = element.get('statematch')
    if strict and statematch_text is not None and statematch_text.lower() not in ('0', '1', 'true', 'false'):
        # libvirt turns state matching off only for '0' and 'false': 'no' would leave it on.
        raise FilterError("statematch must be 'true', 'false', '1' or '0' (libvirt reads any other text as true)",
                          filter_name=filter_name, rule=_rule_where(element, position, priority),
                          attribute='statematch', value=statematch_text, source=source)
    statematch = not (statematch_text is not None and (statematch_text == '0' or statematch_text.lower() == 'false'))
    return action, direction, priority, statematch


def _parse_rule(element, filter_name, position, strict, source):
    action, direction, priority, statematch = _rule_head(element, filter_name, position, strict, source)
    where = _rule_where(element, position, priority)
    protocol_name, chosen = _rule_protocol_elements(element, filter_name, where, strict, source)
    spec = P.protocol(protocol_name or 'none')
    raw_values, negated, var_accesses, literal_states = _rule_raw_values(
        chosen, spec, protocol_name, filter_name, where, strict, source)
    values = []
    for attr_spec in spec.attrs:
        if attr_spec.name not in raw_values:
            continue
        raw = raw_values[attr_spec.name]
        try:
            values.append(parse_value(attr_spec, raw, negated[attr_spec.name]))
        except IllegalValue as exc:
            raise FilterError('illegal value in <%s>: %s' % (protocol_name, exc), filter_name=filter_name,
                              rule=where, attribute=attr_spec.name, value=raw, source=source)

    values, ipset_unusable = _fixup_ipset(spec, values)
    state_flags = parse_state(','.join(literal_states)) if literal_states else None
    rule = Rule(action=action, direction=direction, priority=priority, statematch=statematch,
                protocol=spec.name, values=tuple(values), position=position, line=element.sourceline,
                ipset_unusable=ipset_unusable, var_accesses=tuple(var_accesses), state_flags=state_flags or None)
    _validate_rule(rule, filter_name, source)
    return rule


_STRICT_BOOLEANS = ('true', 'false', '1', '0', 'yes', 'no')
_VAR_TAIL = re.compile(r'^\$[A-Za-z0-9_]+(\[\s*@?\s*[0-9]+\s*\])?\s*$')


def _lenient_only_mac(raw):
    """A MAC libvirt reads only by ignoring what follows it."""
    try:
        parse_mac(raw)
        return False
    except IllegalValue:
        try:
            parse_mac(raw, lenient=True)
            return True
        except IllegalValue:
            return False  # not a MAC at all: parse_value says so


def _strict_value_checks(spec, raw, repeated, filter_name, rule, source):
    """Values libvirt accepts but (partly) ignores: refused in strict mode,
    naming the attribute. strict: false keeps libvirt's reading."""
    def refuse(message):
        raise FilterError(message + ' (strict: false accepts it as libvirt does)', filter_name=filter_name,
                          rule=rule, attribute=spec.name, value=raw, source=source)

    if repeated and spec.kind != P.STATE:
        refuse('attribute given again in another element of the same rule; libvirt ignores the earlier value')
    if raw.startswith('$'):
        if not _VAR_TAIL.match(raw):
            refuse("libvirt ignores what follows the variable reference ($NAME, $NAME[N] or $NAME[@N] expected)")
        if spec.kind == P.STATE:
            refuse('libvirt ignores a variable in state (the rule would match without it)')
        if spec.kind == P.BOOLEAN:
            refuse('libvirt ignores a variable in %s (it reads as false whatever the value)' % spec.name)
        return
    if spec.kind in (P.MAC, P.MACMASK) and _lenient_only_mac(raw):
        refuse('libvirt ignores the text after the MAC address')
    if spec.kind == P.BOOLEAN and raw not in _STRICT_BOOLEANS:
        refuse("must be 'true', 'false', 'yes', 'no', '1' or '0' (libvirt reads any other text as false)")
    if spec.kind == P.COMMENT and len(raw) > P.MAX_COMMENT_LENGTH:
        refuse('comment longer than %d characters; libvirt cuts the rest off' % P.MAX_COMMENT_LENGTH)


def _fixup_ipset(spec, values):
    """libvirt's ipset fix-up for IP-layer protocols other than all/all-ipv6."""
    if spec.layer == 'eb' or spec.name in ('all', 'all-ipv6'):
        return values, False
    names = set(v.name for v in values)
    if 'ipset' in names and 'ipsetflags' not in names:
        flags = Value('ipsetflags', 'src', 'ipsetflags', text='src')
        ordered = []
        for value in values:
            ordered.append(value)
            if value.name == 'ipset':
                ordered.append(flags)
        return ordered, True
    return [v for v in values if v.name not in ('ipset', 'ipsetflags')], False


def _validate_rule(rule, filter_name, source):
    if rule.protocol in ('ip', 'ipv6'):
        has_ports = any(rule.get(n) is not None for n in ('srcportstart', 'srcportend', 'dstportstart', 'dstportend'))
        proto = rule.get('protocol')
        if has_ports and (proto is None or proto.number not in (6, 17, 33, 132)):
            raise FilterError('%s rule with port specification requires protocol tcp(6), udp(17), dccp(33) '
                              'or sctp(132)' % ('IP' if rule.protocol == 'ip' else 'IPv6'),
                              filter_name=filter_name, rule=rule.where(), attribute='protocol',
                              value=proto.raw if proto else None, source=source)
    comment = rule.get('comment')
    if rule.layer != 'eb' and comment is not None and comment.text and ('\n' in comment.text or '\r' in comment.text):
        # libvirt hands the comment to iptables as one argument; *-restore input has one rule per line.
        raise FilterError('a comment with a line break (&#10; or &#13;) cannot be loaded with iptables-restore '
                          '(one rule per line); use spaces', filter_name=filter_name, rule=rule.where(),
                          attribute='comment', value=comment.raw, source=source)


def _parse_parameters(element, filter_name, strict, source, keep_invalid=False, ignored=None):
    """``<parameter>`` children as ((name, (value, ...)), ...).

    libvirt silently skips a parameter whose name or value fails its check
    (OpenStack nova passes RASERVER as ADDRESS/128). In a filter's
    ``<filterref>`` it is dropped like libvirt does and listed in ``ignored``
    (the compiler refuses a binding whose rules need it; modules warn).
    ``keep_invalid`` (bindings) keeps it: the compiler decides, knowing whether
    the filter tree uses it (warning if not, error if it does).
    """
    params = []
    index = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if child.tag != 'parameter':
            if strict:
                raise FilterError('unexpected element <%s> in <%s> (line %s)' % (child.tag, element.tag, child.sourceline),
                                  filter_name=filter_name, source=source)
            continue
        name = child.get('name')
        value = child.get('value')
        if name is None or value is None:
            if strict:
                raise FilterError('<parameter> needs a name and a value attribute (line %s)' % child.sourceline,
                                  filter_name=filter_name, attribute='parameter %s' % name, value=value,
                                  source=source)
            continue
        problem = parameter_problem(name, value)
        if problem and not keep_invalid:
            if ignored is not None:
                ignored.append((name, value, problem))
            continue  # libvirt silently skips it
        if name in index:
            params[index[name]] = (name, params[index[name]][1] + (value,))
        else:
            index[name] = len(params)
            params.append((name, (value,)))
    return tuple(params)


def parse_filter_element(root, source=None, strict=True):
    name = root.get('name')
    if not name:
        raise FilterError('<filter> requires a name attribute', source=source)
    if strict:
        _check_unknown_attributes(root, ('name', 'chain', 'priority'), source, name)
        _validate_with_schema(root, name, source)
    chain, chain_given = _parse_chain(root, name, source)
    priority, priority_text = _parse_filter_priority(root, name, chain, chain_given, source, strict)
    filter_uuid = None
    entries = []
    rule_position = 0
    for child in root:
        if not isinstance(child.tag, str):
            continue
        if child.tag == 'uuid':
            try:
                filter_uuid = str(uuidlib.UUID((child.text or '').strip()))
            except ValueError:
                raise FilterError('malformed UUID', filter_name=name, attribute='uuid', value=child.text, source=source)
        elif child.tag == 'rule':
            rule_position += 1
            entries.append(_parse_rule(child, name, rule_position, strict, source))
        elif child.tag == 'filterref':
            ref = child.get('filter')
            if not ref:
                raise FilterError('<filterref> requires a filter attribute (line %s)' % child.sourceline,
                                  filter_name=name, source=source)
            if strict:
                _check_unknown_attributes(child, ('filter',), source, name)
            ignored = []
            parameters = _parse_parameters(child, name, strict, source, ignored=ignored)
            entries.append(FilterRef(ref, parameters, child.sourceline, tuple(ignored)))
        elif strict:
            raise FilterError('unexpected element <%s> (line %s)' % (child.tag, child.sourceline),
                              filter_name=name, source=source)
    return Filter(name=name, chain=chain, priority=priority, priority_text=priority_text,
                  chain_given=chain_given, uuid=filter_uuid, entries=tuple(entries))


def ignored_parameter_notes(nwfilter):
    """Warnings for the filterref parameters libvirt (and we) drop from ``nwfilter``."""
    return tuple("filter '%s': parameter %s=%r of the filterref to '%s' is ignored: %s (libvirt drops it too); "
                 "a binding whose rules need $%s without defining it is refused"
                 % (nwfilter.name, name, value, entry.filter, problem, name)
                 for entry in nwfilter.entries if isinstance(entry, FilterRef)
                 for name, value, problem in entry.ignored)


def parse_filter(text, source=None, strict=True):
    """Parse one ``<filter>`` document into a :class:`Filter`; raise FilterError."""
    root = parse_xml_document(text, source, 'filter')
    return parse_filter_element(root, source, strict)


def _validate_with_schema(root, name, source):
    nwfilter_schema.validate_filter_tree(root, source or name)


def parse_binding(text, source=None, strict=True):
    """Parse a libvirt ``<filterbinding>`` document into a :class:`Binding`.

    Also takes the files libvirt's nwfilter driver keeps in
    ``/run/libvirt/nwfilter-binding/IF.xml``: a ``<filterbindingstatus>`` around
    the ``<filterbinding>``."""
    if isinstance(text, str) and '<filterbindingstatus' in text:
        status = parse_xml_document(text, source, 'filterbindingstatus')
        inner = status.find('filterbinding')
        if inner is None:
            raise FilterError('<filterbindingstatus> without a <filterbinding>', source=source)
        text = etree.tostring(inner, encoding='unicode')
    root = parse_xml_document(text, source, 'filterbinding')

    def child(parent, tag):
        found = parent.find(tag)
        return found

    owner = child(root, 'owner')
    owner_name = owner_uuid = None
    if owner is not None:
        owner_name = (owner.findtext('name') or '').strip() or None
        owner_uuid_text = (owner.findtext('uuid') or '').strip()
        if owner_uuid_text:
            try:
                owner_uuid = str(uuidlib.UUID(owner_uuid_text))
            except ValueError:
                raise FilterError('malformed owner UUID', attribute='owner/uuid', value=owner_uuid_text, source=source)
    portdev = child(root, 'portdev')
    if portdev is None or not portdev.get('name'):
        raise FilterError('<filterbinding> requires <portdev name="..."/>', source=source)
    mac_element = child(root, 'mac')
    if mac_element is None or not mac_element.get('address'):
        raise FilterError('<filterbinding> requires <mac address="..."/>', source=source)
    try:
        mac = parse_mac(mac_element.get('address'))
    except IllegalValue:
        raise FilterError('malformed MAC address', attribute='mac/address', value=mac_element.get('address'),
                          source=source)
    ref = child(root, 'filterref')
    if ref is None or not ref.get('filter'):
        raise FilterError('<filterbinding> requires <filterref filter="..."/>', source=source)
    linkdev = child(root, 'linkdev')
    return Binding(portdev=portdev.get('name'), mac=mac, filter=ref.get('filter'),
                   parameters=_parse_parameters(ref, ref.get('filter'), strict, source, keep_invalid=True),
                   owner_name=owner_name, owner_uuid=owner_uuid,
                   linkdev=linkdev.get('name') if linkdev is not None else None)
