# -*- coding: utf-8 -*-
"""Raw Ethernet frames for behaviour tests, built without scapy, and a battery per binding.

``build(spec)`` turns a frame description (dict) into bytes with valid IPv4
header checksums (br_netfilter drops frames with bad ones) and a tag inside
the frame (``HNF`` + 4-byte index, in the IP payload or after the ARP/STP
body) so a receiver can tell every frame apart.

``battery(...)`` describes the frames sent for one bound filter: right and
spoofed MAC/IP/ARP/RARP, every protocol, DHCP, multicast/broadcast, VLAN and
STP, and for every resolved rule instance of the filter tree frames that match
its attribute values (both directions, swapped) plus variants with one value
changed.

``SENDER``/``RECEIVER`` are small Python programs run inside guest namespaces
(AF_PACKET sockets).
"""

from __future__ import annotations

import ipaddress
import socket
import struct

TAG = b'HNF'

SENDER = r'''
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for n, line in enumerate(sys.stdin):
    s.send(bytes.fromhex(line.strip()))
    if n % 40 == 39:
        time.sleep(0.01)  # stay far below the backlog limits
'''

RECEIVER = r'''
import socket, sys
host_mac = bytes.fromhex(sys.argv[2].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
print("ready", flush=True)
while True:
    data, address = s.recvfrom(65535)
    if address[2] == socket.PACKET_OUTGOING or data[6:12] == host_mac:
        continue  # the guest's own answers and the host's ICMP errors (REJECT) quote our tags
    at = data.find(b"HNF")
    while at >= 0:
        print(data[at + 3:at + 7].hex(), flush=True)
        at = data.find(b"HNF", at + 1)
'''

# Empties the namespace's conntrack table (one ctnetlink IPCTNL_MSG_CT_DELETE without attributes), so
# stateful rules (connlimit, state) see the same history on every hypervisor.
CONNTRACK_FLUSH = r'''
import socket, struct
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
for family in (socket.AF_INET, socket.AF_INET6):
    body = struct.pack("BBH", family, 0, 0)
    s.send(struct.pack("=IHHII", 16 + len(body), (1 << 8) | 2, 1 | 4, 1, 0) + body)
    reply = s.recv(4096)
    error = struct.unpack("=i", reply[16:20])[0]
    if error not in (0, -2):
        raise SystemExit("conntrack flush failed: %d" % error)
'''


def mac_bytes(text):
    return bytes(int(p, 16) for p in text.split(':'))


def _checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff


def _l4(spec, tag):
    proto = spec.get('proto', 17)
    sport, dport = spec.get('sport', 40000), spec.get('dport', 41000)
    if proto in (17, 136):
        return struct.pack('!HHHH', sport, dport, 8 + len(tag), 0) + tag
    if proto == 6:
        flags = spec.get('tcp_flags', 0x02)
        return struct.pack('!HHIIBBHHH', sport, dport, 1, 0, 5 << 4, flags, 8192, 0, 0) + tag
    if proto == 132:
        return struct.pack('!HHII', sport, dport, 0, 0) + tag
    if proto in (1, 58):
        return struct.pack('!BBHHH', spec.get('icmp_type', 8), spec.get('icmp_code', 0), 0, 1, 1) + tag
    if proto == 2:
        return struct.pack('!BBH4s', spec.get('icmp_type', 0x16), 0, 0, socket.inet_aton('224.0.0.22')) + tag
    if proto == 50:
        return struct.pack('!II', 0x100, 1) + tag
    if proto == 51:
        return struct.pack('!BBHII', 59, 4, 0, 0x100, 1) + bytes(12) + tag
    return tag + bytes(8)


def _ipv4(spec, tag):
    payload = _l4(spec, tag)
    header = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, spec.get('tos', 0), 20 + len(payload), 1, 0, 64,
                                   spec.get('proto', 17), 0, socket.inet_aton(spec['src_ip']),
                                   socket.inet_aton(spec['dst_ip'])))
    header[10:12] = struct.pack('!H', _checksum(bytes(header)))
    return bytes(header) + payload


def _ipv6(spec, tag):
    payload = _l4(spec, tag)
    tclass = spec.get('tos', 0)
    first = (6 << 28) | (tclass << 20)
    return struct.pack('!IHBB16s16s', first, len(payload), spec.get('proto', 17), 64,
                       ipaddress.IPv6Address(spec['src_ip']).packed,
                       ipaddress.IPv6Address(spec['dst_ip']).packed) + payload


def _arp(spec, tag):
    return struct.pack('!HHBBH6s4s6s4s', spec.get('htype', 1), spec.get('ptype', 0x0800), 6, 4,
                       spec.get('op', 1), mac_bytes(spec['sha']), socket.inet_aton(spec['spa']),
                       mac_bytes(spec['tha']), socket.inet_aton(spec['tpa'])) + tag


