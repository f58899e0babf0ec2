# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model of a libvirt virtual network, built from module options or from a
libvirt ``<network>`` XML document.

Both paths produce the same immutable :class:`NetworkSpec`; the compilers
(``network_compile_iptables``, ``network_compile_nftables``) only read it.
Every validation error raises :class:`NetworkSpecError` whose message names the
offending value and where it came from.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.interfaces import interface_name_problem
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.xml_checks import (
    route_problem, vlan_problem)

try:
    from lxml import etree
    HAS_LXML = True
    LXML_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - reported by the module
    etree = None
    HAS_LXML = False
    LXML_IMPORT_ERROR = _exc

FORWARD_MODES = ('isolated', 'nat', 'route', 'open')
# libvirt forward modes that use a bridge/device libvirt does not firewall.
_NO_FIREWALL_MODES = ('bridge', 'private', 'vepa', 'passthrough', 'hostdev')
DEFAULT_NAT_PORTS = (1024, 65535)

# Linux dev_valid_name(): 1..15 bytes, not "." or "..", no "/", ":" or whitespace.
# We are stricter (letters, digits, "_", ".", "-") so that a name is always one
# plain word in iptables/nft/tc command lines.
_NET_NAME = re.compile(r'^[A-Za-z0-9_.+-]{1,64}$')


class NetworkSpecError(NetfilterError, ValueError):
    """Invalid network definition (the message says what and where)."""


@dataclasses.dataclass(frozen=True)
class IpSpec:
    family: str  # 'ipv4' or 'ipv6'
    address: str  # the host (gateway) address on the bridge
    prefix: int
    dhcp: bool = False  # has DHCP ranges/hosts (IPv4: adds the CHECKSUM rule)
    tftp: bool = False

    @property
    def network(self):
        """The masked network in CIDR form, as libvirt writes it in rules."""
        return str(ipaddress.ip_interface('%s/%d' % (self.address, self.prefix)).network)

    @property
    def is_ipv6(self):
        return self.family == 'ipv6'


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    name: str
    bridge: str
    forward_mode: str = 'isolated'
    forward_dev: str | None = None
    ips: tuple = ()  # tuple of IpSpec, document order
    nat_ipv6: bool = False
    nat_addresses: tuple | None = None  # (start, end) IPv4 strings
    nat_ports: tuple | None = None  # (start, end) ints; None = libvirt default
    dns: bool = True
    zone: str | None = None
    ipv6_no_gateway: bool = False  # <network ipv6='yes'>

    @property
    def has_rules(self):
        """``open`` networks get no firewall rules at all (libvirt)."""
        return self.forward_mode != 'open'

    @property
    def ipv4s(self):
        return tuple(ip for ip in self.ips if not ip.is_ipv6)

    @property
    def ipv6s(self):
        return tuple(ip for ip in self.ips if ip.is_ipv6)

    @property
    def ipv6_enabled(self):
        return bool(self.ipv6s) or self.ipv6_no_gateway

    def port_range(self):
        if self.nat_ports is None or self.nat_ports == (0, 0):
            return DEFAULT_NAT_PORTS
        return self.nat_ports

    def to_dict(self):
        data = dataclasses.asdict(self)
        data['ips'] = [dict(dataclasses.asdict(ip), network=ip.network) for ip in self.ips]
        return data

    @classmethod
    def from_dict(cls, data):
        """Rebuild from :meth:`to_dict` output (the stored state); validates again."""
        try:
            ips = tuple(IpSpec(family=i['family'], address=i['address'], prefix=int(i['prefix']),
                               dhcp=bool(i.get('dhcp')), tftp=bool(i.get('tftp')))
                        for i in data.get('ips') or ())
            spec = cls(
                name=data['name'], bridge=data['bridge'], forward_mode=data['forward_mode'],
                forward_dev=data.get('forward_dev'), ips=ips, nat_ipv6=bool(data.get('nat_ipv6')),
                nat_addresses=tuple(data['nat_addresses']) if data.get('nat_addresses') else None,
                nat_ports=tuple(data['nat_ports']) if data.get('nat_ports') else None,
                dns=bool(data.get('dns', True)), zone=data.get('zone'),
                ipv6_no_gateway=bool(data.get('ipv6_no_gateway')))
        except (KeyError, TypeError, ValueError) as exc:
            raise NetworkSpecError('stored network definition is malformed: %s' % exc)
        return validate(spec, where='stored network %r' % data.get('name'))


