# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IP-layer rule instances -> iptables/ip6tables rules in the FI/FO/HI chains.

Each rule yields up to three copies, always in the order FI (forwarded, from
the guest), FO (forwarded, to the guest), HI (to the host, a copy of FI).
"""

from __future__ import annotations

from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import protocols as P
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import ResolveError

XT_TARGETS = {'drop': 'DROP', 'accept': 'ACCEPT', 'reject': 'REJECT', 'return': 'RETURN', 'continue': 'CONTINUE'}

FROM_GUEST, TO_GUEST, TO_HOST = 'FI', 'FO', 'HI'


def _neg(args, negated):
    if negated:
        args.append('!')


def _address(inst, args, swapped, first, second):
    """Source (or destination) address: a single address/prefix, or else an iprange."""
    addr_name, mask_name, from_name, to_name, option, range_option = first
    other_option, other_range = second
    addr = inst.get(addr_name)
    if addr is not None:
        mask = inst.text(mask_name)
        _neg(args, addr[1])
        args += [other_option if swapped else option, addr[0] if mask is None else '%s/%s' % (addr[0], mask)]
        return True
    low = inst.get(from_name)
    if low is not None:
        high = inst.text(to_name)
        args += ['-m', 'iprange']
        _neg(args, low[1])
        args += [other_range if swapped else range_option, low[0] if high is None else '%s-%s' % (low[0], high)]
        return True
    return False


_SRC = ('srcipaddr', 'srcipmask', 'srcipfrom', 'srcipto', '--source', '--src-range')
_DST = ('dstipaddr', 'dstipmask', 'dstipfrom', 'dstipto', '--destination', '--dst-range')


def _matches(inst, swapped):
    """The match part between '-p PROTO' and the conntrack part; returns (args, matched_something)."""
    protocol = inst.rule.protocol
    base = protocol.replace('-ipv6', '')
    args = []
    matched = False
    mac = inst.get('srcmacaddr')
    if mac is not None and not swapped:
        args += ['-m', 'mac']
        _neg(args, mac[1])
        args += ['--mac-source', mac[0]]
        matched = True
    matched |= _address(inst, args, swapped, _SRC, ('--destination', '--dst-range'))
    matched |= _address(inst, args, swapped, _DST, ('--source', '--src-range'))
    dscp = inst.get('dscp')
    if dscp is not None:
        args += ['-m', 'dscp']
        _neg(args, dscp[1])
        args += ['--dscp', dscp[0]]
        matched = True
    if protocol == 'tcp':
        flags = inst.get('flags')
        if flags is not None:
            mask, bits = flags[0].split('/', 1)
            _neg(args, flags[1])
            args += ['--tcp-flags', mask, bits]
            matched = True
    if base in ('tcp', 'udp', 'sctp'):
        for low, high, option, other in (('srcportstart', 'srcportend', '--sport', '--dport'),
                                         ('dstportstart', 'dstportend', '--dport', '--sport')):
            start = inst.get(low)
            if start is None:
                continue
            end = inst.text(high)
            _neg(args, start[1])
            args += [other if swapped else option, start[0] if end is None else '%s:%s' % (start[0], end)]
            matched = True
    if base == 'tcp':
        option = inst.get('option')
        if option is not None:
            _neg(args, option[1])
            args += ['--tcp-option', option[0]]
            matched = True
    if protocol in ('icmp', 'icmpv6'):
        icmp_type = inst.get('type')
        if icmp_type is not None:
            code = inst.text('code')
            _neg(args, icmp_type[1])
            args += ['--icmp-type' if protocol == 'icmp' else '--icmpv6-type',
                     icmp_type[0] if code is None else '%s/%s' % (icmp_type[0], code)]
            matched = True
    return args, matched


def _invert_flags(flags):
    return ','.join('dst' if f == 'src' else 'src' for f in flags.split(','))


def _copy(inst, copy, swapped, state, ctdir, target):
    """One copy of the rule; None when libvirt would not create it."""
    rule = inst.rule
    connlimit = inst.get('connlimit-above')
    if connlimit is not None and swapped:
        return None  # connlimit only applies in the non-swapped direction
    matches, matched = _matches(inst, swapped)
    if swapped and inst.get('srcmacaddr') is not None and not matched:
        return None  # the source MAC was all it matched, and it cannot be matched here
    if connlimit is not None and rule.action == 'accept':
        state = ctdir = None
    args = ['-p', P.protocol(rule.protocol).xt_proto] + matches
    if state and state != 'NONE':
        args += ['-m', 'conntrack', '--ctstate', state]
    if ctdir:
        args += ['-m', 'conntrack', '--ctdir', ctdir]
    ipset = inst.get('ipset')
    ipset_flags = inst.text('ipsetflags')
    if ipset is not None and ipset_flags is not None:
        # libvirt swaps src/dst of literal flags only; a variable's value is printed as it is.
        literal = rule.get('ipsetflags') is None or rule.get('ipsetflags').var is None
        args += ['-m', 'set', '--match-set', ipset[0],
                 _invert_flags(ipset_flags) if swapped and literal else ipset_flags]
    if connlimit is not None:
        args += ['-m', 'connlimit']
        _neg(args, connlimit[1])
        args += ['--connlimit-above', connlimit[0]]
    comment = inst.text('comment')
    if comment is not None:
        args += ['-m', 'comment', '--comment', comment]
    args += ['-j', target]
    return copy, tuple(args)


def rule_copies(inst):
    """[(copy, args)] for one IP-layer rule instance, in libvirt's order (FI, FO, HI)."""
    rule = inst.rule
    if rule.ipset_unusable:
        raise ResolveError('an ipset without ipsetflags cannot be instantiated (libvirt fails the same way); '
                           'add ipsetflags', filter_name=inst.filter_name, rule=rule.where(), attribute='ipset')
    if rule.action == 'continue':
        # iptables has no CONTINUE target: libvirt's apply fails on it; we refuse it up front.
        raise ResolveError("action 'continue' cannot be used with the IP-layer protocol <%s>: iptables has no "
                           "CONTINUE target (use it with Ethernet-layer protocols only)" % rule.protocol,
                           filter_name=inst.filter_name, rule=rule.where(), attribute='action', value='continue')
    if inst.text('ipset') == '' and inst.get('ipsetflags') is not None:
        # libvirt accepts it when parsing, then builds a command iptables refuses.
        raise ResolveError('an empty ipset name cannot be instantiated', filter_name=inst.filter_name,
                           rule=rule.where(), attribute='ipset', value='')
    for name, what in (('comment', 'comment'), ('flags', 'TCP flags')):
        value = rule.get(name)
        if value is not None and value.var is not None:
            # libvirt cannot instantiate these either (it drops the value or calls the variable unresolvable).
            raise ResolveError('a variable cannot be used for %s' % what, filter_name=inst.filter_name,
                               rule=rule.where(), attribute=name, value=value.raw)
    direction = rule.direction
    dir_in = direction in ('in', 'inout')
    action = rule.action
    has_type = rule.protocol in ('icmp', 'icmpv6') and inst.get('type') is not None
    state = rule.state_flags

    wanted = {FROM_GUEST: True, TO_GUEST: True}
    fi_state = fo_state = fi_dir = fo_dir = None
    if not rule.statematch:
        pass  # all copies, no conntrack matches
    elif state is not None:
        wanted = {FROM_GUEST: direction in ('out', 'inout'), TO_GUEST: direction in ('in', 'inout')}
        fi_state = fo_state = state
    elif action == 'accept' and direction != 'inout':
        if direction == 'out':
            fi_state, fi_dir, fo_state, fo_dir = 'NEW,ESTABLISHED', 'Original', 'ESTABLISHED', 'Reply'
        else:
            fi_state, fi_dir, fo_state, fo_dir = 'ESTABLISHED', 'Reply', 'NEW,ESTABLISHED', 'Original'
        if has_type:
            fi_dir = fo_dir = None  # libvirt omits --ctdir for typed ICMP
    if has_type:
        # Typed ICMP rules are skipped where libvirt deems them skippable: inout loses all copies.
        wanted[FROM_GUEST] = wanted[FROM_GUEST] and not dir_in
        wanted[TO_GUEST] = wanted[TO_GUEST] and dir_in and direction != 'inout'

    copies = []
    if wanted[FROM_GUEST]:
        target = 'RETURN' if action == 'accept' else XT_TARGETS[action]
        made = _copy(inst, FROM_GUEST, dir_in, fi_state, fi_dir, target)
        if made:
            copies.append(made)
    if wanted[TO_GUEST]:
        made = _copy(inst, TO_GUEST, not dir_in, fo_state, fo_dir, XT_TARGETS[action])
        if made:
            copies.append(made)
    if copies and copies[0][0] == FROM_GUEST:
        copies.append((TO_HOST, copies[0][1]))  # HI mirrors FI exactly
    return copies
