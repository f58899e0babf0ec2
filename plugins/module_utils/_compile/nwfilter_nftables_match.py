# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebtables/iptables rule arguments -> nftables (bridge family) match atoms.

The nftables layout is fed by the SAME compilers as the xtables layout: the
argument tuples :mod:`nwfilter_ebtables` and :mod:`nwfilter_iptables` build
from resolved rule instances (every libvirt quirk included) are translated
here, option by option, into what the kernel's ebt_*/xt_* matches test, in
nft's bridge-family terms.  Values that came from variables arrive wrapped in
:data:`MARK_OPEN`/:data:`MARK_CLOSE` (see ``nwfilter_nftables.mark``), so an
atom knows whether it is per-NIC (a set lookup candidate) or literal.

Anything nft cannot express exactly raises :class:`Unsupported` with the
reason; the caller keeps that NIC (or its IP layer) on the xtables layout.
"""

from __future__ import annotations

import dataclasses
import ipaddress

MARK_OPEN = '\x01'
MARK_CLOSE = '\x02'

# Kinds of atom values: how a value renders and whether a set can hold it.
MAC, IPV4, IPV6, INT, TEXT = 'mac', 'ipv4', 'ipv6', 'int', 'text'
_WIDTH = {MAC: 48, IPV4: 32, IPV6: 128}

# Set keys (typeof expressions) whose elements nft lists as plain numbers or addresses.
SETTABLE = frozenset((
    'ether saddr', 'ether daddr', 'ip saddr', 'ip daddr', 'ip6 saddr', 'ip6 daddr', 'th sport', 'th dport',
    'vlan id', '@nh,64,48', '@nh,112,32', '@nh,144,48', '@nh,192,32',
))
ETHER_TYPES = {'ipv4': 0x0800, 'ipv6': 0x86dd, 'arp': 0x0806, 'rarp': 0x8035, 'vlan': 0x8100}
IP_PROTOCOLS = {'tcp': 6, 'udp': 17, 'udplite': 136, 'esp': 50, 'ah': 51, 'icmp': 1, 'igmp': 2, 'sctp': 132,
                'icmpv6': 58, 'ipv6-icmp': 58}
ARP_OPCODES = {'request': 1, 'reply': 2, 'request_reverse': 3, 'reply_reverse': 4, 'drarp_request': 5,
               'drarp_reply': 6, 'drarp_error': 7, 'inarp_request': 8, 'arp_nak': 9}
TCP_FLAGS = {'FIN': 0x01, 'SYN': 0x02, 'RST': 0x04, 'PSH': 0x08, 'ACK': 0x10, 'URG': 0x20, 'ALL': 0x3f,
             'NONE': 0x00}
# ARP header fields (offsets from the network header, in bits), as ebt_arp reads them.
ARP_HTYPE, ARP_PTYPE, ARP_HLEN, ARP_PLEN, ARP_OP = '@nh,0,16', '@nh,16,16', '@nh,32,8', '@nh,40,8', '@nh,48,16'
ARP_SHA, ARP_SPA, ARP_THA, ARP_TPA = '@nh,64,48', '@nh,112,32', '@nh,144,48', '@nh,192,32'


class Unsupported(Exception):
    """The rule uses something this nftables layout cannot express exactly."""


@dataclasses.dataclass(frozen=True)
class Atom:
    """One test of a rule: ``expr [!=] value``.

    ``value`` is an inclusive integer interval ``(low, high)`` for the address
    and number kinds, or nft text for :data:`TEXT`; ``var`` says the value came
    from a variable (differs per NIC).
    """

    expr: str
    kind: str
    value: object
    negated: bool = False
    var: bool = False

    @property
    def settable(self):
        return self.kind != TEXT and self.expr in SETTABLE

    def render_value(self):
        return render_value(self.kind, self.value)

    def render(self):
        if self.kind == TEXT:
            return self.value if not self.negated else self.value.replace(' == ', ' != ', 1)
        return '%s %s %s' % (self.expr, '!=' if self.negated else '==', self.render_value())


# A test no packet passes (an empty range): the rule is left out.
NEVER = Atom('never', TEXT, 'never')


def unmark(text):
    return text.replace(MARK_OPEN, '').replace(MARK_CLOSE, '')


def is_marked(text):
    return MARK_OPEN in text


# ---------------------------------------------------------------------------- values

def render_value(kind, value):
    low, high = value
    if kind == MAC:
        if low != high:
            raise Unsupported('a MAC address range')
        return ':'.join('%02x' % ((low >> s) & 0xff) for s in range(40, -1, -8))
    if kind in (IPV4, IPV6):
        cls = ipaddress.IPv4Address if kind == IPV4 else ipaddress.IPv6Address
        if low == high:
            return str(cls(low))
        size = high - low + 1
        if size & (size - 1) == 0 and low % size == 0:
            return '%s/%d' % (cls(low), _WIDTH[kind] - size.bit_length() + 1)
        return '%s-%s' % (cls(low), cls(high))
    if low == high:
        return str(low)
    return '%d-%d' % (low, high)


def parse_number(text, names=None, base=0):
    """A number as ebtables/iptables read it. ``base`` 0 is strtol's: '0x' hex, a leading '0' octal,
    else decimal (iptables, and ebtables ports, protocols, TOS, ICMPv6 and STP values); 16 is ebtables'
    '-p', '--vlan-encap' and '--arp-ptype' ('2048' is 0x2048); 10 its '--vlan-id', '--arp-htype' and
    '--arp-opcode'. A variable's value reaches the rule as written, so all three forms occur."""
    text = unmark(text).strip()
    if names and text.lower() in names:
        return names[text.lower()]
    try:
        if base == 16:
            return int(text, 16)
        if base == 0 and text.lower().startswith('0x'):
            return int(text, 16)
        if base == 0 and len(text) > 1 and text.startswith('0'):
            return int(text, 8)
        return int(text, 10)
    except ValueError:
        raise Unsupported('cannot read %r as a number' % text)