# --------------------------------------------------------------------------- helpers

def _bool(value, where):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ('yes', 'true', 'on', '1'):
        return True
    if isinstance(value, str) and value.lower() in ('no', 'false', 'off', '0'):
        return False
    raise NetworkSpecError('%s: %r is not a boolean' % (where, value))


def _int(value, where):
    if isinstance(value, bool):
        raise NetworkSpecError('%s: %r is not an integer' % (where, value))
    try:
        return int(str(value).strip(), 10)
    except (TypeError, ValueError):
        raise NetworkSpecError('%s: %r is not an integer' % (where, value))


def _address(value, where):
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise NetworkSpecError('%s: %r is not an IP address' % (where, value))


def check_ifname(value, what):
    problem = interface_name_problem(value)
    if problem is not None:
        raise NetworkSpecError('%s %r is not a valid interface name: %s' % (what, value, problem))
    return value


def _prefix_from_netmask(netmask, where):
    try:
        return ipaddress.IPv4Network('0.0.0.0/%s' % netmask).prefixlen
    except ValueError:
        raise NetworkSpecError('%s: netmask %r is not a valid IPv4 netmask' % (where, netmask))


def _default_prefix(address, where):
    """libvirt's classful default for an IPv4 address without prefix or netmask."""
    addr = _address(address, where)
    if addr.version != 4:
        return 0  # the family check (make_ip) names the problem
    prefix = _classful_prefix(addr)
    if prefix is None:
        raise NetworkSpecError('%s: address %s has no default prefix (class D/E); give a prefix or a netmask'
                               % (where, address))
    return prefix


def _classful_prefix(addr):
    first = int(addr) >> 24
    if int(addr) == 0:
        return 0
    if first < 128:
        return 8
    if first < 192:
        return 16
    if first < 224:
        return 24
    return None  # class D/E: libvirt has no default prefix and refuses the network (N15)


def make_ip(family, address, prefix, dhcp, tftp, where, dhcp_ranges=()):
    """Validated :class:`IpSpec`; ``dhcp_ranges`` are (start, end) pairs that
    must lie inside the address's subnet."""
    addr = _address(address, where + ' address')
    want_v6 = family == 'ipv6'
    if (addr.version == 6) != want_v6:
        raise NetworkSpecError('%s: address %s is not an %s address' % (where, addr, family.upper()))
    maxlen = 128 if want_v6 else 32
    if not 0 <= prefix <= maxlen:
        raise NetworkSpecError('%s: prefix %d is out of range for %s (0-%d)'
                               % (where, prefix, family.upper(), maxlen))
    net = ipaddress.ip_interface('%s/%d' % (addr, prefix)).network
    if not want_v6 and prefix < 31 and addr in (net.network_address, net.broadcast_address):
        raise NetworkSpecError('%s: address %s is not a host address inside its subnet %s '
                               '(it is the %s address)'
                               % (where, addr, net, 'network' if addr == net.network_address
                                  else 'broadcast'))
    for start, end in dhcp_ranges:
        first = _address(start, where + ' dhcp range start')
        last = _address(end, where + ' dhcp range end')
        for label, value in (('start', first), ('end', last)):
            if value.version != addr.version or value not in net:
                raise NetworkSpecError('%s: dhcp range %s %s is not inside the subnet %s of %s'
                                       % (where, label, value, net, addr))
        if int(first) > int(last):
            raise NetworkSpecError('%s: dhcp range start %s is after its end %s' % (where, first, last))
    if tftp and want_v6:
        raise NetworkSpecError('%s: tftp is only supported on IPv4 addresses' % where)
    return IpSpec(family=family, address=str(addr), prefix=prefix, dhcp=bool(dhcp or dhcp_ranges),
                  tftp=bool(tftp))


