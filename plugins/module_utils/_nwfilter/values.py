# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed attribute values of nwfilter rules: parsing, checking and normalising.

Each value is accepted exactly when libvirt accepts it, and normalised the way
libvirt prints it (lower-case two-digit MACs, prefix lengths for masks,
``inet_ntop`` spelling of IPv6 addresses, ...).
"""

from __future__ import annotations

import dataclasses
import re
import socket

from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import protocols as P

_VAR_NAME = re.compile(r'^[A-Za-z0-9_]+$')
_VAR_ACCESS = re.compile(r'^([A-Za-z0-9_]+)(?:\[\s*(@?)\s*([0-9]+)\s*\].*)?$', re.S)
_IPSET_NAME = re.compile(r'^[A-Za-z0-9_.:+ -]{0,31}$')
MAX_ITERATOR = 1000

STATE_WORDS = ('NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'NONE')
TCP_FLAG_WORDS = (('FIN', 0x01), ('SYN', 0x02), ('RST', 0x04), ('PSH', 0x08), ('ACK', 0x10), ('URG', 0x20),
                  ('ALL', 0x3f), ('NONE', 0x00))


class IllegalValue(ValueError):
    """Raised by the parsers below; the caller adds filter/rule/attribute context."""


@dataclasses.dataclass(frozen=True)
class VarRef:
    """A ``$NAME``, ``$NAME[N]`` or ``$NAME[@K]`` reference."""

    name: str
    index: int | None = None  # $NAME[N]: element N only
    iterator: int = 0  # $NAME[@K]; plain $NAME iterates with iterator 0

    def __str__(self):
        if self.index is not None:
            return '$%s[%d]' % (self.name, self.index)
        if self.iterator:
            return '$%s[@%d]' % (self.name, self.iterator)
        return '$' + self.name


@dataclasses.dataclass(frozen=True)
class Value:
    """One attribute of a protocol element, after parsing.

    ``text`` is the normalised literal as rules print it (None for a variable),
    ``number`` the integer for numeric kinds, ``hex`` whether it was written in
    hexadecimal (the canonical XML keeps that), ``negated`` the final negation
    after libvirt's leader/follower fix-up.
    """

    name: str
    raw: str
    kind: str
    text: str | None = None
    number: int | None = None
    hex: bool = False
    var: VarRef | None = None
    negated: bool = False


def parse_var_access(text):
    """Parse what follows ``$`` in an attribute value."""
    match = _VAR_ACCESS.match(text)
    if not match:
        raise IllegalValue('malformed variable reference $%s' % text)
    name, at, number = match.groups()
    if number is None:
        return VarRef(name)
    number = int(number)
    if at:
        if number > MAX_ITERATOR:
            raise IllegalValue('iterator id %d out of range (0-%d)' % (number, MAX_ITERATOR))
        return VarRef(name, iterator=number)
    return VarRef(name, index=number)


_UINT = {10: re.compile(r'^[ \t\n\r\f\v]*([+-]?)([0-9]+)$'),
         16: re.compile(r'^[ \t\n\r\f\v]*([+-]?)(?:0[xX])?([0-9a-fA-F]+)$')}


def _parse_uint(text, base):
    """Whole-string number the way libvirt's virStrToLong_ui reads it.

    Like strtoul: leading blanks and a sign are allowed, and a negative number
    wraps around 2**32 ("-1" is 4294967295); nothing may follow the digits.
    """
    match = _UINT[base].match(text)
    if not match:
        return None
    sign, digits = match.groups()
    number = int(digits, base)
    if sign == '-' and number:
        if number > 0xffffffff:
            return None
        number = 0x100000000 - number
    return number if number <= 0xffffffff else None


# libvirt's virMacAddrParse: six groups of 1-2 hex digits; after the last one,
# anything from a blank or control character on is ignored.
_MAC_ATTRIBUTE = re.compile(r'^((?:[0-9A-Fa-f]{1,2}:){5}[0-9A-Fa-f]{1,2})(?:[\x00-\x20].*)?$', re.S)
_MAC_EXACT = re.compile(r'^((?:[0-9A-Fa-f]{1,2}:){5}[0-9A-Fa-f]{1,2})$')


def parse_mac(text, lenient=False):
    """Normalise a MAC address; ``lenient`` accepts libvirt's trailing junk (attributes only)."""
    match = (_MAC_ATTRIBUTE if lenient else _MAC_EXACT).match(text)
    if not match:
        raise IllegalValue('not a MAC address')
    return ':'.join('%02x' % int(part, 16) for part in match.group(1).split(':'))