def parse_mac(text):
    parts = unmark(text).split(':')
    if len(parts) != 6:
        raise Unsupported('cannot read %r as a MAC address' % text)
    try:
        value = 0
        for part in parts:
            octet = int(part, 16)
            if not 0 <= octet <= 255:
                raise ValueError(part)
            value = (value << 8) | octet
    except ValueError:
        raise Unsupported('cannot read %r as a MAC address' % text)
    return value


def _mask_bits(mask, kind):
    """A mask given as prefix length or dotted/colon address -> integer mask."""
    width = _WIDTH[kind]
    if mask.isdigit():
        length = int(mask)
        if length > width:
            raise Unsupported('prefix length %s too long' % mask)
        return ((1 << width) - 1) ^ ((1 << (width - length)) - 1)
    try:
        return int(ipaddress.IPv4Address(mask)) if kind == IPV4 else int(ipaddress.IPv6Address(mask))
    except ValueError:
        raise Unsupported('cannot read %r as a mask' % mask)


def address(text, kind, default_mask=None):
    """``ADDR[/MASK]`` -> (interval or None, mask or None).

    A contiguous mask gives an interval; a non-contiguous one gives
    (None, mask) and the caller matches ``expr & mask == addr & mask``.
    """
    text = unmark(text)
    addr, _sep, mask = text.partition('/')
    if not mask and default_mask is not None:
        mask = default_mask
    try:
        value = int(ipaddress.IPv4Address(addr)) if kind == IPV4 else int(ipaddress.IPv6Address(addr))
    except ValueError:
        raise Unsupported('cannot read %r as an address' % text)
    width = _WIDTH[kind]
    full = (1 << width) - 1
    bits = _mask_bits(mask, kind) if mask else full
    inverted = full ^ bits
    if inverted & (inverted + 1):  # not of the form 0...01...1: non-contiguous
        return None, (value & bits, bits)
    low = value & bits
    return (low, low | inverted), None


def mac_with_mask(text):
    text = unmark(text)
    addr, _sep, mask = text.partition('/')
    value = parse_mac(addr)
    if not mask:
        return (value, value), None
    bits = parse_mac(mask)
    if bits == (1 << 48) - 1:
        return (value, value), None
    return None, (value & bits, bits)