def validate(spec, where='network'):
    """Checks that need the whole network; returns ``spec`` unchanged."""
    if not _NET_NAME.match(spec.name or ''):
        raise NetworkSpecError('%s: name %r is not valid (1-64 characters of letters, digits, '
                               '"_", ".", "+" and "-")' % (where, spec.name))
    if spec.forward_mode not in FORWARD_MODES:
        raise NetworkSpecError('%s: unknown forward mode %r (expected one of %s)'
                               % (where, spec.forward_mode, ', '.join(FORWARD_MODES)))
    check_ifname(spec.bridge, '%s: bridge' % where)
    if spec.forward_dev is not None:
        check_ifname(spec.forward_dev, '%s: forward_dev' % where)
        if spec.forward_mode in ('isolated', 'open'):
            raise NetworkSpecError('%s: forward_dev %r is not allowed with forward mode %s'
                                   % (where, spec.forward_dev, spec.forward_mode))
        if spec.forward_dev == spec.bridge:
            raise NetworkSpecError('%s: forward_dev must differ from the bridge %r' % (where, spec.bridge))
    if spec.forward_mode != 'nat' and (spec.nat_addresses or spec.nat_ports or spec.nat_ipv6):
        raise NetworkSpecError('%s: nat settings are only allowed with forward mode nat (got %s)'
                               % (where, spec.forward_mode))
    if spec.nat_addresses:
        start = _address(spec.nat_addresses[0], where + ': nat address start')
        end = _address(spec.nat_addresses[1], where + ': nat address end')
        if start.version != 4 or end.version != 4:
            raise NetworkSpecError('%s: nat addresses must be IPv4 (got %s-%s)' % (where, start, end))
        if int(start) > int(end):
            raise NetworkSpecError('%s: nat address start %s is after end %s' % (where, start, end))
    if spec.nat_ports is not None and spec.nat_ports != (0, 0):
        start, end = spec.nat_ports
        if not (0 <= start < end <= 65535):
            raise NetworkSpecError('%s: nat port range %d-%d is invalid (need 0 <= start < end <= 65535)'
                                   % (where, start, end))
    if spec.forward_mode in ('nat', 'route', 'open') and not spec.ips:
        # libvirt: "<mode> forwarding requested, but no IP address provided"
        raise NetworkSpecError('%s: forward mode %s needs at least one IPv4 or IPv6 address '
                               '(libvirt refuses such a network)' % (where, spec.forward_mode))
    nets = []
    for ip in spec.ips:
        net = ipaddress.ip_network(ip.network)
        for other in nets:
            if net.overlaps(other):
                raise NetworkSpecError('%s: subnets %s and %s overlap' % (where, other, net))
        nets.append(net)
    if sum(1 for ip in spec.ips if ip.dhcp and not ip.is_ipv6) > 1:
        raise NetworkSpecError('%s: DHCP is allowed on one IPv4 address only' % where)
    if sum(1 for ip in spec.ips if ip.dhcp and ip.is_ipv6) > 1:
        raise NetworkSpecError('%s: DHCP is allowed on one IPv6 address only' % where)
    return spec


def check_no_overlap(spec, others):
    """``others``: the other stored networks. Two networks may share neither a
    bridge nor overlapping subnets."""
    for other in others:
        if other.name == spec.name:
            continue
        if other.bridge == spec.bridge:
            raise NetworkSpecError('network %r: bridge %s is already used by network %r'
                                   % (spec.name, spec.bridge, other.name))
        for ip in spec.ips:
            for oip in other.ips:
                if ip.family == oip.family and ipaddress.ip_network(ip.network).overlaps(
                        ipaddress.ip_network(oip.network)):
                    raise NetworkSpecError('network %r: subnet %s overlaps subnet %s of network %r'
                                           % (spec.name, ip.network, oip.network, other.name))


# --------------------------------------------------------------------------- options

def _as_list(value, where):
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise NetworkSpecError('%s must be a dictionary or a list of dictionaries, got %r' % (where, value))


_IP_KEYS = frozenset(('address', 'prefix', 'netmask', 'dhcp', 'dhcp_range', 'tftp'))


