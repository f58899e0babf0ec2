# -*- coding: utf-8 -*-
"""Random VALID nwfilter definitions for the differential suite.

Written from shared/docs/nwfilter-semantics.md (§2, §3): every protocol element
and attribute, negation, states, statematch, directions, actions, rule and
chain priorities, filterrefs (with parameters), variables, lists and the three
access forms. Values stay inside what libvirt (9.0) and the kernel accept, so a
case that libvirt refuses points at the generator or at a difference in
validation, never at noise:

* ``continue`` only for Ethernet rules (iptables has no CONTINUE target);
* ports on ``ip``/``ipv6`` elements only with protocol tcp/udp/sctp/dccp, never
  with a negated protocol (the kernel refuses those);
* ICMPv6 type/code on ``ipv6`` only with protocol icmpv6 (kernel check);
* ``stp`` ``inout`` rules never have ``srcmacaddr`` (libvirt refuses);
* ``ipset`` only together with ``ipsetflags``; on ``all``/``all-ipv6`` only the
  sets the harness creates (elsewhere libvirt silently drops it);
* ``dstipto`` never on ``-ipv6`` protocols (libvirt types it IPv4 everywhere);
* vlan id < 4095; comments short;
* variables that share an iterator have equal list lengths; a child filter's
  own variable (FR) is always passed by every filterref to it.

Since the second session it also writes what libvirt accepts in odd forms
(numbers with blanks, signs, bare hex; inet_aton IPv4 forms; netmask-style
IPv6 masks; text after a MAC; priorities libvirt replaces by 500; unknown
attributes and elements; a second protocol element), variables in every
attribute that takes one (masks, range ends, ethertypes, booleans, ipsets),
hostile but legal chain, filter and interface names, and comments with
quotes, backslashes, tabs and non-ASCII text. Cases are parsed with
``strict: false`` (libvirt's reading).

One case = a top filter (plus its private child filters) bound to one NIC.
"""

from __future__ import annotations

import dataclasses
import random
import xml.etree.ElementTree as ET

# Binding parameters given to every case: name -> (kind, values).
BINDING_VARIABLES = {
    'IP': ('ipv4', ['10.20.0.1', '10.20.0.2']),
    'IPV6': ('ipv6', ['fd00::10']),
    'V4A': ('ipv4', ['192.0.2.1', '192.0.2.2', '192.0.2.3']),
    'V4B': ('ipv4', ['198.51.100.1', '198.51.100.2', '198.51.100.1']),  # a repeated value
    'V6A': ('ipv6', ['fd00::1', '2001:db8::2']),
    'PA': ('port', ['80', '443', '8080']),
    'PB': ('port', ['22', '53']),
    'MACS': ('mac', ['52:54:00:00:00:01', '52:54:00:00:00:02']),
    'N': ('small', ['5', '12']),  # fits every numeric attribute; 12 reads differently as hex
    'M4': ('ipv4mask', ['24', '255.255.0.0']),
    'M6': ('ipv6mask', ['64', '48']),
    'MM': ('macmask', ['ff:ff:ff:00:00:00']),
    'ET': ('ethertype', ['0x0800', '2048', 'ipv6']),
    'B': ('boolean', ['true', '1']),
    'FL': ('ipsetflags', ['src', 'dst']),
    'SET4': ('ipset4', ['hnfset4']),
    'SET6': ('ipset6', ['hnfset6']),
    'PROTO': ('ipproto', ['6', '17']),
    '9_v': ('port', ['1024', '2048']),  # a legal name with a leading digit
    'ST': ('state', ['NEW', 'ESTABLISHED']),
    'DHCPSERVER': ('ipv4', ['10.20.0.254']),
    'GATEWAY_MAC': ('mac', ['52:54:00:00:00:fe']),
}
# MAC is added by libvirt (the NIC's MAC): one value.
AUTO_VARIABLES = {'MAC': ('mac', ['auto'])}
# Child filters' own variable, always passed by the filterrefs that reach them.
CHILD_VARIABLE = 'FR'