def number_range(text, separator, names=None, base=0):
    text = unmark(text)
    if separator in text:
        low, high = text.split(separator, 1)
        return parse_number(low, names, base), parse_number(high, names, base)
    value = parse_number(text, names, base)
    return value, value


# ---------------------------------------------------------------------------- argument reading

class _Args:
    """Reads ``OPTION [!] VALUE`` (ebtables) or ``[!] OPTION VALUE`` (iptables) pairs."""

    def __init__(self, args):
        self.args = list(args)
        self.pos = 0

    def done(self):
        return self.pos >= len(self.args)

    def peek(self):
        return self.args[self.pos] if self.pos < len(self.args) else None

    def take(self):
        value = self.args[self.pos]
        self.pos += 1
        return value

    def negation(self):
        if self.peek() == '!':
            self.pos += 1
            return True
        return False


def _addr_atom(expr, text, kind, negated, default_mask=None):
    var = is_marked(text)
    interval, masked = address(text, kind, default_mask)
    if interval is not None:
        return Atom(expr, kind, interval, negated, var)
    value, bits = masked
    return Atom(expr, TEXT, '%s & %s == %s' % (expr, render_value(kind, (bits, bits)), render_value(kind, (value, value))),
                negated, var)


def _mac_atom(expr, text, negated):
    var = is_marked(text)
    interval, masked = mac_with_mask(text)
    if interval is not None:
        return Atom(expr, MAC, interval, negated, var)
    value, bits = masked
    return Atom(expr, TEXT, '%s & %s == %s' % (expr, render_value(MAC, (bits, bits)), render_value(MAC, (value, value))),
                negated, var)


def _raw_mac_atom(expr, text, negated):
    var = is_marked(text)
    value = parse_mac(text)
    return Atom(expr, INT, (value, value), negated, var)


def _int_atom(expr, text, negated, separator=None, names=None, base=0):
    var = is_marked(text)
    value = number_range(text, separator, names, base) if separator else (parse_number(text, names, base),) * 2
    return Atom(expr, INT, value, negated, var)


def _ether_type(text, negated):
    atom = _int_atom('ether type', text, negated, names=ETHER_TYPES, base=16)
    if atom.value[0] > 0xffff:
        raise Unsupported('ethertype %s (ebtables refuses it)' % unmark(text))
    return atom


def _vlan_encap(text, negated):
    """ebtables-nft keeps the low 16 bits of --vlan-encap ('12946' is 0x2946, '-1' 0xffff) and refuses
    what is then below 0x3c; libvirt prints a literal encap-protocol in decimal, so such values occur."""
    plain = unmark(text).strip()
    if plain.lower() in ETHER_TYPES:
        number = ETHER_TYPES[plain.lower()]
    else:
        try:
            number = int(plain, 16) & 0xffff
        except ValueError:
            raise Unsupported('cannot read %r as a number' % plain)
    if number < 0x3c:
        raise Unsupported('VLAN encapsulated protocol %s (ebtables refuses it)' % plain)
    return Atom('vlan type', INT, (number, number), negated, is_marked(text))


# ---------------------------------------------------------------------------- ebtables

EB_VERDICTS = {'ACCEPT': 'accept', 'DROP': 'drop', 'RETURN': 'return', 'CONTINUE': 'continue'}


def eb_rule(args):
    """``(atoms, verdict)`` for ebtables arguments (after ``-A CHAIN``).

    ``verdict`` is 'accept'/'drop'/'return'/'continue' or ('jump', ebtables
    chain name) for a jump to a sub-chain.
    """
    reader = _Args(args)
    atoms = []
    verdict = None
    guards = set()
    while not reader.done():
        option = reader.take()
        if option == '-j':
            target = unmark(reader.take())
            verdict = EB_VERDICTS.get(target, ('jump', target))
            continue
        negated = reader.negation()
        atom, guard = _eb_atom(option, reader.take(), negated)
        if atom is not None:
            atoms.append(atom)
        if guard is not None:
            guards.add(guard)
    if verdict is None:
        raise Unsupported('rule without a target')
    return tuple(atoms) + _eb_guards(guards), verdict


