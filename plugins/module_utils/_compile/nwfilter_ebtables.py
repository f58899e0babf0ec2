# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ethernet-layer rule instances -> ebtables arguments (libvirt's spelling)."""

from __future__ import annotations

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import ResolveError

EB_TARGETS = {'accept': 'ACCEPT', 'drop': 'DROP', 'reject': 'DROP', 'return': 'RETURN', 'continue': 'CONTINUE'}

STP_DEST = '01:80:c2:00:00:00'

# (option, low attribute, high/mask attribute, joiner) for STP items, in emission order.
_STP_ITEMS = (
    ('--stp-type', 'type', None, None),
    ('--stp-flags', 'flags', None, None),
    ('--stp-root-pri', 'root-priority', 'root-priority-hi', ':'),
    ('--stp-root-addr', 'root-address', 'root-address-mask', '/'),
    ('--stp-root-cost', 'root-cost', 'root-cost-hi', ':'),
    ('--stp-sender-prio', 'sender-priority', 'sender-priority-hi', ':'),
    ('--stp-sender-addr', 'sender-address', 'sender-address-mask', '/'),
    ('--stp-port', 'port', 'port-hi', ':'),
    ('--stp-msg-age', 'age', 'age-hi', ':'),
    ('--stp-max-age', 'max-age', 'max-age-hi', ':'),
    ('--stp-hello-time', 'hello-time', 'hello-time-hi', ':'),
    ('--stp-forward-delay', 'forward-delay', 'forward-delay-hi', ':'),
)

# Jump from a root chain into a sub-chain: matched by the chain name's prefix
# (libvirt tests the prefixes in this order; protocol numbers are zero padded here).
_SUBCHAIN_MATCH = (
    ('ipv4', ('-p', '0x0800')), ('ipv6', ('-p', '0x86dd')), ('arp', ('-p', '0x0806')),
    ('rarp', ('-p', '0x8035')), ('mac', ()), ('vlan', ('-p', '0x8100')), ('stp', ('-d', STP_DEST)),
)


def subchain_jump_match(chain):
    for prefix, match in _SUBCHAIN_MATCH:
        if chain.startswith(prefix):
            return match
    return ()


def _opt(args, option, item, joined=None):
    """Append ``option [!] value`` (ebtables puts '!' after the option)."""
    text, negated = item
    args.append(option)
    if negated:
        args.append('!')
    args.append(joined if joined is not None else text)


def _hex(inst, name):
    """Attribute ``name`` as libvirt's printDataTypeAsHex prints it: a literal number
    (decimal text here) as 0x%x, a variable's value verbatim (ebtables reads '2048' as 0x2048)."""
    text = inst.text(name)
    if inst.rule.get(name).var is not None:
        return text
    return '0x%x' % int(text)


def _eth_header(inst, args, reverse, with_dst=True):
    pairs = [('srcmacaddr', 'srcmacmask', '-s', '-d')]
    if with_dst:
        pairs.append(('dstmacaddr', 'dstmacmask', '-d', '-s'))
    for addr_name, mask_name, option, reversed_option in pairs:
        item = _joined(inst, addr_name, mask_name, '/')
        if item:
            _opt(args, reversed_option if reverse else option, item[0], item[1])


def _number(text):
    """An ebtables range bound as ebtables reads it (strtol base 0), or None."""
    text = text.strip().lower()
    try:
        if text.startswith('0x'):
            return int(text, 16)
        return int(text, 8) if len(text) > 1 and text.startswith('0') else int(text, 10)
    except ValueError:
        return None


def _check_range(inst, first_name, second_name, low, high):
    # ebtables refuses an upside-down port or STP range when it parses it (libvirt then fails half way);
    # say which rule and attribute instead of failing the whole restore.
    if _number(low) is not None and _number(high) is not None and _number(low) > _number(high):
        raise ResolveError('%s %s is below %s %s: ebtables refuses a range whose end is below its start'
                           % (second_name, high, first_name, low), filter_name=inst.filter_name,
                           rule=inst.rule.where(), attribute=second_name, value=high)


def _joined(inst, first_name, second_name, joiner):
    """``(first item, 'FIRST[<joiner>SECOND]')`` for addr/mask and lo:hi pairs; None without FIRST.

    The first item's negation decides the '!' (libvirt prints by the leader)."""
    first = inst.get(first_name)
    if first is None:
        return None
    second = inst.text(second_name) if second_name else None
    if joiner == ':' and second is not None:
        _check_range(inst, first_name, second_name, first[0], second)
    return first, (first[0] if second is None else '%s%s%s' % (first[0], joiner, second))


def _ip_options(inst, args, reverse, family):
    if family == 4:
        src_opt, dst_opt, proto_opt = '--ip-source', '--ip-destination', '--ip-protocol'
        sport_opt, dport_opt = '--ip-source-port', '--ip-destination-port'
    else:
        src_opt, dst_opt, proto_opt = '--ip6-source', '--ip6-destination', '--ip6-protocol'
        sport_opt, dport_opt = '--ip6-source-port', '--ip6-destination-port'
    for addr_name, mask_name, option, reversed_option in (
            ('srcipaddr', 'srcipmask', src_opt, dst_opt), ('dstipaddr', 'dstipmask', dst_opt, src_opt)):
        pair = _joined(inst, addr_name, mask_name, '/')
        if pair:
            _opt(args, reversed_option if reverse else option, pair[0], pair[1])
    protocol = inst.get('protocol')
    if protocol is not None:
        _opt(args, proto_opt, protocol)
    for low, high, option, reversed_option in (
            ('srcportstart', 'srcportend', sport_opt, dport_opt), ('dstportstart', 'dstportend', dport_opt, sport_opt)):
        item = _joined(inst, low, high, ':')
        if item:
            _opt(args, reversed_option if reverse else option, item[0], item[1])
    if family == 4:
        dscp = inst.get('dscp')
        if dscp is not None:
            _opt(args, '--ip-tos', dscp, _hex(inst, 'dscp'))
    else:
        _icmp6_type(inst, args)