def _stp(spec, tag):
    bpdu = struct.pack('!BBBHBBBH6sIH6sHHHHH', 0x42, 0x42, 0x03, 0, 0, spec.get('stp_type', 0),
                       spec.get('stp_flags', 0), spec.get('root_prio', 0x8000),
                       mac_bytes(spec.get('root_addr', '02:00:00:00:00:01')), spec.get('root_cost', 4),
                       spec.get('sender_prio', 0x8000), mac_bytes(spec.get('sender_addr', '02:00:00:00:00:02')),
                       spec.get('port', 0x8001), spec.get('msg_age', 0), spec.get('max_age', 20 * 256),
                       spec.get('hello_time', 2 * 256), spec.get('forward_delay', 15 * 256))
    return bpdu + tag


ETHERTYPE = {'ipv4': 0x0800, 'ipv6': 0x86dd, 'arp': 0x0806, 'rarp': 0x8035}


def build(spec, index):
    tag = TAG + struct.pack('!I', index)
    kind = spec['kind']
    if kind == 'ipv4':
        body = _ipv4(spec, tag)
    elif kind == 'ipv6':
        body = _ipv6(spec, tag)
    elif kind in ('arp', 'rarp'):
        body = _arp(spec, tag)
    elif kind == 'stp':
        body = _stp(spec, tag)
    else:
        body = tag + bytes(40)
    if kind == 'stp':
        ether = struct.pack('!H', len(body))  # 802.3 length
    else:
        ether = struct.pack('!H', spec.get('ethertype', ETHERTYPE.get(kind, 0x88b5)))
    head = mac_bytes(spec['dst_mac']) + mac_bytes(spec['src_mac'])
    if 'vlan' in spec:
        head += struct.pack('!HH', 0x8100, spec['vlan'])
    frame = head + ether + body
    return frame + bytes(max(0, 60 - len(frame)))


# ---------------------------------------------------------------------------- battery

BROADCAST = 'ff:ff:ff:ff:ff:ff'
FOREIGN_MAC = '52:54:00:99:99:99'
FOREIGN_IP = '192.0.2.99'
FOREIGN_IP6 = '2001:db8:4e7::99'