# Options that are one integer field: option -> (nft expression, range separator, value names).
# (expression, range separator, names, number base as ebtables reads the option: see parse_number)
_EB_INT_OPTIONS = {
    # ebt_ip compares the IPv4 header's protocol field.
    '--ip-protocol': ('ip protocol', None, IP_PROTOCOLS, 0),
    # ebt_ip6 skips extension headers to find the protocol, as meta l4proto does.
    '--ip6-protocol': ('meta l4proto', None, IP_PROTOCOLS, 0),
    '--ip-source-port': ('th sport', ':', None, 0), '--ip6-source-port': ('th sport', ':', None, 0),
    '--ip-destination-port': ('th dport', ':', None, 0), '--ip6-destination-port': ('th dport', ':', None, 0),
    # ebt_ip compares the whole TOS byte with the value (libvirt passes the DSCP value).
    '--ip-tos': ('@nh,8,8', None, None, 0),
    '--vlan-id': ('vlan id', None, None, 10),
    '--arp-htype': (ARP_HTYPE, None, None, 10),
    '--arp-ptype': (ARP_PTYPE, None, ETHER_TYPES, 16),
    '--arp-opcode': (ARP_OP, None, ARP_OPCODES, 10),
}
# Address options: option -> (nft expression, address kind).
_EB_ADDR_OPTIONS = {
    '--ip-source': ('ip saddr', IPV4), '--ip-destination': ('ip daddr', IPV4),
    '--ip6-source': ('ip6 saddr', IPV6), '--ip6-destination': ('ip6 daddr', IPV6),
}
_EB_ARP_IP = {'--arp-ip-src': ARP_SPA, '--arp-ip-dst': ARP_TPA}
_EB_ARP_MAC = {'--arp-mac-src': ARP_SHA, '--arp-mac-dst': ARP_THA}


def _eb_atom(option, value, negated):
    """``(atom or None, guard or None)`` for one ebtables match; the guard names the header test
    (:func:`_eb_guards`) the match implies."""
    if option in ('-s', '-d'):
        return _mac_atom('ether saddr' if option == '-s' else 'ether daddr', value, negated), None
    if option == '-p':
        return _ether_type(value, negated), None
    if option == '--vlan-encap':
        return _vlan_encap(value, negated), None
    if option in _EB_ADDR_OPTIONS:
        expr, kind = _EB_ADDR_OPTIONS[option]
        return _addr_atom(expr, value, kind, negated), None
    if option in _EB_INT_OPTIONS:
        expr, separator, names, base = _EB_INT_OPTIONS[option]
        atom = _int_atom(expr, value, negated, separator, names=names, base=base)
        if base == 16 and atom.value[1] > 0xffff:
            raise Unsupported('%s %s (ebtables refuses it)' % (option, unmark(value)))
        return atom, None
    if option == '--ip6-icmp-type':
        return _icmp6_range(value, negated), None
    if option in _EB_ARP_IP:
        return _int_render_ip(_addr_atom(_EB_ARP_IP[option], value, IPV4, negated)), 'arp_ip'
    if option in _EB_ARP_MAC:
        return _raw_mac_atom(_EB_ARP_MAC[option], value, negated), 'arp_mac'
    if option in STP_FIELDS:
        return _stp_atom(option, value, negated), 'stp'
    raise Unsupported('ebtables option %s' % option)


def _eb_guards(guards):
    """The header tests ebtables' match modules make before they look at their fields."""
    atoms = ()
    if 'arp_ip' in guards:
        # ebt_arp tests IP fields only in ARP packets for IPv4 (whatever the negation).
        atoms += (Atom(ARP_PLEN, INT, (4, 4)), Atom(ARP_PTYPE, INT, (0x0800, 0x0800)))
    if 'arp_mac' in guards:
        atoms += (Atom(ARP_HLEN, INT, (6, 6)), Atom(ARP_HTYPE, INT, (1, 1)))
    if 'stp' in guards:
        # ebt_stp only looks at frames whose LLC+BPDU header is 42 42 03 00 00 00 (so the type is always 0,
        # and the config BPDU fields are always tested).
        atoms += (Atom(STP_HEADER, INT, (0x424203000000, 0x424203000000)),)
    return atoms