def _ip_from_option(family, entry, where):
    if not isinstance(entry, dict):
        raise NetworkSpecError('%s must be a dictionary, got %r' % (where, entry))
    unknown = sorted(set(entry) - _IP_KEYS)
    if unknown:
        raise NetworkSpecError('%s: unknown key(s) %s (allowed: %s)'
                               % (where, ', '.join(unknown), ', '.join(sorted(_IP_KEYS))))
    address = entry.get('address')
    if not address:
        raise NetworkSpecError('%s: address is required' % where)
    address = str(address)
    prefix = entry.get('prefix')
    if '/' in address:
        address, _sep, suffix = address.partition('/')
        if prefix is not None and _int(prefix, where + ' prefix') != _int(suffix, where + ' address prefix'):
            raise NetworkSpecError('%s: address prefix /%s disagrees with prefix %s' % (where, suffix, prefix))
        prefix = suffix
    if prefix is None and entry.get('netmask') and family == 'ipv4':
        prefix = _prefix_from_netmask(entry['netmask'], where)
    if prefix is None:
        prefix = 64 if family == 'ipv6' else _default_prefix(address, where + ' address')
    prefix = _int(prefix, where + ' prefix')
    ranges = []
    if entry.get('dhcp_range') is not None:
        rng = entry['dhcp_range']
        if not isinstance(rng, dict) or not rng.get('start') or not rng.get('end'):
            raise NetworkSpecError('%s: dhcp_range needs start and end' % where)
        ranges.append((rng['start'], rng['end']))
    dhcp = _bool(entry.get('dhcp', False), where + ' dhcp')
    tftp = _bool(entry.get('tftp', False), where + ' tftp')
    return make_ip(family, address, prefix, dhcp, tftp, where, ranges)


def spec_from_options(params):
    """Model from the module's options (``params`` as AnsibleModule gives them)."""
    name = params.get('name')
    bridge = params.get('bridge')
    if not bridge:
        raise NetworkSpecError('network %r: bridge is required when xml is not given' % name)
    mode = params.get('forward_mode') or 'isolated'
    ips = []
    for family in ('ipv4', 'ipv6'):
        for index, entry in enumerate(_as_list(params.get(family), family)):
            ips.append(_ip_from_option(family, entry, '%s[%d]' % (family, index)))
    nat = params.get('nat') or {}
    nat_addresses = None
    nat_ports = None
    nat_ipv6 = False
    if nat:
        addresses = nat.get('addresses')
        if addresses:
            if not addresses.get('start') or not addresses.get('end'):
                raise NetworkSpecError('nat.addresses needs both start and end')
            nat_addresses = (str(addresses['start']), str(addresses['end']))
        ports = nat.get('ports')
        if ports:
            if ports.get('start') is None or ports.get('end') is None:
                raise NetworkSpecError('nat.ports needs both start and end')
            nat_ports = (_int(ports['start'], 'nat.ports.start'), _int(ports['end'], 'nat.ports.end'))
        nat_ipv6 = _bool(nat.get('ipv6') or False, 'nat.ipv6')
    spec = NetworkSpec(
        name=name, bridge=bridge, forward_mode=mode, forward_dev=params.get('forward_dev') or None,
        ips=tuple(ips), nat_ipv6=nat_ipv6, nat_addresses=nat_addresses, nat_ports=nat_ports,
        dns=_bool(params.get('dns', True) if params.get('dns') is not None else True, 'dns'),
        zone=params.get('zone') or None,
        ipv6_no_gateway=_bool(params.get('ipv6_no_gateway') or False, 'ipv6_no_gateway'))
    return validate(spec, where='network %r' % name)


# --------------------------------------------------------------------------- XML

def _attr(element, name):
    # not stripped: libvirt reads attributes as written (' 10.0.0.1' is no address)
    return element.get(name)