# Sub-chains: name -> priority written in the filter (None: the prefix default).
# A name always has one effective priority (see oracle.normalise); names the
# built-ins use keep the built-ins' priority.
CHAIN_POOL = {
    'mac': None, 'mac-x': -790, 'mac-y': None,
    'vlan': None, 'vlan-q': 10,
    'stp': None, 'stp-b': -300,
    'arp': None, 'arp-x': -505, 'arp-ip': -510,
    'rarp': None, 'rarp-y': -450,
    'ipv4': None, 'ipv4-t': 200, 'ipv4-z': -700,
    'ipv6': None, 'ipv6-u': -600, 'ipv6-ip': -610,
    # hostile but legal names (12 characters at most, [A-Za-z0-9_.:-])
    'mac.x_Y:1-z': -795, 'ipv4:': None, 'stp.': None, 'vlan:q_1': -740, 'rarp-.': None,
    'ipv6_X-y.Z:1': -605, 'arp:': -500,
}

ETHERNET = ('mac', 'vlan', 'stp', 'arp', 'rarp', 'ip', 'ipv6')
IP4_LAYER = ('tcp', 'udp', 'udplite', 'sctp', 'icmp', 'igmp', 'esp', 'ah', 'all')
# ah-ipv6 is left out: ip6tables refuses '-p ah' ("never matched protocol"), on both sides
IP6_LAYER = ('tcp-ipv6', 'udp-ipv6', 'udplite-ipv6', 'sctp-ipv6', 'esp-ipv6', 'all-ipv6', 'icmpv6')
ACTIONS = ('accept', 'drop', 'reject', 'return', 'continue')
BUILTIN_REFS = ('allow-arp', 'allow-dhcp', 'allow-ipv4', 'allow-incoming-ipv6', 'no-mac-spoofing',
                'no-ip-spoofing', 'no-arp-spoofing', 'no-mac-broadcast', 'no-ip-multicast',
                'no-ipv6-multicast', 'qemu-announce-self', 'no-other-rarp-traffic', 'allow-dhcpv6',
                'no-ipv6-spoofing', 'allow-dhcp-server')

_ETH_HDR = (('srcmacaddr', 'mac'), ('srcmacmask', 'macmask'), ('dstmacaddr', 'mac'), ('dstmacmask', 'macmask'))
_ARP = _ETH_HDR + (('hwtype', 'uint16'), ('protocoltype', 'uint16'), ('opcode', 'opcode'),
                   ('arpsrcmacaddr', 'mac'), ('arpdstmacaddr', 'mac'), ('arpsrcipaddr', 'ipv4'),
                   ('arpsrcipmask', 'ipv4mask'), ('arpdstipaddr', 'ipv4'), ('arpdstipmask', 'ipv4mask'),
                   ('gratuitous', 'boolean'), ('comment', 'comment'))
_PORTS = (('srcportstart', 'port'), ('srcportend', 'port'), ('dstportstart', 'port'), ('dstportend', 'port'))


def _stp_attrs():
    attrs = [('srcmacaddr', 'mac'), ('srcmacmask', 'macmask'), ('type', 'uint8'), ('flags', 'uint8')]
    for base, kind in (('root-priority', 'uint16'), ('root-address', 'mac'), ('root-cost', 'uint32'),
                       ('sender-priority', 'uint16'), ('sender-address', 'mac'), ('port', 'uint16'),
                       ('age', 'uint16'), ('max-age', 'uint16'), ('hello-time', 'uint16'),
                       ('forward-delay', 'uint16')):
        attrs += [(base, kind), (base + ('-mask' if kind == 'mac' else '-hi'), 'macmask' if kind == 'mac' else kind)]
    return tuple(attrs) + (('comment', 'comment'),)