# ebt_stp: offsets (bits from the network header) of the config BPDU fields it tests.
STP_HEADER = '@nh,0,48'
STP_FIELDS = {
    '--stp-type': None, '--stp-flags': ('@nh,48,8', 8), '--stp-root-pri': ('@nh,56,16', 16),
    '--stp-root-addr': ('@nh,72,48', 48), '--stp-root-cost': ('@nh,120,32', 32),
    '--stp-sender-prio': ('@nh,152,16', 16), '--stp-sender-addr': ('@nh,168,48', 48),
    '--stp-port': ('@nh,216,16', 16), '--stp-msg-age': ('@nh,232,16', 16), '--stp-max-age': ('@nh,248,16', 16),
    '--stp-hello-time': ('@nh,264,16', 16), '--stp-forward-delay': ('@nh,280,16', 16),
}


def _stp_atom(option, text, negated):
    if option == '--stp-type':
        # The header test already requires type 0: the type test is always true or never.
        is_zero = parse_number(text) == 0
        return None if is_zero != negated else NEVER
    expr, width = STP_FIELDS[option]
    if width == 48:
        interval, masked = mac_with_mask(text)
        if interval is not None:
            return Atom(expr, INT, interval, negated, is_marked(text))
        value, bits = masked
        return Atom(expr, TEXT, '%s & 0x%012x == 0x%012x' % (expr, bits, value), negated, is_marked(text))
    return _int_atom(expr, text, negated, ':')


def _int_render_ip(atom):
    """ARP IP fields are raw payload: keep their interval, but as integers (nft reads raw fields as such)."""
    if atom.kind == IPV4:
        return dataclasses.replace(atom, kind=INT)
    if atom.kind == TEXT:
        raise Unsupported('an ARP address with a non-contiguous mask')
    return atom


def _icmp6_range(text, negated):
    """``T1:T2/C1:C2`` -> one atom testing type and code together (ebt_ip6 negates the pair)."""
    types, _sep, codes = unmark(text).partition('/')
    t_low, t_high = number_range(types, ':')
    c_low, c_high = number_range(codes, ':')
    pair = '%s . %s' % (render_value(INT, (t_low, t_high)), render_value(INT, (c_low, c_high)))
    return Atom('icmpv6 type . icmpv6 code', TEXT, 'icmpv6 type . icmpv6 code == { %s }' % pair, negated,
                is_marked(text))


# ---------------------------------------------------------------------------- iptables

XT_VERDICTS = {'ACCEPT': 'accept', 'DROP': 'drop', 'RETURN': 'return', 'REJECT': 'reject'}
STATEFUL = 'stateful'