def _xml_forward(root, where):
    """``(mode, forward_dev, nat_addresses, nat_ports, nat_ipv6)`` of ``<forward>``."""
    mode = 'isolated'
    forward_dev = None
    nat_addresses = None
    nat_ports = None
    nat_ipv6 = False
    forward = root.find('forward')
    if forward is not None:
        raw_mode = _attr(forward, 'mode') or 'nat'
        if raw_mode in _NO_FIREWALL_MODES:
            raise NetworkSpecError('%s: forward mode %r uses no libvirt bridge firewall and is not '
                                   'supported by this module (supported: %s)'
                                   % (where, raw_mode, ', '.join(FORWARD_MODES)))
        if raw_mode == 'none':
            raw_mode = 'isolated'
        mode = raw_mode
        forward_dev = _attr(forward, 'dev') or None  # libvirt: dev='' is no dev
        iface_devs = [_attr(i, 'dev') for i in forward.findall('interface')]
        if iface_devs:
            if forward_dev and forward_dev != iface_devs[0]:
                raise NetworkSpecError('%s: <forward dev=%r> disagrees with <interface dev=%r>'
                                       % (where, forward_dev, iface_devs[0]))
            if len(iface_devs) > 1 and mode in ('nat', 'route'):
                raise NetworkSpecError('%s: forward mode %s allows only one <interface>' % (where, mode))
            forward_dev = forward_dev or iface_devs[0]
        if mode == 'isolated':
            forward_dev = None  # libvirt accepts and ignores a dev for mode='none'
        nat_addresses, nat_ports, nat_ipv6 = _xml_nat(forward, mode, where)
    return mode, forward_dev, nat_addresses, nat_ports, nat_ipv6


def _only_one(parent, tag, where):
    """The single ``tag`` child of ``parent`` or None; libvirt refuses several."""
    found = parent.findall(tag)
    if len(found) > 1:
        raise NetworkSpecError('%s: only one <%s> element is allowed in <%s> (found %d)'
                               % (where, tag, parent.tag, len(found)))
    return found[0] if found else None


def _yes_no(element, name, where):
    value = _attr(element, name)
    if value not in (None, 'yes', 'no'):
        raise NetworkSpecError("%s: <%s %s=%r> must be 'yes' or 'no'" % (where, element.tag, name, value))
    return value == 'yes'


def _xml_nat(forward, mode, where):
    """``(nat_addresses, nat_ports, nat_ipv6)`` of ``<forward><nat>``, checked as
    libvirt checks them when the network is defined."""
    nat = _only_one(forward, 'nat', where + ' <forward>')
    if nat is None:
        return None, None, False
    if mode != 'nat':
        raise NetworkSpecError("%s: <nat> is only allowed in <forward mode='nat'> (mode is %s)" % (where, mode))
    nat_addresses = None
    nat_ports = None
    address = _only_one(nat, 'address', where + ' <forward>')
    if address is not None:
        start, end = _attr(address, 'start'), _attr(address, 'end')
        if not start or not end:
            raise NetworkSpecError('%s: <nat><address> needs both start and end' % where)
        nat_addresses = (start, end)
    port = _only_one(nat, 'port', where + ' <forward>')
    if port is not None:
        values = []
        for name in ('start', 'end'):
            if _attr(port, name) is None:
                raise NetworkSpecError('%s: <nat><port> needs both start and end (%s is missing)' % (where, name))
            values.append(_int(_attr(port, name), '%s <nat><port %s>' % (where, name)))
        nat_ports = tuple(values)
    return nat_addresses, nat_ports, _yes_no(nat, 'ipv6', where + ' <forward>')


