# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A virtual network's host rules for libvirt's iptables layout.

Two views of the same rules:

* :func:`network_commands` -- the ``--insert`` commands libvirt issues for one
  network, in libvirt's order (used for the conformance suite);
* :func:`compile_ruleset` -- the resulting chain contents for any number of
  networks as the neutral :class:`Ruleset` the xtables apply engine loads
  in one ``*-restore --noflush`` per family.

libvirt inserts every rule at position 1, so a chain's final order is the
reverse of the order the rules were issued in; the ruleset is derived from
the command list exactly that way, so the two views cannot disagree.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import Chain, Hook, Ruleset, Table

BINARY = {'ip': 'iptables', 'ip6': 'ip6tables'}

# (table, built-in parent chain, private chain) in libvirt's creation order.
PRIVATE_CHAINS = (
    ('filter', 'INPUT', 'LIBVIRT_INP'),
    ('filter', 'OUTPUT', 'LIBVIRT_OUT'),
    ('filter', 'FORWARD', 'LIBVIRT_FWO'),
    ('filter', 'FORWARD', 'LIBVIRT_FWI'),
    ('filter', 'FORWARD', 'LIBVIRT_FWX'),
    ('nat', 'POSTROUTING', 'LIBVIRT_PRT'),
    ('mangle', 'POSTROUTING', 'LIBVIRT_PRT'),
)
TABLE_ORDER = ('filter', 'nat', 'mangle')
OWNED_CHAINS = {
    'filter': ('LIBVIRT_INP', 'LIBVIRT_OUT', 'LIBVIRT_FWO', 'LIBVIRT_FWI', 'LIBVIRT_FWX'),
    'nat': ('LIBVIRT_PRT',),
    'mangle': ('LIBVIRT_PRT',),
}


@dataclasses.dataclass(frozen=True)
class InsertCommand:
    """``IPT -w --table TABLE --insert CHAIN ARGS...``."""

    family: str  # 'ip' or 'ip6'
    table: str
    chain: str
    args: tuple
    ignore_errors: bool = False  # libvirt's separate CHECKSUM transaction

    def argv(self):
        return (BINARY[self.family], '-w', '--table', self.table, '--insert', self.chain) + self.args


def private_chain_commands():
    """libvirt's one-time setup (``base.iptables``) for a host without the chains."""
    commands = []
    for family in ('ip', 'ip6'):
        binary = BINARY[family]
        for table in TABLE_ORDER:
            commands.append((binary, '-w', '--table', table, '--list-rules'))
        for table, parent, child in PRIVATE_CHAINS:
            commands.append((binary, '-w', '--table', table, '--new-chain', child))
            commands.append((binary, '-w', '--table', table, '--insert', parent, '--jump', child))
    return commands


def _ins(family, table, chain, *args):
    return InsertCommand(family, table, chain, tuple(args))


def _general_ipv4(spec):
    br = spec.bridge
    out = [
        _ins('ip', 'filter', 'LIBVIRT_INP', '--in-interface', br, '--protocol', 'tcp', '--destination-port', '67', '--jump', 'ACCEPT'),
        _ins('ip', 'filter', 'LIBVIRT_INP', '--in-interface', br, '--protocol', 'udp', '--destination-port', '67', '--jump', 'ACCEPT'),
        _ins('ip', 'filter', 'LIBVIRT_OUT', '--out-interface', br, '--protocol', 'tcp', '--destination-port', '68', '--jump', 'ACCEPT'),
        _ins('ip', 'filter', 'LIBVIRT_OUT', '--out-interface', br, '--protocol', 'udp', '--destination-port', '68', '--jump', 'ACCEPT'),
        _ins('ip', 'filter', 'LIBVIRT_INP', '--in-interface', br, '--protocol', 'tcp', '--destination-port', '53', '--jump', 'ACCEPT'),
        _ins('ip', 'filter', 'LIBVIRT_INP', '--in-interface', br, '--protocol', 'udp', '--destination-port', '53', '--jump', 'ACCEPT'),
        _ins('ip', 'filter', 'LIBVIRT_OUT', '--out-interface', br, '--protocol', 'tcp', '--destination-port', '53', '--jump', 'ACCEPT'),
        _ins('ip', 'filter', 'LIBVIRT_OUT', '--out-interface', br, '--protocol', 'udp', '--destination-port', '53', '--jump', 'ACCEPT'),
    ]
    # libvirt looks only at the first IPv4 address that has DHCP or TFTP.
    first = next((ip for ip in spec.ipv4s if ip.dhcp or ip.tftp), None)
    if first is not None and first.tftp:
        out.append(_ins('ip', 'filter', 'LIBVIRT_INP', '--in-interface', br, '--protocol', 'udp', '--destination-port', '69', '--jump', 'ACCEPT'))
        out.append(_ins('ip', 'filter', 'LIBVIRT_OUT', '--out-interface', br, '--protocol', 'udp', '--destination-port', '69', '--jump', 'ACCEPT'))
    out.extend(_reject_and_cross('ip', br))
    return out