def _ip_common(addr, mask, v6):
    attrs = [('srcmacaddr', 'mac'), ('srcipaddr', addr), ('srcipmask', mask), ('dstipaddr', addr),
             ('dstipmask', mask), ('srcipfrom', addr), ('srcipto', addr), ('dstipfrom', addr)]
    if not v6:
        attrs.append(('dstipto', 'ipv4'))
    attrs += [('dscp', 'dscp'), ('connlimit-above', 'connlimit'), ('state', 'state'), ('ipset', 'ipset')]
    return tuple(attrs)


def protocol_attrs(proto):
    """(attribute, kind) pairs the generator may use on a protocol element."""
    if proto == 'mac':
        return _ETH_HDR + (('protocolid', 'ethertype'), ('comment', 'comment'))
    if proto == 'vlan':
        return _ETH_HDR + (('vlanid', 'vlanid'), ('encap-protocol', 'ethertype-encap'), ('comment', 'comment'))
    if proto == 'stp':
        return _stp_attrs()
    if proto in ('arp', 'rarp'):
        return _ARP
    if proto == 'ip':
        return _ETH_HDR + (('srcipaddr', 'ipv4'), ('srcipmask', 'ipv4mask'), ('dstipaddr', 'ipv4'),
                           ('dstipmask', 'ipv4mask'), ('protocol', 'ipproto')) + _PORTS + (
                               ('dscp', 'dscp'), ('comment', 'comment'))
    if proto == 'ipv6':
        return _ETH_HDR + (('srcipaddr', 'ipv6'), ('srcipmask', 'ipv6mask'), ('dstipaddr', 'ipv6'),
                           ('dstipmask', 'ipv6mask'), ('protocol', 'ipproto')) + _PORTS + (
                               ('type', 'uint8'), ('typeend', 'uint8'), ('code', 'uint8'), ('codeend', 'uint8'),
                               ('comment', 'comment'))
    v6 = proto.endswith('-ipv6') or proto == 'icmpv6'
    base = proto.replace('-ipv6', '')
    attrs = _ip_common('ipv6' if v6 else 'ipv4', 'ipv6mask' if v6 else 'ipv4mask', v6)
    if base == 'tcp':
        attrs += _PORTS + (('option', 'uint8'),)
        if not v6:
            attrs += (('flags', 'tcpflags'),)
    elif base in ('udp', 'sctp'):
        attrs += _PORTS
    elif base in ('icmp', 'icmpv6'):
        attrs += (('type', 'uint8'), ('code', 'uint8'))
    return attrs + (('comment', 'comment'),)


# Attributes whose value may be a variable, and the variable kind they take.
# None: the address (or mask) kind of the element's IP version.
VARIABLE_ATTRS = {'srcmacaddr': 'mac', 'dstmacaddr': 'mac', 'arpsrcmacaddr': 'mac', 'arpdstmacaddr': 'mac',
                  'srcipaddr': None, 'dstipaddr': None, 'srcipfrom': None, 'arpsrcipaddr': 'ipv4',
                  'arpdstipaddr': 'ipv4', 'srcportstart': 'port', 'dstportstart': 'port',
                  'dscp': 'small', 'connlimit-above': 'small', 'vlanid': 'small', 'opcode': 'small',
                  'hwtype': 'small', 'type': 'small', 'code': 'small', 'option': 'small', 'state': 'state',
                  'srcipmask': 'mask', 'dstipmask': 'mask', 'srcmacmask': 'macmask', 'dstmacmask': 'macmask',
                  'arpsrcipmask': 'ipv4mask', 'arpdstipmask': 'ipv4mask', 'srcportend': 'port',
                  'dstportend': 'port', 'srcipto': None, 'dstipfrom': None, 'dstipto': None,
                  'protocolid': 'ethertype', 'encap-protocol': 'ethertype', 'protocoltype': 'ethertype',
                  'gratuitous': 'boolean', 'ipsetflags': 'ipsetflags', 'protocol': 'ipproto',
                  'typeend': 'small', 'codeend': 'small', 'root-priority': 'small', 'root-priority-hi': 'small',
                  'root-address': 'mac', 'root-address-mask': 'macmask', 'root-cost': 'small',
                  'sender-priority': 'small', 'sender-address': 'mac', 'port': 'small', 'age': 'small',
                  'max-age': 'small', 'hello-time': 'small', 'forward-delay': 'small', 'ipset': 'ipset'}