def _mask_prefix(packed):
    bits = ''.join(format(b, '08b') for b in packed)
    prefix = len(bits.rstrip('0'))
    if '0' in bits[:prefix]:
        return None
    return prefix


def parse_ipv4(text):
    try:
        info = socket.getaddrinfo(text, None, socket.AF_INET, 0, 0, socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        raise IllegalValue('not an IPv4 address')
    return info[0][4][0]


def parse_ipv6(text):
    try:
        info = socket.getaddrinfo(text, None, socket.AF_INET6, 0, 0, socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        raise IllegalValue('not an IPv6 address')
    # inet_ntop spelling: keeps the dotted tail of ::ffff:a.b.c.d like libvirt.
    return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, info[0][4][0].split('%')[0]))


def parse_mask(text, family):
    width = 32 if family == socket.AF_INET else 128
    number = _parse_uint(text, 10)
    if number is not None:
        if number > width:
            raise IllegalValue('prefix length out of range (0-%d)' % width)
        return number
    address = parse_ipv4(text) if family == socket.AF_INET else parse_ipv6(text)
    prefix = _mask_prefix(socket.inet_pton(family, address))
    if prefix is None:
        raise IllegalValue('netmask is not contiguous')
    return prefix


def _scan_words(text, words, problem):
    """The words of ``words`` found in ``text`` in order, read like libvirt: each one
    case-insensitive and separated by blanks or commas (or nothing); anything else is ``problem``."""
    found = []
    i = 0
    while i < len(text):
        while i < len(text) and (text[i].isspace() or text[i] == ','):
            i += 1
        if i >= len(text):
            break
        for word in words:
            if text[i:i + len(word)].upper() == word:
                found.append(word)
                i += len(word)
                break
        else:
            raise IllegalValue(problem)
    return found


def parse_state(text):
    """Connection states; returns the normalised comma list ('' never: NONE wins)."""
    found = set(_scan_words(text, STATE_WORDS,
                            'unknown connection state (use NEW, ESTABLISHED, RELATED, INVALID, NONE)'))
    if 'NONE' in found:
        return 'NONE'
    return ','.join(w for w in STATE_WORDS if w in found)


def _parse_flag_words(text):
    bits = dict(TCP_FLAG_WORDS)
    value = 0
    for word in _scan_words(text, [w for w, _bit in TCP_FLAG_WORDS],
                            'unknown TCP flag (use FIN, SYN, RST, PSH, ACK, URG, ALL, NONE)'):
        value |= bits[word]
    return value & 0x3f


def format_tcp_flags(bits):
    if bits == 0:
        return 'NONE'
    if bits == 0x3f:
        return 'ALL'
    return ','.join(w for w, b in TCP_FLAG_WORDS[:6] if bits & b)


def parse_tcp_flags(text):
    if '/' not in text:
        raise IllegalValue("TCP flags must be MASK/FLAGS, e.g. 'SYN,ACK/SYN'")
    mask, flags = text.split('/', 1)
    return '%s/%s' % (format_tcp_flags(_parse_flag_words(mask)), format_tcp_flags(_parse_flag_words(flags)))


def parse_ipset_flags(text):
    words = []
    i = 0
    while len(words) < 6:
        word = text[i:i + 3].lower()
        if word not in ('src', 'dst'):
            raise IllegalValue("malformed ipset flags (1-6 of 'src'/'dst', comma separated)")
        words.append(word)
        i += 3
        if text[i:i + 1] != ',':
            break
        i += 1
    if i != len(text):
        raise IllegalValue("malformed ipset flags (1-6 of 'src'/'dst', comma separated)")
    return ','.join(words)