def _reject_and_cross(family, br):
    return [
        _ins(family, 'filter', 'LIBVIRT_FWO', '--in-interface', br, '--jump', 'REJECT'),
        _ins(family, 'filter', 'LIBVIRT_FWI', '--out-interface', br, '--jump', 'REJECT'),
        _ins(family, 'filter', 'LIBVIRT_FWX', '--in-interface', br, '--out-interface', br, '--jump', 'ACCEPT'),
    ]


def _general_ipv6(spec):
    if not spec.ipv6_enabled:
        return []
    br = spec.bridge
    out = _reject_and_cross('ip6', br)
    if spec.ipv6s:
        out.extend([
            _ins('ip6', 'filter', 'LIBVIRT_INP', '--in-interface', br, '--protocol', 'tcp', '--destination-port', '53', '--jump', 'ACCEPT'),
            _ins('ip6', 'filter', 'LIBVIRT_INP', '--in-interface', br, '--protocol', 'udp', '--destination-port', '53', '--jump', 'ACCEPT'),
            _ins('ip6', 'filter', 'LIBVIRT_OUT', '--out-interface', br, '--protocol', 'tcp', '--destination-port', '53', '--jump', 'ACCEPT'),
            _ins('ip6', 'filter', 'LIBVIRT_OUT', '--out-interface', br, '--protocol', 'udp', '--destination-port', '53', '--jump', 'ACCEPT'),
            _ins('ip6', 'filter', 'LIBVIRT_INP', '--in-interface', br, '--protocol', 'udp', '--destination-port', '547', '--jump', 'ACCEPT'),
            _ins('ip6', 'filter', 'LIBVIRT_OUT', '--out-interface', br, '--protocol', 'udp', '--destination-port', '546', '--jump', 'ACCEPT'),
        ])
    return out


def _dev_out(spec):
    return ('--out-interface', spec.forward_dev) if spec.forward_dev else ()


def _dev_in(spec):
    return ('--in-interface', spec.forward_dev) if spec.forward_dev else ()


def _routing_block(spec, ip, family):
    net = ip.network
    br = spec.bridge
    return [
        _ins(family, 'filter', 'LIBVIRT_FWO', '--source', net, '--in-interface', br, *(_dev_out(spec) + ('--jump', 'ACCEPT'))),
        _ins(family, 'filter', 'LIBVIRT_FWI', '--destination', net, *(_dev_in(spec) + ('--out-interface', br, '--jump', 'ACCEPT'))),
    ]


def nat_targets(spec, ipv6):
    """(TARGET_ALL, TARGET_PORTS) argument tuples for a masquerading block."""
    start, end = spec.port_range()
    ports = '%d-%d' % (start, end)
    if spec.nat_addresses and not ipv6:
        addr = '%s-%s' % spec.nat_addresses
        return (('--jump', 'SNAT', '--to-source', addr),
                ('--jump', 'SNAT', '--to-source', '%s:%s' % (addr, ports)))
    return (('--jump', 'MASQUERADE'), ('--jump', 'MASQUERADE', '--to-ports', ports))