def xt_rule(args, family):
    """``(atoms, verdict, needs)`` for iptables/ip6tables arguments of an FI/FO/HI rule.

    ``needs`` is a set of what the rule needs beyond plain matching: 'conntrack'
    (``-m conntrack``), 'ipset', 'connlimit'.  Atoms for conntrack are returned
    as TEXT (usable only where the bridge family has conntrack).
    """
    kind = IPV4 if family == 'ip' else IPV6
    prefix = 'ip' if family == 'ip' else 'ip6'
    reader = _Args(args)
    atoms = [Atom('ether type', INT, (ETHER_TYPES['ipv4' if family == 'ip' else 'ipv6'],) * 2)]
    needs = set()
    verdict = None
    protocol = None
    while not reader.done():
        negated = reader.negation()
        option = reader.take()
        if option == '-j':
            verdict = XT_VERDICTS.get(unmark(reader.take()))
            if verdict is None:
                raise Unsupported('iptables target %s' % args[reader.pos - 1])
            continue
        if option == '-m':
            reader.take()  # the match's name; its options follow
            continue
        negated = reader.negation() or negated
        value = reader.take()
        if option == '-p':
            protocol = unmark(value)
            if protocol != 'all':
                number = parse_number(protocol, IP_PROTOCOLS)
                # iptables compares the header's field; ip6tables finds the protocol behind extension headers.
                atoms.append(Atom('ip protocol' if family == 'ip' else 'meta l4proto', INT, (number, number),
                                  negated, is_marked(value)))
        elif option == '--mac-source':
            atoms.append(_mac_atom('ether saddr', value, negated))
        elif option in ('--source', '--destination'):
            atoms.append(_addr_atom('%s %s' % (prefix, 'saddr' if option == '--source' else 'daddr'),
                                    value, kind, negated))
        elif option in ('--src-range', '--dst-range'):
            low, _sep, high = unmark(value).partition('-')
            (low_iv, _m1), (high_iv, _m2) = address(low, kind), address(high or low, kind)
            if low_iv[0] > high_iv[1]:
                # xt_iprange: an upside-down range contains no address.
                if negated:
                    continue  # always true
                atoms.append(NEVER)
                continue
            atoms.append(Atom('%s %s' % (prefix, 'saddr' if option == '--src-range' else 'daddr'), kind,
                              (low_iv[0], high_iv[1]), negated, is_marked(value)))
        elif option == '--dscp':
            atoms.append(_int_atom('%s dscp' % prefix, value, negated))
        elif option == '--tcp-flags':
            bits = reader.take()
            mask_value = _tcp_flag_bits(value)
            atoms.append(Atom('tcp flags', TEXT, 'tcp flags & 0x%x == 0x%x' % (mask_value, _tcp_flag_bits(bits)),
                              negated))
        elif option in ('--sport', '--dport'):
            atoms.append(_int_atom('th sport' if option == '--sport' else 'th dport', value, negated, ':'))
        elif option in ('--icmp-type', '--icmpv6-type'):
            atoms.append(_icmp_type(value, negated, 'icmp' if option == '--icmp-type' else 'icmpv6'))
        elif option == '--tcp-option':
            raise Unsupported('TCP option match')
        elif option in ('--ctstate', '--ctdir'):
            needs.add('conntrack')
            atoms.append(_conntrack_atom(option, unmark(value), negated))
        elif option == '--match-set':
            reader.take()  # the flags
            needs.add('ipset')
        elif option == '--connlimit-above':
            needs.add('connlimit')
        elif option == '--comment':
            pass
        else:
            raise Unsupported('iptables option %s' % option)
    if verdict is None:
        raise Unsupported('rule without a target')
    if protocol is None:
        raise Unsupported('rule without -p')
    return tuple(atoms), verdict, frozenset(needs)


def _tcp_flag_bits(text):
    value = 0
    for word in unmark(text).split(','):
        if word.upper() not in TCP_FLAGS:
            raise Unsupported('TCP flag %s' % word)
        value |= TCP_FLAGS[word.upper()]
    return value


def _icmp_type(text, negated, proto):
    var = is_marked(text)
    icmp_type, _sep, code = unmark(text).partition('/')
    number = parse_number(icmp_type)
    if number == 255 and not code:
        # xt_icmp/ip6t_icmp6: type 255 matches any ICMP message (still only unfragmented ICMP).
        return Atom('%s type' % proto, TEXT, '%s type == 0-255' % proto, negated, var)
    code_range = '%d' % parse_number(code) if code else '0-255'
    return Atom('%s type . %s code' % (proto, proto), TEXT,
                '%s type . %s code == { %d . %s }' % (proto, proto, number, code_range), negated, var)


_CT_STATES = {'NEW': 'new', 'ESTABLISHED': 'established', 'RELATED': 'related', 'INVALID': 'invalid',
              'UNTRACKED': 'untracked'}


def _conntrack_atom(option, value, negated):
    if option == '--ctdir':
        return Atom('ct direction', TEXT, 'ct direction == %s' % value.lower(), negated)
    states = []
    for word in value.split(','):
        if word.upper() not in _CT_STATES:
            raise Unsupported('connection state %s' % word)
        states.append(_CT_STATES[word.upper()])
    # ct state is a bitmask: "in any of these states", as --ctstate tests.
    return Atom('ct state', TEXT, 'ct state & (%s) != 0' % '|'.join(states) if not negated
                else 'ct state & (%s) == 0' % '|'.join(states), False)