def base_frames(me, peer, extra_ips=(), dhcp_server='192.0.2.1'):
    """(label, spec) for a guest ``me`` (mac, ip, ip6) talking to ``peer``."""
    frames = []
    own = dict(src_mac=me['mac'], dst_mac=peer['mac'])
    for proto, name in ((17, 'udp'), (6, 'tcp'), (1, 'icmp'), (2, 'igmp'), (50, 'esp'), (51, 'ah'), (132, 'sctp'),
                        (136, 'udplite')):
        for ip in (me['ip'],) + tuple(extra_ips):
            frames.append(('%s from %s' % (name, ip), dict(own, kind='ipv4', src_ip=ip, dst_ip=peer['ip'],
                                                           proto=proto)))
        frames.append(('%s spoofed ip' % name, dict(own, kind='ipv4', src_ip=FOREIGN_IP, dst_ip=peer['ip'],
                                                    proto=proto)))
    frames.append(('udp spoofed mac', dict(own, kind='ipv4', src_mac=FOREIGN_MAC, src_ip=me['ip'], dst_ip=peer['ip'])))
    frames.append(('udp tos', dict(own, kind='ipv4', src_ip=me['ip'], dst_ip=peer['ip'], tos=0xb8)))
    frames.append(('tcp ack to 22', dict(own, kind='ipv4', src_ip=me['ip'], dst_ip=peer['ip'], proto=6, dport=22,
                                         tcp_flags=0x10)))
    frames.append(('udp to 53', dict(own, kind='ipv4', src_ip=me['ip'], dst_ip=peer['ip'], dport=53)))
    for proto, name in ((17, 'udp6'), (6, 'tcp6'), (58, 'icmpv6'), (50, 'esp6'), (132, 'sctp6')):
        frames.append((name, dict(own, kind='ipv6', src_ip=me['ip6'], dst_ip=peer['ip6'], proto=proto)))
        frames.append((name + ' spoofed', dict(own, kind='ipv6', src_ip=FOREIGN_IP6, dst_ip=peer['ip6'],
                                               proto=proto)))
    frames.append(('icmpv6 router advert', dict(own, kind='ipv6', src_ip='fe80::1', dst_ip='ff02::1', proto=58,
                                                icmp_type=134, dst_mac='33:33:00:00:00:01')))
    frames.append(('dhcpv6 solicit', dict(own, kind='ipv6', src_ip='fe80::5054:ff:fe00:1', dst_ip='ff02::1:2',
                                          sport=546, dport=547, dst_mac='33:33:00:01:00:02')))
    arp = dict(own, kind='arp', dst_mac=BROADCAST, sha=me['mac'], spa=me['ip'], tha='00:00:00:00:00:00',
               tpa=peer['ip'])
    frames += [('arp request', arp), ('arp reply', dict(arp, op=2, dst_mac=peer['mac'], tha=peer['mac'])),
               ('arp spoofed spa', dict(arp, spa=FOREIGN_IP)), ('arp spoofed sha', dict(arp, sha=FOREIGN_MAC)),
               ('arp gratuitous', dict(arp, tpa=me['ip'])), ('arp foreign src', dict(arp, src_mac=FOREIGN_MAC)),
               ('arp ipv6 ptype', dict(arp, ptype=0x86dd))]
    for ip in extra_ips:
        frames.append(('arp from %s' % ip, dict(arp, spa=ip)))
    rarp = dict(own, kind='rarp', dst_mac=BROADCAST, op=3, sha=me['mac'], spa='0.0.0.0', tha=me['mac'],
                tpa='0.0.0.0')
    frames += [('rarp', rarp), ('rarp foreign', dict(rarp, src_mac=FOREIGN_MAC, sha=FOREIGN_MAC, tha=FOREIGN_MAC)),
               ('rarp reply', dict(rarp, op=4))]
    frames += [
        ('dhcp discover', dict(own, kind='ipv4', dst_mac=BROADCAST, src_ip='0.0.0.0', dst_ip='255.255.255.255',
                               sport=68, dport=67)),
        ('dhcp offer', dict(own, kind='ipv4', dst_mac=BROADCAST, src_ip=dhcp_server, dst_ip='255.255.255.255',
                            sport=67, dport=68)),
        ('broadcast udp', dict(own, kind='ipv4', dst_mac=BROADCAST, src_ip=me['ip'], dst_ip='192.0.2.255')),
        ('multicast udp', dict(own, kind='ipv4', dst_mac='01:00:5e:00:00:fb', src_ip=me['ip'],
                               dst_ip='224.0.0.251', dport=5353)),
        ('vlan 7', dict(own, kind='ipv4', vlan=7, src_ip=me['ip'], dst_ip=peer['ip'])),
        ('stp bpdu', dict(own, kind='stp', dst_mac='01:80:c2:00:00:00')),
        ('other ethertype', dict(own, kind='raw', ethertype=0x88b5)),
        ('ethertype 0x0835', dict(own, kind='raw', ethertype=0x0835)),
    ]
    return frames


def _first(text):
    """A concrete value inside an attribute's value (the start of a range)."""
    return text.split('-')[0].split(':')[0] if text and text.replace('.', '').isdigit() else text


def _ip(text, v6):
    if not text:
        return None
    try:
        return str(ipaddress.IPv6Address(text) if v6 else ipaddress.IPv4Address(text))
    except ValueError:
        return None


def _int(text, default=None):
    if text is None:
        return default
    try:
        return int(text, 0) if text.lower().startswith('0x') else int(text)
    except ValueError:
        return default


_L4_NUMBERS = {'tcp': 6, 'udp': 17, 'udplite': 136, 'esp': 50, 'ah': 51, 'icmp': 1, 'igmp': 2, 'sctp': 132,
               'icmpv6': 58, 'all': 17}