def _parse_number(spec, text):
    """Numbers as libvirt reads them: decimal first, then hexadecimal, then names."""
    limits = {P.UINT8: 0xff, P.UINT16: 0xffff, P.UINT16_DEC: 0xffff, P.UINT32: 0xffffffff}
    limit = limits[spec.kind]
    bases = (10, 16) if spec.hex_ok else (10,)
    for base in bases:
        number = _parse_uint(text, base)
        if number is not None and number <= limit:
            return number, base == 16
    for name, number in spec.names:
        if text.lower() == name.lower():
            return number, False
    raise IllegalValue('not a number in range 0-%d%s' % (
        limit, (' or one of ' + ', '.join(pair[0] for pair in spec.names)) if spec.names else ''))


def parse_value(spec, raw, negated=False):
    """Parse the attribute ``spec`` written as ``raw``; raise IllegalValue if illegal."""
    if raw.startswith('$'):
        return Value(spec.name, raw, spec.kind, var=parse_var_access(raw[1:]), negated=negated)
    kind = spec.kind
    number = None
    is_hex = False
    if kind in (P.UINT8, P.UINT16, P.UINT16_DEC, P.UINT32):
        number, is_hex = _parse_number(spec, raw)
        if spec.minimum is not None and number < spec.minimum:
            raise IllegalValue('must be at least 0x%x' % spec.minimum)
        if spec.maximum is not None and number > spec.maximum:
            raise IllegalValue('must be at most %d' % spec.maximum)
        text = str(number)
    elif kind in (P.MAC, P.MACMASK):
        text = parse_mac(raw, lenient=True)
        if kind == P.MACMASK and _mask_prefix(bytes(int(p, 16) for p in text.split(':'))) is None:
            raise IllegalValue('MAC mask is not contiguous')
    elif kind == P.IPV4:
        text = parse_ipv4(raw)
    elif kind == P.IPV6:
        text = parse_ipv6(raw)
    elif kind in (P.IPV4MASK, P.IPV6MASK):
        number = parse_mask(raw, socket.AF_INET if kind == P.IPV4MASK else socket.AF_INET6)
        text = str(number)
    elif kind == P.BOOLEAN:
        text = 'true' if raw in ('true', '1', 'yes') else 'false'
    elif kind == P.COMMENT:
        text = raw[:P.MAX_COMMENT_LENGTH]
    elif kind == P.STATE:
        text = parse_state(raw)
    elif kind == P.TCPFLAGS:
        text = parse_tcp_flags(raw)
    elif kind == P.IPSETNAME:
        if not _IPSET_NAME.match(raw):
            raise IllegalValue('ipset name must be at most 31 characters of [A-Za-z0-9_.:+ -]')
        text = raw
    elif kind == P.IPSETFLAGS:
        text = parse_ipset_flags(raw)
    else:  # pragma: no cover - the protocol table only uses the kinds above
        raise IllegalValue('unsupported attribute kind %s' % kind)
    return Value(spec.name, raw, kind, text=text, number=number, hex=is_hex, negated=negated)


def valid_parameter_name(name):
    return bool(name) and bool(_VAR_NAME.match(name))


_PARAM_VALUE = re.compile(r'^[A-Za-z0-9_.:]+$')
# What libvirt's parameter parser (virNWFilterParseParamAttributes) allows; it
# silently skips a <parameter> whose name or value is anything else.
PARAMETER_NAME_RULE = '[A-Za-z0-9_]+'
PARAMETER_VALUE_RULE = 'one or more of [A-Za-z0-9_.:]'


def valid_parameter_value(value):
    return bool(value) and bool(_PARAM_VALUE.match(value))


def parameter_problem(name, value):
    """Why libvirt would skip the parameter ``name=value``, or None if it keeps it."""
    if not valid_parameter_name(name):
        return 'the name must be %s' % PARAMETER_NAME_RULE
    if not valid_parameter_value(value):
        bad = sorted(set(c for c in value if not _PARAM_VALUE.match(c)))
        if not value:
            return 'the value is empty; libvirt allows only %s' % PARAMETER_VALUE_RULE
        return 'the value contains %s; libvirt allows only %s' % (
            ', '.join(repr(c) for c in bad), PARAMETER_VALUE_RULE)
    return None
