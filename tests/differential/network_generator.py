# -*- coding: utf-8 -*-
"""Seed-deterministic generator of libvirt ``<network>`` documents for the
randomised network differential (``network_suite.py``).

``NetworkGenerator(seed).case(index)`` is a :class:`NetworkCase`: one to three
networks started in order on one host. Each network draws a forward mode
(none/isolated, ``<forward/>``, nat, route, open), ``dev=`` or ``<interface>``,
``<nat>`` with address and port ranges and ``ipv6='yes'``, zero to three ``<ip>``
elements (IPv4 with prefix, netmask or the classful default; IPv6 with or
without prefix), DHCP ranges/hosts, TFTP, ``<network ipv6='yes'>``,
``<domain>``, ``<mtu>``, ``<dns>``, ``<mac>``, and a bridge name. Most draws
are valid for libvirt; a few are deliberately odd (port ranges at the edges,
the subnet's own network address, overlapping subnets, a second network on a
used subnet) so that refusals are compared too.

The same (seed, index) always gives the same case, whatever else ran before.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import xml.etree.ElementTree as ET

MODES = ('none', 'nat-empty', 'nat', 'route', 'open', 'isolated-explicit')
MODE_WEIGHTS = (3, 2, 6, 5, 2, 1)
BRIDGE_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789'


@dataclasses.dataclass(frozen=True)
class NetworkCase:
    index: int
    seed: int
    networks: tuple  # XML texts, in start order
    forward_devs: tuple  # uplink names the networks use (created on our side)
    # after all are started: ('destroy', name) or ('restart', changed XML of a started network)
    operations: tuple = ()

    def describe(self):
        return 'seed %d case %d (%d network%s%s)' % (
            self.seed, self.index, len(self.networks), '' if len(self.networks) == 1 else 's',
            ''.join(', then %s %s' % (op, _name_of(arg)) for op, arg in self.operations))


class NetworkGenerator:
    def __init__(self, seed):
        self.seed = seed

    def case(self, index):
        rnd = random.Random('%d:%d' % (self.seed, index))
        count = rnd.choices((1, 2, 3), weights=(6, 3, 1))[0]
        used_v4 = []
        used_v6 = []
        bridges = set()
        networks = []
        devs = set()
        for number in range(count):
            xml, dev = _network(rnd, 'nf%d-%d' % (index, number), used_v4, used_v6, bridges)
            networks.append(xml)
            if dev:
                devs.add(dev)
        operations = []
        if count > 1 and rnd.random() < 0.35:
            # life cycle: libvirt puts a restarted network's rules above the others,
            # a destroyed one's go (never the last one: libvirt keeps its private
            # chains for ever, we remove them with the last network, a documented difference)
            target = rnd.randrange(count)
            name = 'nf%d-%d' % (index, target)
            if rnd.random() < 0.6:
                bridge = ET.fromstring(networks[target]).find('bridge').get('name') or 'virbrx'
                xml, dev = _network(rnd, name, used_v4, used_v6, bridges - {bridge}, bridge=bridge)
                operations.append(('restart', xml))
                if dev:
                    devs.add(dev)
            else:
                operations.append(('destroy', name))
        return NetworkCase(index, self.seed, tuple(networks), tuple(sorted(devs)), tuple(operations))


def _name_of(arg):
    return arg if not arg.startswith('<') else ET.fromstring(arg).findtext('name')


# --------------------------------------------------------------------- pieces

def _bridge_name(rnd, bridges, wanted=None):
    if wanted:
        return wanted
    while True:
        kind = rnd.random()
        if kind < 0.4:
            name = 'virbr%d' % rnd.randrange(0, 200)
        elif kind < 0.8:
            name = 'br' + ''.join(rnd.choice(BRIDGE_CHARS) for _char in range(rnd.randrange(1, 8)))
        else:
            length = rnd.randrange(1, 16)
            name = rnd.choice('abcdefghijklmnopqrstuvwxyz') + ''.join(
                rnd.choice(BRIDGE_CHARS + '_.-') for _char in range(length - 1))
        # br0 is the oracle's own bridge (libvirt refuses a bridge that exists;
        # the module adopts it: create_bridge means "create if missing")
        if name not in bridges and name != 'br0':
            bridges.add(name)
            return name


def _dev_name(rnd):
    return rnd.choice(('eth0', 'eth1', 'ens3', 'enp1s0', 'uplink0', 'wan.5', 'bond0', 'e-x_1'))


def _v4_subnet(rnd, used):
    """(gateway address, prefix, network) not overlapping ``used`` (mostly)."""
    for _attempt in range(50):
        prefix = rnd.choices((8, 12, 16, 20, 22, 24, 25, 26, 28, 29, 30, 31, 32),
                             weights=(1, 1, 3, 1, 1, 10, 2, 1, 2, 1, 1, 1, 1))[0]
        base = rnd.choice(('10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10',
                           '198.18.0.0/15'))
        base = ipaddress.ip_network(base)
        if prefix < base.prefixlen:
            prefix = base.prefixlen
        span = 2 ** (prefix - base.prefixlen)
        net = ipaddress.ip_network('%s/%d' % (base.network_address + rnd.randrange(span) * 2 ** (32 - prefix),
                                              prefix))
        if any(net.overlaps(other) for other in used) and rnd.random() > 0.03:
            continue
        used.append(net)
        if net.num_addresses <= 2:
            host = net.network_address + rnd.randrange(net.num_addresses)
        elif rnd.random() < 0.03:
            host = net.network_address  # odd: the network address itself
        else:
            host = net.network_address + rnd.choice((1, 1, 1, net.num_addresses - 2,
                                                     rnd.randrange(1, net.num_addresses - 1)))
        return host, prefix, net
    raise RuntimeError('no free IPv4 subnet')


def _v6_subnet(rnd, used):
    for _attempt in range(50):
        prefix = rnd.choices((48, 56, 60, 64, 80, 96, 112, 120, 126, 127, 128),
                             weights=(1, 1, 1, 10, 1, 2, 1, 1, 1, 1, 1))[0]
        words = [0xfd00 | rnd.randrange(256), rnd.randrange(65536), rnd.randrange(65536),
                 rnd.randrange(65536)] + [rnd.randrange(65536) for _word in range(4)]
        value = 0
        for word in words:
            value = (value << 16) | word
        net = ipaddress.ip_network((value >> (128 - prefix) << (128 - prefix), prefix))
        if any(net.overlaps(other) for other in used) and rnd.random() > 0.03:
            continue
        used.append(net)
        host = net.network_address + (1 if net.num_addresses > 1 else 0)
        return host, prefix, net
    raise RuntimeError('no free IPv6 subnet')


def _v4_element(rnd, used, want_dhcp):
    host, prefix, net = _v4_subnet(rnd, used)
    ip = ET.Element('ip')
    style = rnd.random()
    if style < 0.45:
        ip.set('address', str(host))
        ip.set('prefix', str(prefix))
    elif style < 0.85 or prefix not in (8, 16, 24):
        ip.set('address', str(host))
        ip.set('netmask', str(net.netmask))
    else:
        # no prefix, no netmask: the classful default (only when it gives this prefix)
        first = int(host) >> 24
        default = 8 if first < 128 else 16 if first < 192 else 24 if first < 224 else 32
        ip.set('address', str(host))
        if default != prefix:
            ip.set('prefix', str(prefix))
    if rnd.random() < 0.05:
        ip.set('family', 'ipv4')
    _dhcp(rnd, ip, net, host, want_dhcp, ipv6=False)
    if rnd.random() < 0.2:
        ET.SubElement(ip, 'tftp', root='/tmp')
    return ip


def _v6_element(rnd, used, want_dhcp):
    host, prefix, net = _v6_subnet(rnd, used)
    ip = ET.Element('ip', family='ipv6', address=str(host))
    if prefix != 64 or rnd.random() < 0.7:
        ip.set('prefix', str(prefix))
    _dhcp(rnd, ip, net, host, want_dhcp and prefix == 64, ipv6=True)
    return ip


def _dhcp(rnd, ip, net, host, want_dhcp, ipv6):
    if not want_dhcp or net.num_addresses < 8:
        return
    dhcp = ET.SubElement(ip, 'dhcp')
    kind = rnd.random()
    hosts = [a for a in (net.network_address + 2, net.network_address + 3) if a != host]
    if kind < 0.7:
        last = net.network_address + min(net.num_addresses - 2, 200)
        ET.SubElement(dhcp, 'range', start=str(hosts[0]), end=str(last))
    if kind >= 0.5:
        if ipv6:
            ET.SubElement(dhcp, 'host', name='guest%d' % rnd.randrange(100), ip=str(hosts[-1]))
        else:
            ET.SubElement(dhcp, 'host', mac='52:54:00:%02x:%02x:%02x' % (
                rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)), ip=str(hosts[-1]))


def _forward(rnd, root, mode):
    """Adds ``<forward>``; returns (libvirt mode name, dev or None)."""
    if mode == 'none':
        return 'isolated', None
    if mode == 'isolated-explicit':
        ET.SubElement(root, 'forward', mode='none')
        return 'isolated', None
    forward = ET.SubElement(root, 'forward')
    real = 'nat' if mode == 'nat-empty' else mode
    if mode != 'nat-empty':
        forward.set('mode', mode)
    dev = None
    if real in ('nat', 'route') and rnd.random() < 0.35:
        dev = _dev_name(rnd)
        style = rnd.random()
        if style < 0.6:
            forward.set('dev', dev)
        else:
            if style < 0.8:
                forward.set('dev', dev)
            ET.SubElement(forward, 'interface', dev=dev)
    if real == 'nat' and rnd.random() < 0.6:
        _nat(rnd, forward)
    return real, dev


def _nat(rnd, forward):
    nat = ET.SubElement(forward, 'nat')
    if rnd.random() < 0.3:
        nat.set('ipv6', rnd.choice(('yes', 'yes', 'no')))
    if rnd.random() < 0.45:
        first = ipaddress.ip_address('203.0.113.0') + rnd.randrange(0, 200)
        last = first + rnd.choice((0, 0, 1, 5, 40))
        ET.SubElement(nat, 'address', start=str(first), end=str(last))
    if rnd.random() < 0.5:
        kind = rnd.random()
        if kind < 0.7:
            start = rnd.randrange(1, 60000)
            end = rnd.randrange(start + 1, 65536)
        elif kind < 0.8:
            start, end = 0, 0
        elif kind < 0.9:
            start, end = rnd.choice(((1, 65535), (0, 1023), (1024, 1025), (65534, 65535)))
        else:
            start = rnd.randrange(1, 65535)
            end = start  # libvirt refuses this at start
        ET.SubElement(nat, 'port', start=str(start), end=str(end))


def _odd_prefix_and_netmask(rnd, root):
    for ip in root.findall('ip'):
        if ip.get('prefix') and ip.get('family') != 'ipv6' and ':' not in ip.get('address'):
            ip.set('netmask', str(ipaddress.ip_network('0.0.0.0/%s' % ip.get('prefix')).netmask))
            ip.set('prefix', rnd.choice((ip.get('prefix'), '0')))
            return


def _odd_v6_form(rnd, root):
    for ip in root.findall('ip'):
        if ip.get('family') == 'ipv6':
            form = rnd.random()
            if form < 0.4:
                del ip.attrib['family']
            elif form < 0.7:
                ip.set('address', ip.get('address').upper())
            else:
                ip.set('address', ipaddress.ip_address(ip.get('address')).exploded)
            return


def _odd_tftp(rnd, root):
    for ip in root.findall('ip'):
        if ip.get('family') != 'ipv6':
            for old in ip.findall('tftp'):
                ip.remove(old)
            ET.SubElement(ip, 'tftp', **({'root': ''} if rnd.random() < 0.3 else {}))
            return


def _odd_nat(rnd, root):
    forward = root.find('forward')
    if forward is None:
        return
    nat = forward.find('nat')
    if nat is None:
        nat = ET.SubElement(forward, 'nat')  # an error unless the mode is nat
    kind = rnd.random()
    if kind < 0.4:
        ET.SubElement(nat, 'port', **{rnd.choice(('start', 'end')): '2000'})
    elif kind < 0.6:
        nat.set('ipv6', rnd.choice(('true', 'YES', '')))
    elif kind < 0.8:
        ET.SubElement(nat, 'address', start='203.0.113.%d' % rnd.randrange(1, 9))
    else:
        ET.SubElement(nat, 'port', start='65535', end=rnd.choice(('65536', '1', '65535')))


def _odd_v4_text(rnd, root):
    for ip in root.findall('ip'):
        if ip.get('family') != 'ipv6' and ':' not in ip.get('address'):
            kind = rnd.random()
            if kind < 0.3:
                first, rest = ip.get('address').split('.', 1)
                ip.set('address', '0%s.%s' % (first, rest))
            elif kind < 0.6 and ip.get('prefix'):
                ip.set('prefix', rnd.choice(('0', ' ', '+')) + ip.get('prefix'))
            else:
                ip.set('address', ' %s ' % ip.get('address'))
            return


def _odd_second_dhcp(rnd, root):
    v4 = [ip for ip in root.findall('ip') if ip.get('family') != 'ipv6' and ':' not in ip.get('address')]
    if len(v4) > 1:
        net = ipaddress.ip_interface('%s/%s' % (v4[1].get('address'), v4[1].get('prefix') or 24)).network
        if net.num_addresses > 8:
            dhcp = ET.SubElement(v4[1], 'dhcp')
            ET.SubElement(dhcp, 'range', start=str(net.network_address + 2), end=str(net.network_address + 5))
    del rnd


def _odd_root(rnd, root):
    kind = rnd.random()
    if kind < 0.3:
        root.set('ipv6', rnd.choice(('on', 'true', '')))
    elif kind < 0.6:
        dns = ET.SubElement(root, 'dns', enable='no')
        ET.SubElement(dns, 'forwarder', addr='192.0.2.53')
    else:
        del root.find('bridge').attrib['name']  # libvirt picks a free virbrN


ODDITIES = (_odd_prefix_and_netmask, _odd_v6_form, _odd_tftp, _odd_nat, _odd_v4_text, _odd_second_dhcp,
            _odd_root)


def _oddity(rnd, root):
    """One input at an edge of what libvirt accepts (most are refused by both)."""
    rnd.choice(ODDITIES)(rnd, root)


def _network(rnd, name, used_v4, used_v6, bridges, bridge=None):
    """One network XML text and its forward dev (or None); ``bridge``: its name."""
    root = ET.Element('network')
    ET.SubElement(root, 'name').text = name
    mode = rnd.choices(MODES, weights=MODE_WEIGHTS)[0]
    dev = _forward(rnd, root, mode)[1]
    bridge_el = ET.SubElement(root, 'bridge', name=_bridge_name(rnd, bridges, bridge))
    if rnd.random() < 0.5:
        bridge_el.set('stp', rnd.choice(('on', 'off')))
        bridge_el.set('delay', str(rnd.choice((0, 0, 2))))
    if rnd.random() < 0.3:
        ET.SubElement(root, 'mac', address='52:54:00:%02x:%02x:%02x' % (
            rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    if rnd.random() < 0.3:
        ET.SubElement(root, 'domain', name=rnd.choice(('example.org', 'lab', 'vm.test')))
    if rnd.random() < 0.2:
        ET.SubElement(root, 'mtu', size=str(rnd.choice((1400, 1500, 9000))))
    if rnd.random() < 0.15:
        dns = ET.SubElement(root, 'dns')
        if rnd.random() < 0.5:
            dns.set('enable', 'no')
        else:
            ET.SubElement(dns, 'forwarder', addr='192.0.2.53')
    if rnd.random() < 0.2:
        root.set('ipv6', 'yes')
    n_v4 = rnd.choices((0, 1, 2, 3), weights=(2, 10, 3, 1))[0]
    n_v6 = rnd.choices((0, 1, 2), weights=(6, 4, 1))[0]
    elements = [_v4_element(rnd, used_v4, want_dhcp=(i == 0 and rnd.random() < 0.6))
                for i in range(n_v4)]
    elements += [_v6_element(rnd, used_v6, want_dhcp=(i == 0 and rnd.random() < 0.4))
                 for i in range(n_v6)]
    rnd.shuffle(elements)
    root.extend(elements)
    if rnd.random() < 0.2:
        _oddity(rnd, root)
    ET.indent(root)
    return ET.tostring(root, encoding='unicode') + '\n', dev