def _masquerade_block(spec, ip, family):
    net = ip.network
    br = spec.bridge
    dev_out = _dev_out(spec)
    target_all, target_ports = nat_targets(spec, family == 'ip6')
    out = [
        _ins(family, 'filter', 'LIBVIRT_FWO', '--source', net, '--in-interface', br, *(dev_out + ('--jump', 'ACCEPT'))),
        _ins(family, 'filter', 'LIBVIRT_FWI', '--destination', net, *(_dev_in(spec) + (
            '--out-interface', br, '--match', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '--jump', 'ACCEPT'))),
        _ins(family, 'nat', 'LIBVIRT_PRT', '--source', net, '!', '--destination', net, *(dev_out + target_all)),
        _ins(family, 'nat', 'LIBVIRT_PRT', '--source', net, '-p', 'udp', '!', '--destination', net, *(dev_out + target_ports)),
        _ins(family, 'nat', 'LIBVIRT_PRT', '--source', net, '-p', 'tcp', '!', '--destination', net, *(dev_out + target_ports)),
    ]
    if family == 'ip':
        out.append(_ins(family, 'nat', 'LIBVIRT_PRT', *(dev_out + ('--source', net, '--destination', '255.255.255.255/32', '--jump', 'RETURN'))))
        out.append(_ins(family, 'nat', 'LIBVIRT_PRT', *(dev_out + ('--source', net, '--destination', '224.0.0.0/24', '--jump', 'RETURN'))))
    else:
        out.append(_ins(family, 'nat', 'LIBVIRT_PRT', *(dev_out + ('--source', net, '--destination', 'ff02::/16', '--jump', 'RETURN'))))
    return out


def _per_ip(spec):
    out = []
    for ip in spec.ips:
        family = 'ip6' if ip.is_ipv6 else 'ip'
        if spec.forward_mode == 'route':
            out.extend(_routing_block(spec, ip, family))
        elif spec.forward_mode == 'nat':
            if ip.is_ipv6 and not spec.nat_ipv6:
                out.extend(_routing_block(spec, ip, family))
            else:
                out.extend(_masquerade_block(spec, ip, family))
    return out


def network_commands(spec, checksum=True):
    """All insert commands for one network, in libvirt's issue order
    (empty for ``open`` networks). ``checksum=False`` leaves out the mangle
    CHECKSUM rule (libvirt ignores its failure on kernels without the target)."""
    if not spec.has_rules:
        return ()
    out = _general_ipv4(spec) + _general_ipv6(spec) + _per_ip(spec)
    if checksum and any(ip.dhcp for ip in spec.ipv4s):
        out.append(InsertCommand('ip', 'mangle', 'LIBVIRT_PRT',
                                 ('--out-interface', spec.bridge, '--protocol', 'udp', '--destination-port', '68',
                                  '--jump', 'CHECKSUM', '--checksum-fill'), ignore_errors=True))
    return tuple(out)


def private_ruleset():
    """The private chains and their jumps, empty, for both families."""
    tables = []
    for family in ('ip', 'ip6'):
        for table in TABLE_ORDER:
            chains = tuple(Chain(child) for tbl, _parent, child in PRIVATE_CHAINS if tbl == table)
            # libvirt inserts each jump at position 1, so a parent's jumps end up
            # in reverse creation order (FORWARD: FWX, FWI, FWO). We state those
            # final positions (the same end result) so that the hooks are listed
            # in the order they have in the kernel.
            hooks = []
            position = {}
            for tbl, parent, child in reversed(PRIVATE_CHAINS):
                if tbl == table:
                    position[parent] = position.get(parent, 0) + 1
                    hooks.append(Hook(parent, ('--jump', child), position[parent]))
            hooks = tuple(hooks)
            tables.append(Table(family, table, chains, hooks))
    return Ruleset(tuple(tables))


def compile_ruleset(specs, checksum=True):
    """Ruleset for networks started in the order given (oldest first).

    Empty when no network has rules. Rules of later networks sit above those
    of earlier ones, as libvirt's ``--insert`` leaves them.
    """
    commands = []
    for spec in specs:
        commands.extend(network_commands(spec, checksum))
    if not any(spec.has_rules for spec in specs):
        return Ruleset()
    contents = {}
    for cmd in commands:
        key = (cmd.family, cmd.table, cmd.chain)
        contents[key] = (cmd.args,) + contents.get(key, ())
    base = private_ruleset()
    tables = []
    for table in base.tables:
        chains = tuple(Chain(c.name, contents.get((table.family, table.name, c.name), ()))
                       for c in table.chains)
        tables.append(Table(table.family, table.name, chains, table.hooks))
    return Ruleset(tuple(tables))