def rule_frame(inst, me, peer):
    """A frame matching a rule instance's values where it can (defaults from ``me``->``peer``), or None."""
    proto = inst.rule.protocol
    text = inst.text
    v6 = proto.endswith('-ipv6') or proto in ('ipv6', 'icmpv6')
    spec = dict(src_mac=text('srcmacaddr') or me['mac'], dst_mac=text('dstmacaddr') or peer['mac'])
    if proto in ('mac', 'vlan', 'none'):
        ethertype = _int(text('protocolid') or text('encap-protocol'), 0x0800)
        names = {'ipv4': 0x0800, 'ipv6': 0x86dd, 'arp': 0x0806, 'rarp': 0x8035, 'vlan': 0x8100}
        ethertype = names.get(str(text('protocolid') or text('encap-protocol') or '').lower(), ethertype)
        kind = {0x0800: 'ipv4', 0x86dd: 'ipv6', 0x0806: 'arp', 0x8035: 'rarp'}.get(ethertype, 'raw')
        spec.update(kind=kind, ethertype=ethertype, src_ip=me['ip6' if kind == 'ipv6' else 'ip'],
                    dst_ip=peer['ip6' if kind == 'ipv6' else 'ip'], sha=me['mac'], spa=me['ip'],
                    tha='00:00:00:00:00:00', tpa=peer['ip'])
        if proto == 'vlan':
            spec['vlan'] = _int(text('vlanid'), 7) & 0xfff
        return spec
    if proto == 'stp':
        spec.update(kind='stp', dst_mac='01:80:c2:00:00:00')
        for attr, key in (('flags', 'stp_flags'), ('root-priority', 'root_prio'), ('root-cost', 'root_cost'),
                          ('sender-priority', 'sender_prio'), ('port', 'port'), ('age', 'msg_age'),
                          ('max-age', 'max_age'), ('hello-time', 'hello_time'),
                          ('forward-delay', 'forward_delay')):
            if text(attr) is not None:
                spec[key] = _int(text(attr), 0)
        for attr, key in (('root-address', 'root_addr'), ('sender-address', 'sender_addr')):
            if text(attr):
                spec[key] = text(attr)
        return spec
    if proto in ('arp', 'rarp'):
        spec.update(kind=proto, dst_mac=text('dstmacaddr') or BROADCAST, htype=_int(text('hwtype'), 1),
                    ptype=_int(text('protocoltype'), 0x0800), op=_int(text('opcode'), 1 if proto == 'arp' else 3),
                    sha=text('arpsrcmacaddr') or me['mac'], tha=text('arpdstmacaddr') or '00:00:00:00:00:00',
                    spa=_ip(text('arpsrcipaddr'), False) or (me['ip'] if proto == 'arp' else '0.0.0.0'),
                    tpa=_ip(text('arpdstipaddr'), False) or (peer['ip'] if proto == 'arp' else '0.0.0.0'))
        if text('gratuitous') == 'true':
            spec['tpa'] = spec['spa']
        return spec
    # IP: the Ethernet-layer ip/ipv6 elements and the IP-layer protocols.
    src = _ip(text('srcipaddr') or text('srcipfrom'), v6) or me['ip6' if v6 else 'ip']
    dst = _ip(text('dstipaddr') or text('dstipfrom'), v6) or peer['ip6' if v6 else 'ip']
    if proto in ('ip', 'ipv6'):
        number = text('protocol')
        l4 = _L4_NUMBERS.get(number, _int(number, 17)) if number else 17
        tos = _int(text('dscp'), 0)  # ebtables compares the whole TOS byte
    else:
        l4 = _L4_NUMBERS[proto.replace('-ipv6', '')]
        tos = _int(text('dscp'), 0) << 2
    spec.update(kind='ipv6' if v6 else 'ipv4', src_ip=src, dst_ip=dst, proto=l4, tos=tos & 0xff,
                sport=_int(text('srcportstart'), 40000), dport=_int(text('dstportstart'), 41000))
    if text('type') is not None:
        spec['icmp_type'] = _int(text('type'), 8)
    if text('code') is not None:
        spec['icmp_code'] = _int(text('code'), 0)
    flags = text('flags')
    if flags and '/' in flags:
        bits = flags.split('/')[1]
        spec['tcp_flags'] = sum(v for k, v in (('FIN', 1), ('SYN', 2), ('RST', 4), ('PSH', 8), ('ACK', 16),
                                               ('URG', 32)) if k in bits.split(',') or bits == 'ALL')
    return spec


def swapped(spec):
    out = dict(spec)
    for first, second in (('src_mac', 'dst_mac'), ('src_ip', 'dst_ip'), ('sport', 'dport'), ('sha', 'tha'),
                          ('spa', 'tpa')):
        if first in spec and second in spec:
            out[first], out[second] = spec[second], spec[first]
    return out


def _bump_mac(text):
    octets = mac_bytes(text)
    return ':'.join('%02x' % b for b in octets[:5] + bytes([(octets[5] + 1) % 256]))


def _bump_ip(text):
    address = ipaddress.ip_address(text)
    return str(address + 1) if int(address) + 1 < (1 << address.max_prefixlen) else str(address - 1)


def variants(spec):
    """The spec with one value changed at a time (a near miss for each matched value)."""
    out = []
    for key in ('src_mac', 'src_ip', 'dst_ip', 'sport', 'dport', 'spa', 'sha', 'tpa', 'icmp_type', 'tos', 'op',
                'vlan', 'ptype', 'tcp_flags'):
        if key not in spec:
            continue
        value = spec[key]
        if key in ('src_mac', 'sha'):
            changed = _bump_mac(value)
        elif key in ('src_ip', 'dst_ip', 'spa', 'tpa'):
            changed = _bump_ip(value)
        else:
            changed = (value + 1) % (256 if key in ('icmp_type', 'tos', 'tcp_flags') else 4096 if key == 'vlan'
                                     else 65536)
        out.append(dict(spec, **{key: changed}))
    return out