# (start, end) attribute pairs that form a range.
RANGES = (('srcportstart', 'srcportend'), ('dstportstart', 'dstportend'), ('type', 'typeend'),
          ('code', 'codeend')) + tuple((base, base + '-hi') for base in (
              'root-priority', 'root-cost', 'sender-priority', 'port', 'age', 'max-age', 'hello-time',
              'forward-delay'))
_MAXIMA = {'typeend': 255, 'codeend': 255, 'root-cost-hi': 4294967295}


def _literal_number(text):
    """The number libvirt reads (decimal first, then hex), or None for a variable."""
    if text.startswith('$'):
        return None
    text = text.strip().lstrip('+')
    try:
        return int(text, 10)
    except ValueError:
        return int(text, 16)


@dataclasses.dataclass
class Case:
    index: int
    interface: str
    mac: str
    top: str  # name of the filter bound to the NIC
    filters: dict  # name -> XML text (top and its private children)

    mac_parameter: str = ''  # a MAC parameter that overrides the NIC's MAC for $MAC

    def parameters(self):
        params = {name: (values if len(values) > 1 else values[0])
                  for name, (dummy, values) in BINDING_VARIABLES.items()}
        if self.mac_parameter:
            params['MAC'] = self.mac_parameter
        return params

    def describe(self):
        return '\n'.join(self.filters.values())


