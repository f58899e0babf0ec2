# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nwfilter protocol elements and their attributes.

The order of attributes in each table is significant twice: it is the order in
which variables are discovered (which fixes how list variables iterate) and the
order the canonical XML prints them in.
"""

from __future__ import annotations

import dataclasses

# Value kinds (see nwfilter_values.parse_value).
UINT8 = 'uint8'
UINT16 = 'uint16'
UINT32 = 'uint32'
UINT16_DEC = 'uint16-decimal'  # connlimit-above: decimal only
MAC = 'mac'
MACMASK = 'macmask'
IPV4 = 'ipv4'
IPV4MASK = 'ipv4mask'
IPV6 = 'ipv6'
IPV6MASK = 'ipv6mask'
BOOLEAN = 'boolean'
COMMENT = 'comment'
STATE = 'state'
TCPFLAGS = 'tcpflags'
IPSETNAME = 'ipsetname'
IPSETFLAGS = 'ipsetflags'

MAX_COMMENT_LENGTH = 256

# Names accepted for numeric attributes (case-insensitive), and the value each means.
ETHERTYPE_NAMES = (('arp', 0x0806), ('rarp', 0x8035), ('ipv4', 0x0800), ('ipv6', 0x86dd), ('vlan', 0x8100))
ARP_OPCODE_NAMES = (
    ('Request', 1), ('Reply', 2), ('Request_Reverse', 3), ('Reply_Reverse', 4),
    ('DRARP_Request', 5), ('DRARP_Reply', 6), ('DRARP_Error', 7), ('InARP_Request', 8), ('ARP_NAK', 9),
)
IP_PROTOCOL_NAMES = (
    ('tcp', 6), ('udp', 17), ('udplite', 136), ('esp', 50), ('ah', 51),
    ('icmp', 1), ('igmp', 2), ('sctp', 132), ('icmpv6', 58),
)


@dataclasses.dataclass(frozen=True)
class AttrSpec:
    name: str
    kind: str
    hex_ok: bool = True  # integers: decimal first, then base 16
    names: tuple = ()  # (name, number) pairs accepted instead of a number
    minimum: int | None = None  # extra checks of libvirt's validators
    maximum: int | None = None


@dataclasses.dataclass(frozen=True)
class ProtocolSpec:
    name: str
    layer: str  # 'eb' (ebtables), 'ip' (iptables) or 'ip6' (ip6tables)
    attrs: tuple  # AttrSpec, in libvirt's table order
    leaders: tuple = ()  # (follower, leader): the follower's negation is the leader's
    xt_proto: str | None = None  # iptables "-p" word

    def attr(self, name):
        for spec in self.attrs:
            if spec.name == name:
                return spec
        return None

    @property
    def attr_names(self):
        return tuple(a.name for a in self.attrs)


def _a(name, kind, **kw):
    return AttrSpec(name, kind, **kw)


_ETH_HDR = (
    _a('srcmacaddr', MAC), _a('srcmacmask', MACMASK), _a('dstmacaddr', MAC), _a('dstmacmask', MACMASK),
)
_MAC_LEADERS = (('srcmacmask', 'srcmacaddr'), ('dstmacmask', 'dstmacaddr'))
_COMMENT = _a('comment', COMMENT)
_PORTS = (
    _a('srcportstart', UINT16), _a('srcportend', UINT16), _a('dstportstart', UINT16), _a('dstportend', UINT16),
)
_IP_MASK_LEADERS = (('srcipmask', 'srcipaddr'), ('dstipmask', 'dstipaddr'))
# libvirt copies the negation of srcportstart onto all other port attributes.
_PORT_LEADERS = (('srcportend', 'srcportstart'), ('dstportstart', 'srcportstart'),
                 ('dstportend', 'srcportstart'))
_RANGE_LEADERS = (('srcipto', 'srcipfrom'), ('dstipto', 'dstipfrom'))


def _common_ip(addr, mask):
    return (
        _a('srcmacaddr', MAC),
        _a('srcipaddr', addr), _a('srcipmask', mask), _a('dstipaddr', addr), _a('dstipmask', mask),
        _a('srcipfrom', addr), _a('srcipto', addr), _a('dstipfrom', addr),
        _a('dstipto', IPV4),  # typed IPv4 for every protocol (a libvirt quirk we keep)
        _a('dscp', UINT8, maximum=63),
        _a('connlimit-above', UINT16_DEC, hex_ok=False),
        _a('state', STATE), _a('ipset', IPSETNAME), _a('ipsetflags', IPSETFLAGS),
    )


def _stp_attrs():
    attrs = [_a('srcmacaddr', MAC), _a('srcmacmask', MACMASK), _a('type', UINT8), _a('flags', UINT8)]
    for base, kind in (('root-priority', UINT16), ('root-address', MAC), ('root-cost', UINT32),
                       ('sender-priority', UINT16), ('sender-address', MAC), ('port', UINT16),
                       ('age', UINT16), ('max-age', UINT16), ('hello-time', UINT16),
                       ('forward-delay', UINT16)):
        if kind == MAC:
            attrs += [_a(base, MAC), _a(base + '-mask', MACMASK)]
        else:
            attrs += [_a(base, kind), _a(base + '-hi', kind)]
    attrs.append(_COMMENT)
    return tuple(attrs)


_STP_LEADERS = (('srcmacmask', 'srcmacaddr'),) + tuple(
    (base + '-hi', base) for base in ('root-priority', 'root-cost', 'sender-priority', 'port', 'age',
                                      'max-age', 'hello-time', 'forward-delay')
) + (('root-address-mask', 'root-address'), ('sender-address-mask', 'sender-address'))

_ARP_ATTRS = _ETH_HDR + (
    _a('hwtype', UINT16), _a('protocoltype', UINT16),
    _a('opcode', UINT16, names=ARP_OPCODE_NAMES),
    _a('arpsrcmacaddr', MAC), _a('arpdstmacaddr', MAC),
    _a('arpsrcipaddr', IPV4), _a('arpsrcipmask', IPV4MASK),
    _a('arpdstipaddr', IPV4), _a('arpdstipmask', IPV4MASK),
    _a('gratuitous', BOOLEAN), _COMMENT,
)


def _ip_layer(name, layer, xt_proto, addr, mask, extra=(), extra_leaders=()):
    leaders = _IP_MASK_LEADERS + _RANGE_LEADERS + extra_leaders
    return ProtocolSpec(name, layer, _common_ip(addr, mask) + tuple(extra) + (_COMMENT,), leaders, xt_proto)


def _ip_protocols():
    protos = []
    for suffix, layer, addr, mask in (('', 'ip', IPV4, IPV4MASK), ('-ipv6', 'ip6', IPV6, IPV6MASK)):
        tcp_extra = _PORTS + (_a('option', UINT8),)
        if layer == 'ip':
            tcp_extra += (_a('flags', TCPFLAGS),)
        protos.append(_ip_layer('tcp' + suffix, layer, 'tcp', addr, mask, tcp_extra, _PORT_LEADERS))
        protos.append(_ip_layer('udp' + suffix, layer, 'udp', addr, mask, _PORTS, _PORT_LEADERS))
        protos.append(_ip_layer('sctp' + suffix, layer, 'sctp', addr, mask, _PORTS, _PORT_LEADERS))
        for plain in ('udplite', 'esp', 'ah', 'all'):
            protos.append(_ip_layer(plain + suffix, layer, plain, addr, mask))
    icmp_extra = (_a('type', UINT8), _a('code', UINT8))
    protos.append(_ip_layer('icmp', 'ip', 'icmp', IPV4, IPV4MASK, icmp_extra, (('code', 'type'),)))
    protos.append(_ip_layer('icmpv6', 'ip6', 'icmpv6', IPV6, IPV6MASK, icmp_extra, (('code', 'type'),)))
    protos.append(_ip_layer('igmp', 'ip', 'igmp', IPV4, IPV4MASK))
    return protos


PROTOCOLS = dict((p.name, p) for p in [
    ProtocolSpec('mac', 'eb', _ETH_HDR + (
        _a('protocolid', UINT16, names=ETHERTYPE_NAMES, minimum=0x600), _COMMENT), _MAC_LEADERS),
    ProtocolSpec('vlan', 'eb', _ETH_HDR + (
        _a('vlanid', UINT16, maximum=4095),
        _a('encap-protocol', UINT16, names=ETHERTYPE_NAMES, minimum=0x3c), _COMMENT), _MAC_LEADERS),
    ProtocolSpec('stp', 'eb', _stp_attrs(), _STP_LEADERS),
    ProtocolSpec('arp', 'eb', _ARP_ATTRS),
    ProtocolSpec('rarp', 'eb', _ARP_ATTRS),
    # ip/ipv6 keep the MAC masks' own negation (libvirt has no MAC fix-up for them).
    ProtocolSpec('ip', 'eb', _ETH_HDR + (
        _a('srcipaddr', IPV4), _a('srcipmask', IPV4MASK), _a('dstipaddr', IPV4), _a('dstipmask', IPV4MASK),
        _a('protocol', UINT8, names=IP_PROTOCOL_NAMES),
    ) + _PORTS + (_a('dscp', UINT8, maximum=63), _COMMENT), _IP_MASK_LEADERS + _PORT_LEADERS),
    ProtocolSpec('ipv6', 'eb', _ETH_HDR + (
        _a('srcipaddr', IPV6), _a('srcipmask', IPV6MASK), _a('dstipaddr', IPV6), _a('dstipmask', IPV6MASK),
        _a('protocol', UINT8, names=IP_PROTOCOL_NAMES),
    ) + _PORTS + (
        _a('type', UINT8), _a('typeend', UINT8), _a('code', UINT8), _a('codeend', UINT8), _COMMENT,
    ), _IP_MASK_LEADERS + _PORT_LEADERS + (
        ('typeend', 'type'), ('code', 'type'), ('codeend', 'type'))),
] + _ip_protocols())

# Protocol "none": a rule without a protocol element is an Ethernet rule matching every frame.
NONE = ProtocolSpec('none', 'eb', ())

ETHERNET_PROTOCOLS = frozenset(n for n, p in PROTOCOLS.items() if p.layer == 'eb') | {'none'}

# The prefixes a filter's chain name may start with, in the order libvirt tests them.
CHAIN_PREFIXES = ('root', 'mac', 'vlan', 'stp', 'arp', 'rarp', 'ipv4', 'ipv6')
CHAIN_DEFAULT_PRIORITY = {
    'root': 0, 'mac': -800, 'vlan': -750, 'ipv4': -700, 'ipv6': -600, 'arp': -500, 'rarp': -400,
    'stp': 0,  # libvirt's table has no stp row: it falls back to 0 (documented -810 is not what it does)
}
ACTIONS = ('drop', 'accept', 'reject', 'return', 'continue')
DIRECTIONS = ('in', 'out', 'inout')
RULE_PRIORITY_DEFAULT = 500
PRIORITY_MIN = -1000
PRIORITY_MAX = 1000
MAX_CHAIN_NAME = 12


def protocol(name):
    if name == 'none':
        return NONE
    return PROTOCOLS[name]