def _icmp6_type(inst, args):
    names = ('type', 'typeend', 'code', 'codeend')
    if all(inst.get(n) is None for n in names):
        return
    type_start, type_end, code_start, code_end = (inst.text(n) for n in names)
    negated = inst.get('type')[1] if inst.get('type') else False
    types = '%s:%s' % (type_start or '0', type_end or (type_start if type_start else '255'))
    codes = '%s:%s' % (code_start or '0', code_end or (code_start if code_start else '255'))
    _opt(args, '--ip6-icmp-type', ('', negated), '%s/%s' % (types, codes))


def _arp_options(inst, args, reverse):
    for option, name in (('--arp-htype', 'hwtype'), ('--arp-opcode', 'opcode')):
        item = inst.get(name)
        if item is not None:
            _opt(args, option, item)
    ptype = inst.get('protocoltype')
    if ptype is not None:
        _opt(args, '--arp-ptype', ptype, _hex(inst, 'protocoltype'))
    # libvirt quirk: a destination without its own mask reuses the source's mask,
    # but only when a source address was printed with one.
    src_mask = None
    src = inst.get('arpsrcipaddr')
    if src is not None:
        src_mask = inst.text('arpsrcipmask')
        _opt(args, '--arp-ip-dst' if reverse else '--arp-ip-src', src, '%s/%s' % (src[0], src_mask or '32'))
    dst = inst.get('arpdstipaddr')
    if dst is not None:
        mask = inst.text('arpdstipmask') or src_mask or '32'
        _opt(args, '--arp-ip-src' if reverse else '--arp-ip-dst', dst, '%s/%s' % (dst[0], mask))
    for addr_name, option, reversed_option in (
            ('arpsrcmacaddr', '--arp-mac-src', '--arp-mac-dst'), ('arpdstmacaddr', '--arp-mac-dst', '--arp-mac-src')):
        addr = inst.get(addr_name)
        if addr is not None:
            _opt(args, reversed_option if reverse else option, addr)
    gratuitous = inst.get('gratuitous')
    # libvirt tests the parsed boolean, never a variable's value: '$VAR' means false.
    literal = gratuitous is not None and inst.rule.get('gratuitous').var is None
    if literal and gratuitous[0] in ('true', '1', 'yes'):
        if gratuitous[1]:
            args.append('!')
        args.append('--arp-gratuitous')


def _stp_options(inst, args):
    for option, low_name, high_name, joiner in _STP_ITEMS:
        item = _joined(inst, low_name, high_name, joiner)
        if item:
            _opt(args, option, item[0], item[1])


def _check_vlan_id(inst):
    vlanid = inst.text('vlanid')
    if vlanid is not None and vlanid.isdigit() and int(vlanid) > 4094:
        # libvirt's parser takes 0-4095, but ebtables can only match 0-4094 and fails half way.
        raise ResolveError('vlanid %s cannot be matched by ebtables (0-4094; 4095 is reserved)' % vlanid,
                           filter_name=inst.filter_name, rule=inst.rule.where(), attribute='vlanid', value=vlanid)


def rule_args(inst, reverse):
    """Arguments after ``-A CHAIN`` for one Ethernet rule instance."""
    protocol = inst.rule.protocol
    args = []
    if protocol == 'stp':
        if reverse and inst.get('srcmacaddr') is not None:
            raise ResolveError('STP filtering in inout direction with source MAC address set is not supported',
                               filter_name=inst.filter_name, rule=inst.rule.where())
        _eth_header(inst, args, reverse, with_dst=False)
        args += ['-d', STP_DEST]
        _stp_options(inst, args)
    elif protocol != 'none':
        _eth_header(inst, args, reverse)
        if protocol == 'mac':
            proto = inst.get('protocolid')
            if proto is not None:
                _opt(args, '-p', proto, _hex(inst, 'protocolid'))
        elif protocol == 'vlan':
            _check_vlan_id(inst)
            args += ['-p', '0x8100']
            for option, name in (('--vlan-id', 'vlanid'), ('--vlan-encap', 'encap-protocol')):
                item = inst.get(name)
                if item is not None:
                    _opt(args, option, item)
        elif protocol in ('arp', 'rarp'):
            args += ['-p', '0x806' if protocol == 'arp' else '0x8035']
            _arp_options(inst, args, reverse)
        elif protocol == 'ip':
            args += ['-p', 'ipv4']
            _ip_options(inst, args, reverse, 4)
        elif protocol == 'ipv6':
            args += ['-p', 'ipv6']
            _ip_options(inst, args, reverse, 6)
    args += ['-j', EB_TARGETS[inst.rule.action]]
    return tuple(args)