class Generator:
    def __init__(self, seed, size=1):
        self.rng = random.Random(seed)
        self.size = size  # scales rules per filter and child filters per case

    # ------------------------------------------------------------ values
    def chance(self, p):
        return self.rng.random() < p

    def mac(self):
        if self.chance(0.03):
            return '52:54:00:0a:0b:0c junk'  # libvirt ignores text after a blank (strict mode refuses it)
        octets = [self.rng.choice((0x52, 0x02, 0x00, 0xfe))] + [self.rng.randrange(256) for dummy in range(5)]
        style = self.rng.random()
        if style < 0.1:
            return ':'.join('%x' % o for o in octets)  # 1-2 digit form
        if style < 0.2:
            return ':'.join('%02X' % o for o in octets)
        return ':'.join('%02x' % o for o in octets)

    def macmask(self):
        ones = self.rng.choice((48, 40, 24, 8, 1, 47, 16))  # all-zero masks: the kernel refuses them
        value = ((1 << 48) - 1) ^ ((1 << (48 - ones)) - 1)
        return ':'.join('%02x' % ((value >> s) & 0xff) for s in range(40, -1, -8))

    def ipv4(self):
        if self.chance(0.05):
            # inet_aton forms getaddrinfo(AI_NUMERICHOST) takes: short, octal, hex
            return self.rng.choice(('10.1', '10.0.258', '012.1.2.3', '0x0a.0.0.1', '192.168.1'))
        return '%d.%d.%d.%d' % (self.rng.choice((10, 192, 172, 198, 203, 224, 0)), self.rng.randrange(256),
                                self.rng.randrange(256), self.rng.randrange(256))

    def ipv4mask(self):
        prefix = self.rng.randrange(33)
        if self.chance(0.25):
            value = ((1 << 32) - 1) ^ ((1 << (32 - prefix)) - 1)
            return '.'.join(str((value >> s) & 0xff) for s in (24, 16, 8, 0))
        return str(prefix)

    def ipv6(self):
        return self.rng.choice((
            'fd00::%x' % self.rng.randrange(1, 65536),
            '2001:db8:%x::%x' % (self.rng.randrange(65536), self.rng.randrange(1, 65536)),
            'FE80::%X' % self.rng.randrange(1, 65536),
            '::ffff:10.%d.%d.%d' % (self.rng.randrange(256), self.rng.randrange(256), self.rng.randrange(256)),
            'ff02::1:2', '::1', '2001:db8:0:0:1:0:0:1',
        ))

    def ipv6mask(self):
        if self.chance(0.15):
            return self.rng.choice(('ffff:ffff:ffff:ffff::', 'ffff:ff00::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'))
        return str(self.rng.choice((0, 8, 10, 48, 64, 96, 127, 128, self.rng.randrange(129))))

    def number(self, maximum, minimum=0):
        value = self.rng.randrange(minimum, maximum + 1)
        if self.chance(0.2):
            return '0x%x' % value
        if self.chance(0.1):
            # forms libvirt reads as numbers: blanks and a sign, upper-case hex, bare hex, leading zeros
            forms = [' %d' % value, '+%d' % value, '0X%X' % value, '00%d' % value]
            if any(c in 'abcdef' for c in '%x' % value):
                forms.append('%x' % value)
            return self.rng.choice(forms)
        return str(value)

    def value(self, kind):
        rng = self.rng
        simple = {
            'mac': self.mac, 'macmask': self.macmask, 'ipv4': self.ipv4, 'ipv4mask': self.ipv4mask,
            'ipv6': self.ipv6, 'ipv6mask': self.ipv6mask,
        }
        if kind in simple:
            return simple[kind]()
        if kind == 'uint8':
            return self.number(255)
        if kind == 'uint16':
            return self.number(65535)
        if kind == 'uint32':
            return self.number(4294967295)
        if kind == 'port':
            return str(rng.choice((22, 53, 67, 68, 80, 443, 1024, 65535, rng.randrange(1, 65536))))
        if kind == 'dscp':
            return self.number(63)
        if kind == 'connlimit':
            return str(rng.randrange(1, 100))
        if kind == 'vlanid':
            return self.number(4094)
        if kind in ('ethertype', 'ethertype-encap'):
            if self.chance(0.4):
                return rng.choice(('arp', 'rarp', 'ipv4', 'ipv6', 'vlan', 'IPv4', 'ARP'))
            low = 0x600 if kind == 'ethertype' else 0x3c
            return '0x%x' % rng.randrange(low, 0x10000)
        if kind == 'opcode':
            if self.chance(0.5):
                return rng.choice(('Request', 'Reply', 'Request_Reverse', 'Reply_Reverse', 'DRARP_Request',
                                   'DRARP_Reply', 'DRARP_Error', 'InARP_Request', 'ARP_NAK', 'request'))
            return self.number(65535)
        if kind == 'ipproto':
            return rng.choice(('tcp', 'udp', 'udplite', 'esp', 'ah', 'icmp', 'igmp', 'sctp', 'icmpv6',
                               '6', '17', '33', '132', '0x11', str(rng.randrange(256))))
        if kind == 'boolean':
            return rng.choice(('true', 'false', '1', 'yes', 'no', '0'))
        if kind == 'comment':
            words = ['allow', 'web', 'dns', 'guest', 'x-1', 'a.b', 'c,d', 'under_score', "it's", '"q"', 'back\\s',
                     '#hash', 'tab\there', 'cost $5', 'ünïcödé', '✓', 'a&b', '<x>', "--comment", '-j DROP']
            return ' '.join(rng.choice(words) for dummy in range(rng.randrange(1, 5)))
        if kind == 'state':
            if self.chance(0.1):
                return rng.choice(('NONE', 'none', 'NEW,NONE'))
            states = [s for s in ('NEW', 'ESTABLISHED', 'RELATED', 'INVALID') if self.chance(0.5)] or ['NEW']
            rng.shuffle(states)
            return ','.join(s if self.chance(0.8) else s.lower() for s in states)
        if kind == 'tcpflags':
            flags = ('FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG')

            def side():
                if self.chance(0.15):
                    return rng.choice(('ALL', 'NONE'))
                return ','.join(f for f in flags if self.chance(0.4)) or 'SYN'
            return '%s/%s' % (side(), side())
        if kind == 'ipset':
            return rng.choice(('blocklist', 'set.1', 'a:b', 'web_hosts'))
        raise ValueError(kind)

    # ------------------------------------------------------------ variables
    def variable_for(self, kind, iterators, child):
        """A variable access for an attribute of ``kind`` ('$X', '$X[@K]', '$X[N]'),
        or None when no variable of that kind fits the iterators in use."""
        pool = dict(BINDING_VARIABLES)
        pool.update(AUTO_VARIABLES)
        if child:
            pool[CHILD_VARIABLE] = ('ipv4', ['x', 'y'])  # length from the filterrefs: always 2
        names = [n for n, (k, dummy) in pool.items() if k == kind]
        if not names:
            return None
        name = self.rng.choice(names)
        length = len(pool[name][1])
        form = self.rng.random()
        if form < 0.25:
            if self.chance(0.2):
                return '$%s[ %d ]' % (name, self.rng.randrange(length))  # blanks inside the brackets
            return '$%s[%d]' % (name, self.rng.randrange(length))
        iterator = 0 if form < 0.75 else self.rng.choice((1, 2))
        if iterators.setdefault(iterator, length) != length:
            return '$%s[%d]' % (name, self.rng.randrange(length))
        return '$%s' % name if iterator == 0 else '$%s[@%d]' % (name, iterator)

    # ------------------------------------------------------------ rules
    def protocol_element(self, proto, attrs, direction, iterators, child, force=None):
        v6 = proto.endswith('-ipv6') or proto in ('ipv6', 'icmpv6')
        chosen = {}
        for name, value in (force or {}).items():
            chosen[name] = value
        available = [a for a in attrs if a[0] not in chosen]
        for name, kind in self.rng.sample(available, min(len(available), self.rng.choice((0, 1, 2, 2, 3, 4)))):
            chosen[name] = self.value(kind)
        # masks / range ends / -hi values mostly next to what they qualify
        pairs = (('srcmacmask', 'srcmacaddr'), ('dstmacmask', 'dstmacaddr'), ('srcipmask', 'srcipaddr'),
                 ('dstipmask', 'dstipaddr'), ('arpsrcipmask', 'arpsrcipaddr'), ('arpdstipmask', 'arpdstipaddr'),
                 ('srcipto', 'srcipfrom'), ('dstipto', 'dstipfrom'))
        for follower, leader in pairs:
            if follower in chosen and leader not in chosen and self.chance(0.8):
                kinds = dict(attrs)
                if leader in kinds:
                    chosen[leader] = self.value(kinds[leader])
        self._order_ranges(chosen)
        if 'ipset' in chosen:
            if proto in ('all', 'all-ipv6'):
                # the sets the harness creates in both namespaces (oracle.IPSETS)
                chosen['ipset'] = 'hnfset6' if proto == 'all-ipv6' else 'hnfset4'
            chosen['ipsetflags'] = self.rng.choice(('src', 'dst', 'src,dst', 'dst,src,src', 'SRC'))
        for name in list(chosen):
            if name in VARIABLE_ATTRS and self.chance(0.3):
                kind = VARIABLE_ATTRS[name] or ('ipv6' if v6 else 'ipv4')
                if kind == 'mask':
                    kind = 'ipv6mask' if v6 else 'ipv4mask'
                if name == 'ipset':
                    kind = 'ipset6' if v6 else 'ipset4'
                access = self.variable_for(kind, iterators, child)
                if access:
                    chosen[name] = access
        if proto == 'stp' and direction == 'inout':
            chosen.pop('srcmacaddr', None)
        if proto in ('ip', 'ipv6'):
            has_ports = any(p in chosen for p, dummy in _PORTS)
            has_icmp = any(t in chosen for t in ('type', 'typeend', 'code', 'codeend'))
            if has_ports and has_icmp:
                for t in ('type', 'typeend', 'code', 'codeend'):
                    chosen.pop(t, None)
                has_icmp = False
            if has_ports:
                chosen['protocol'] = self.rng.choice(('tcp', 'udp', 'sctp', '6', '17', '33', '132'))
            elif has_icmp:
                chosen['protocol'] = self.rng.choice(('icmpv6', '58'))
        return chosen

    def _order_ranges(self, chosen):
        # ebtables/iptables refuse a range whose end is below its start
        for start, end in RANGES:
            if end not in chosen or start not in chosen:
                continue
            low = _literal_number(chosen[start])
            high = _literal_number(chosen[end])
            if low is None or high is None:
                continue  # variables: the value decides (the kernel refuses an upside-down range on both sides)
            if high < low:
                chosen[end] = str(low + self.rng.randrange(0, 3))
                if _literal_number(chosen[end]) > _MAXIMA.get(end, 65535):
                    chosen[end] = str(low)

    def rule(self, ethernet_only, child, chain_proto=None):
        rng = self.rng
        iterators = {}
        direction = rng.choice(('in', 'out', 'inout'))
        if chain_proto and self.chance(0.75):
            proto = chain_proto
        elif ethernet_only or self.chance(0.4):
            proto = rng.choice(ETHERNET + ('none',))
        else:
            proto = rng.choice(IP4_LAYER + IP6_LAYER)
        is_eth = proto in ETHERNET or proto == 'none'
        actions = ACTIONS if is_eth else ACTIONS[:-1]
        attrs = {'action': rng.choice(actions), 'direction': direction}
        if self.chance(0.85):
            attrs['priority'] = str(rng.choice((-1000, -900, -700, -650, -500, -400, 0, 100, 100, 200, 500, 500,
                                                700, 1000, rng.randrange(-1000, 1001))))
            if self.chance(0.08):
                # libvirt reads ' 100', '+100', '0100'; it uses 500 for the others
                attrs['priority'] = rng.choice((' ' + attrs['priority'], '+' + attrs['priority'].lstrip('-'),
                                                '0100', '1001', '-1001', 'abc', '10x', '0x10'))
        if self.chance(0.15):
            attrs['statematch'] = rng.choice(('false', '0', 'FALSE', 'true', '1', 'no', 'False', 'yes'))
        element = ET.Element('rule', attrs)
        if proto == 'none':
            return element
        spec = protocol_attrs(proto)
        negated = self.chance(0.2)
        # ports with a negated protocol are refused by the kernel: keep ip/ipv6 plain then
        if proto in ('ip', 'ipv6'):
            negated = negated and self.chance(0.3)
        first = self.protocol_element(proto, spec, direction, iterators, child)
        if negated and proto in ('ip', 'ipv6') and 'protocol' in first:
            negated = False
        sub = ET.SubElement(element, proto, first)
        if negated:
            sub.set('match', 'no')
        elif self.chance(0.2):
            sub.set('match', rng.choice(('yes', 'yes', 'NO', 'false', 'maybe')))  # only 'no' negates
        if self.chance(0.04):
            sub.set(rng.choice(('srcporttend', 'bogus', 'Match')), '1')  # unknown: ignored by libvirt
        if proto not in ('ip', 'ipv6') and self.chance(0.12):
            # a second element of the same protocol: attributes accumulate
            second = self.protocol_element(proto, spec, direction, iterators, child)
            second.pop('protocol', None)
            if proto == 'stp' and direction == 'inout':
                second.pop('srcmacaddr', None)
            extra = ET.SubElement(element, proto, second)
            if self.chance(0.5):
                extra.set('match', 'no')
        if self.chance(0.05):
            # libvirt ignores elements of another protocol (and unknown ones) after the first protocol element
            other = rng.choice(('tcp', 'mac', 'ipv6', 'bogus'))
            if other != proto:
                ET.SubElement(element, other, {'dstportstart': '99'} if other == 'tcp' else {})
        return element

    # ------------------------------------------------------------ filters
    def filter(self, name, chain, child_names, child, allow_builtins=True):
        rng = self.rng
        attrs = {'name': name}
        chain_proto = None
        if chain is not None:
            attrs['chain'] = chain
            prio = CHAIN_POOL.get(chain)
            if prio is not None:
                attrs['priority'] = str(prio)
                if self.chance(0.1):
                    attrs['priority'] = rng.choice((' ', '+', '  ')) + str(prio) if prio >= 0 else ' %d' % prio
            for prefix in ('mac', 'vlan', 'stp', 'arp', 'rarp', 'ipv4', 'ipv6'):
                if chain.startswith(prefix) and not (prefix == 'arp' and chain.startswith('rarp')):
                    chain_proto = {'mac': 'mac', 'vlan': 'vlan', 'stp': 'stp', 'arp': 'arp', 'rarp': 'rarp',
                                   'ipv4': 'ip', 'ipv6': 'ipv6'}[prefix]
                    break
        elif self.chance(0.3):
            attrs['chain'] = 'root'
            if self.chance(0.3):
                attrs['priority'] = str(rng.randrange(-1000, 1001))
        root = ET.Element('filter', attrs)
        entries = []
        if self.chance(0.03):
            entries.append(ET.Element('bogus'))  # unknown element in a filter: ignored by libvirt
        for dummy in range(rng.randrange(1, 1 + 4 * self.size)):
            entries.append(self.rule(False, child, chain_proto))
        for target in child_names:
            for dummy in range(1 if self.chance(0.85) else 2):  # sometimes referenced twice
                ref = ET.Element('filterref', {'filter': target})
                values = ['172.16.%d.%d' % (rng.randrange(256), rng.randrange(256)) for dummy in range(2)]
                if self.chance(0.15):
                    values[1] = values[0]  # a repeated list value: iteration skips the repeat
                for value in values:
                    ET.SubElement(ref, 'parameter', {'name': CHILD_VARIABLE, 'value': value})
                if self.chance(0.2):  # the caller's value wins over this one
                    ET.SubElement(ref, 'parameter', {'name': 'V6A', 'value': 'fd99::99'})
                entries.append(ref)
        if allow_builtins and self.chance(0.35):
            entries.append(ET.Element('filterref', {'filter': rng.choice(BUILTIN_REFS)}))
        rng.shuffle(entries)
        root.extend(entries)
        ET.indent(root)
        return ET.tostring(root, encoding='unicode') + '\n'

    def interface(self, index):
        """Interface names: mostly short; sometimes hostile but legal, up to 15 characters. Every name
        ends with the case's index and has no '-' after it (oracle.split_by_interface tells them apart)."""
        if self.chance(0.8):
            return 'rd%03d' % index
        return self.rng.choice(('v.%03d', 'v_n-%03d', 'G.nic_x%03d', 'guestnet.nic%03d', 'A.B_c.%03d')) % index

    def case(self, index):
        prefix = 'r%03d' % index
        if self.chance(0.1):
            # legal filter names (no blank or non-ASCII: libvirt-oracle's cleanup cannot undefine those)
            prefix = self.rng.choice(('r%03d.a', 'r%03d:_', 'r%03d_')) % index
        count = self.rng.choice((0, 0, 1, 1, 2, 3)) * self.size
        children = []
        texts = {}
        # children reference only later children: the tree is a DAG
        for k in reversed(range(count)):
            name = '%s-c%d' % (prefix, k)
            chain = self.rng.choice(list(CHAIN_POOL)) if self.chance(0.7) else None
            later = [c for c in children if self.chance(0.3)]
            texts[name] = self.filter(name, chain, later, child=True)
            children.append(name)
        top = '%s-top' % prefix
        # the bound filter itself may live in a sub-chain
        top_chain = self.rng.choice(list(CHAIN_POOL)) if self.chance(0.1) else None
        texts[top] = self.filter(top, top_chain, children, child=False)
        mac = '52:54:00:%02x:%02x:%02x' % (0x30, index // 256, index % 256)
        mac_parameter = '52:54:00:ee:%02x:%02x' % (index // 256, index % 256) if self.chance(0.1) else ''
        if mac_parameter and self.chance(0.3):
            mac_parameter = mac_parameter.upper()  # substituted verbatim
        return Case(index, self.interface(index), mac, top, texts, mac_parameter)
