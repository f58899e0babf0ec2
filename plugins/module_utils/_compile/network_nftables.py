# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A virtual network's host rules for libvirt's nftables layout.

libvirt (>= 10) keeps its rules in tables of its own, ``table ip libvirt_network``
and ``table ip6 libvirt_network``, with a ``forward`` base chain that jumps to
``guest_cross``, ``guest_input`` and ``guest_output``, and a ``guest_nat``
postrouting chain. It issues ``nft -ae insert rule ...`` per rule (so, like
iptables, a chain's final order is the reverse of issue order) and a ``tc``
checksum filter on the bridge.

Like the iptables compiler this module offers libvirt's command stream for
one network (conformance) and the resulting tables for any number of networks
(:class:`NftRuleset`), which renders as one ``nft -f`` script.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.tc import tc_filter_argv, tc_qdisc_argv

TABLE = 'libvirt_network'
FAMILIES = ('ip', 'ip6')
# (chain, base-chain spec) in libvirt's creation order; jumps from 'forward'
# are inserted at the top in this order, so 'forward' ends cross, input, output.
CHAIN_SPECS = (
    ('forward', '{ type filter hook forward priority 0; policy accept; }'),
    ('guest_output', None),
    ('guest_input', None),
    ('guest_cross', None),
    ('guest_nat', '{ type nat hook postrouting priority 100; policy accept; }'),
)
_JUMPED = ('guest_output', 'guest_input', 'guest_cross')
_IFNAME_KEYWORDS = frozenset(('iif', 'oif', 'iifname', 'oifname'))


@dataclasses.dataclass(frozen=True)
class NftInsert:
    family: str
    chain: str
    args: tuple

    def argv(self):
        return ('nft', '-ae', 'insert', 'rule', self.family, TABLE, self.chain) + self.args


@dataclasses.dataclass(frozen=True)
class NftChain:
    name: str
    spec: str | None = None  # base-chain "{ type ... }" or None for a regular chain
    rules: tuple = ()


@dataclasses.dataclass(frozen=True)
class NftTable:
    family: str
    name: str
    chains: tuple = ()

    def chain(self, name):
        for chain in self.chains:
            if chain.name == name:
                return chain
        return None


@dataclasses.dataclass(frozen=True)
class NftRuleset:
    tables: tuple = ()

    def table(self, family):
        for table in self.tables:
            if table.family == family:
                return table
        return None

    def render(self):
        """``nft -f`` script that creates these tables on a host that has none
        of them ('' if empty)."""
        return ''.join(render_table(t) for t in self.tables)


def private_table_commands():
    """libvirt's one-time setup (``base.nftables``) on a host without the tables."""
    commands = []
    for family in FAMILIES:
        commands.append(('nft', 'list', 'table', family, TABLE))
        commands.append(('nft', 'add', 'table', family, TABLE))
        for name, spec in CHAIN_SPECS:
            commands.append(('nft', 'add', 'chain', family, TABLE, name) + ((spec,) if spec else ()))
            if name in _JUMPED:
                commands.append(('nft', 'insert', 'rule', family, TABLE, 'forward', 'counter', 'jump', name))
    return commands


def tc_commands(spec):
    """The DHCP checksum fix libvirt's nftables backend puts on the bridge."""
    br = spec.bridge
    return (
        ('tc', 'qdisc', 'show', 'dev', br, 'handle', '1:'),
        tc_qdisc_argv(br),
        tc_filter_argv(br, 'add'),
    )


def _ins(family, chain, *args):
    return NftInsert(family, chain, tuple(args))


def _general(family, br):
    return [
        _ins(family, 'guest_output', 'iif', br, 'counter', 'reject'),
        _ins(family, 'guest_input', 'oif', br, 'counter', 'reject'),
        _ins(family, 'guest_cross', 'iif', br, 'oif', br, 'counter', 'accept'),
    ]


def nat_targets(spec, ipv6):
    start, end = spec.port_range()
    ports = '%d-%d' % (start, end)
    if spec.nat_addresses and not ipv6:
        addr = '%s-%s' % spec.nat_addresses
        return ('snat', 'to', addr), ('snat', 'to', '%s:%s' % (addr, ports))
    return ('masquerade',), ('masquerade', 'to', ':' + ports)


def _per_ip(spec, ip):
    family = 'ip6' if ip.is_ipv6 else 'ip'
    net = ip.network
    br = spec.bridge
    dev_out = ('oifname', spec.forward_dev) if spec.forward_dev else ()
    dev_in = ('iifname', spec.forward_dev) if spec.forward_dev else ()
    masquerade = spec.forward_mode == 'nat' and (not ip.is_ipv6 or spec.nat_ipv6)
    if spec.forward_mode not in ('nat', 'route'):
        return []
    out = [_ins(family, 'guest_output', family, 'saddr', net, 'iif', br, *(dev_out + ('counter', 'accept')))]
    if not masquerade:
        out.append(_ins(family, 'guest_input', family, 'daddr', net, *(dev_in + ('oif', br, 'counter', 'accept'))))
        return out
    target_all, target_ports = nat_targets(spec, ip.is_ipv6)
    related_in = dev_in + ('oif', br, family, 'daddr', net, 'ct', 'state', 'related,established', 'counter', 'accept')
    out.append(_ins(family, 'guest_input', *related_in))
    nat_match = (family, 'saddr', net, family, 'daddr', '!=', net) + dev_out + ('counter',)
    out.append(_ins(family, 'guest_nat', *(nat_match + target_all)))
    out.append(_ins(family, 'guest_nat', *(('meta', 'l4proto', 'udp') + nat_match + target_ports)))
    out.append(_ins(family, 'guest_nat', *(('meta', 'l4proto', 'tcp') + nat_match + target_ports)))
    exempt = ('255.255.255.255/32', '224.0.0.0/24') if family == 'ip' else ('ff02::/16',)
    for dest in exempt:
        out.append(_ins(family, 'guest_nat', *(dev_out + (family, 'saddr', net, family, 'daddr', dest,
                                                          'counter', 'return'))))
    return out


def network_inserts(spec):
    """The ``nft -ae insert rule`` commands of one network in libvirt's order."""
    if not spec.has_rules:
        return ()
    out = _general('ip', spec.bridge)
    if spec.ipv6_enabled:
        out.extend(_general('ip6', spec.bridge))
    for ip in spec.ips:
        out.extend(_per_ip(spec, ip))
    return tuple(out)


def network_commands(spec):
    """Everything libvirt runs for one network (tc, then the nft inserts), as argv tuples."""
    if not spec.has_rules:
        return ()
    return tc_commands(spec) + tuple(i.argv() for i in network_inserts(spec))


def compile_ruleset(specs):
    """Tables for networks started in the given order (oldest first); empty
    when no network has rules."""
    if not any(spec.has_rules for spec in specs):
        return NftRuleset()
    contents = {}
    for spec in specs:
        for ins in network_inserts(spec):
            key = (ins.family, ins.chain)
            contents[key] = (ins.args,) + contents.get(key, ())
    tables = []
    for family in FAMILIES:
        chains = []
        for name, chain_spec in CHAIN_SPECS:
            if name == 'forward':
                rules = tuple(('counter', 'jump', target) for target in reversed(_JUMPED))
            else:
                rules = contents.get((family, name), ())
            chains.append(NftChain(name, chain_spec, rules))
        tables.append(NftTable(family, TABLE, tuple(chains)))
    return NftRuleset(tuple(tables))


def _script_words(args):
    words = []
    quote_next = False
    for arg in args:
        words.append('"%s"' % arg if quote_next else arg)
        quote_next = arg in _IFNAME_KEYWORDS
    return ' '.join(words)


def render_table(table):
    lines = ['table %s %s {' % (table.family, table.name)]
    for chain in table.chains:
        lines.append('\tchain %s {' % chain.name)
        if chain.spec:
            lines.append('\t\t' + chain.spec.strip('{} ').strip())
        lines.extend('\t\t' + _script_words(rule) for rule in chain.rules)
        lines.append('\t}')
    lines.append('}')
    return '\n'.join(lines) + '\n'