def _xml_ip(ip_el, index, where):
    """One ``<ip>`` element as an address of the network."""
    ip_where = '%s <ip> #%d' % (where, index + 1)
    family = _attr(ip_el, 'family') or None
    address = _attr(ip_el, 'address')
    if not address:
        raise NetworkSpecError('%s: address is required' % ip_where)
    if family is None:
        if ':' in address:
            # libvirt: "no family specified for non-IPv4 address"
            raise NetworkSpecError("%s: address %s is IPv6 but the element has no family='ipv6'"
                                   % (ip_where, address))
        family = 'ipv4'
    if family not in ('ipv4', 'ipv6'):
        raise NetworkSpecError('%s: unknown family %r' % (ip_where, family))
    prefix_text = _attr(ip_el, 'prefix')
    netmask = _attr(ip_el, 'netmask')
    # prefix='' is an error for libvirt, a missing prefix means 0 ("use the netmask or default")
    prefix = _int(prefix_text, ip_where + ' prefix') if prefix_text is not None else 0
    if prefix < 0:
        raise NetworkSpecError('%s: prefix %d is out of range' % (ip_where, prefix))
    if prefix > 0 and netmask:
        raise NetworkSpecError('%s: prefix %d and netmask %s are both given (libvirt allows only one)'
                               % (ip_where, prefix, netmask))
    if prefix == 0:
        # libvirt: a prefix > 0 wins, else the netmask, else the default.
        if netmask:
            if family == 'ipv6':
                raise NetworkSpecError('%s: netmask is not allowed for IPv6' % ip_where)
            prefix = _prefix_from_netmask(netmask, ip_where)
        else:
            prefix = 64 if family == 'ipv6' else _default_prefix(address, ip_where)
    dhcp_el = ip_el.find('dhcp')
    ranges = []
    has_hosts = False
    if dhcp_el is not None:
        for rng in dhcp_el.findall('range'):
            ranges.append((_attr(rng, 'start'), _attr(rng, 'end')))
        has_hosts = dhcp_el.find('host') is not None
    # libvirt serves (and opens) TFTP only for a <tftp> with a non-empty root
    tftp_el = ip_el.find('tftp')
    tftp = tftp_el is not None and bool(_attr(tftp_el, 'root'))
    return make_ip(family, address, prefix, has_hosts, tftp, ip_where, ranges)


def _xml_dns(dns_el, where):
    """Whether DNS is enabled; libvirt refuses records in a disabled ``<dns>``."""
    if dns_el is None or _attr(dns_el, 'enable') is None:
        return True
    enabled = _yes_no(dns_el, 'enable', where)
    records = [child.tag for child in dns_el if child.tag in ('forwarder', 'host', 'srv', 'txt')]
    if not enabled and records:
        raise NetworkSpecError("%s: <dns enable='no'> must not contain <%s> (libvirt refuses records in "
                               "a disabled DNS)" % (where, records[0]))
    return enabled


def spec_from_xml(text, zone=None):
    """Model from a libvirt ``<network>`` document (string or bytes)."""
    if not HAS_LXML:
        raise NetworkSpecError('lxml is required to parse network XML')
    if isinstance(text, str):
        text = text.encode('utf-8')
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    try:
        root = etree.fromstring(text, parser)
    except etree.XMLSyntaxError as exc:
        raise NetworkSpecError('network XML is not well-formed: %s' % exc)
    if root.tag != 'network':
        raise NetworkSpecError('network XML: root element is <%s>, expected <network>' % root.tag)
    name = root.findtext('name')
    name = name.strip() if name else None
    if not name:
        raise NetworkSpecError('network XML: <name> is missing')
    where = 'network XML %r' % name
    bridge_el = root.find('bridge')
    bridge = _attr(bridge_el, 'name') if bridge_el is not None else None
    if not bridge:
        raise NetworkSpecError('%s: <bridge name=...> is required' % where)
    xml_zone = _attr(bridge_el, 'zone')

    mode, forward_dev, nat_addresses, nat_ports, nat_ipv6 = _xml_forward(root, where)
    ips = [_xml_ip(ip_el, index, where) for index, ip_el in enumerate(root.findall('ip'))]
    dns = _xml_dns(root.find('dns'), where)
    problem = route_problem(root, ips) or vlan_problem(root)
    if problem:
        raise NetworkSpecError('%s: %s' % (where, problem))
    spec = NetworkSpec(
        name=name, bridge=bridge, forward_mode=mode, forward_dev=forward_dev, ips=tuple(ips),
        nat_ipv6=nat_ipv6, nat_addresses=nat_addresses, nat_ports=nat_ports, dns=dns,
        zone=zone or xml_zone, ipv6_no_gateway=bool(root.get('ipv6')) and _yes_no(root, 'ipv6', where))
    return validate(spec, where=where)
