# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host pieces of a virtual network besides the firewall: the bridge device with
its gateway addresses, IP forwarding and the tc checksum filter.

Every function first *plans* (reads only) and returns the commands/changes it
would make; callers apply the plan only outside check mode.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import HostError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.interfaces import is_bridge, link_exists
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.scratch import Step, resolved, run_in_scratch
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.tc import tc_filter_argv, tc_qdisc_argv

PROC_SYS = '/proc/sys'


@dataclasses.dataclass(frozen=True)
class HostPlan:
    commands: tuple = ()  # argv tuples to run, in order
    messages: tuple = ()  # human-readable lines for the diff

    @property
    def changed(self):
        return bool(self.commands)


def _canonical_cidr(text):
    # iproute2 prints ::ffff:10.1.2.3 where Python (and the model) write
    # ::ffff:a01:203: compare addresses, not spellings (finding N16)
    try:
        return str(ipaddress.ip_interface(text))
    except ValueError:
        return text


def _addresses(runner, bridge):
    _rc, out, _err = runner.run(['ip', '-j', 'addr', 'show', 'dev', bridge], check=True)
    try:
        data = json.loads(out or '[]')
    except ValueError:
        raise HostError('cannot parse "ip -j addr show dev %s" output' % bridge)
    found = set()
    up = False
    for link in data:
        up = 'UP' in (link.get('flags') or ())
        for info in link.get('addr_info') or ():
            found.add(_canonical_cidr('%s/%s' % (info.get('local'), info.get('prefixlen'))))
    return found, up


def plan_bridge_present(runner, spec, stale_ips=()):
    """Create the bridge (if missing), add the gateway addresses, bring it up;
    ``stale_ips``: addresses an earlier version of the network put there."""
    commands = []
    messages = []
    bridge = spec.bridge
    if link_exists(bridge):
        if not is_bridge(bridge):
            raise HostError('network %r: interface %s exists and is not a bridge' % (spec.name, bridge))
        have, up = _addresses(runner, bridge)
    else:
        # 'name': a bridge called 'a' (or 'ad', 'addr'...) would read as ip's 'address' keyword
        commands.append(('ip', 'link', 'add', 'name', bridge, 'type', 'bridge'))
        messages.append('create bridge %s' % bridge)
        have, up = set(), False
    for ip in stale_ips:
        cidr = '%s/%d' % (ip.address, ip.prefix)
        if cidr in have:
            commands.append(('ip', 'addr', 'del', cidr, 'dev', bridge))
            messages.append('remove address %s from %s' % (cidr, bridge))
    for ip in spec.ips:
        cidr = '%s/%d' % (ip.address, ip.prefix)
        if cidr not in have:
            commands.append(('ip', 'addr', 'add', cidr, 'dev', bridge))
            messages.append('add address %s to %s' % (cidr, bridge))
    if not up:
        commands.append(('ip', 'link', 'set', 'dev', bridge, 'up'))
        messages.append('set %s up' % bridge)
    return HostPlan(tuple(commands), tuple(messages))


def added_addresses(plan):
    """The addresses (CIDR) ``plan`` (of :func:`plan_bridge_present`) adds to an existing bridge."""
    if any(argv[:3] == ('ip', 'link', 'add') for argv in plan.commands):
        return ()
    return tuple(argv[3] for argv in plan.commands if argv[:3] == ('ip', 'addr', 'add'))


def plan_addresses_absent(runner, bridge, cidrs):
    """Remove ``cidrs`` (addresses a network added) from ``bridge``, those it still has."""
    if not cidrs or not link_exists(bridge):
        return HostPlan()
    have, _up = _addresses(runner, bridge)
    gone = [cidr for cidr in cidrs if cidr in have]
    return HostPlan(tuple(('ip', 'addr', 'del', cidr, 'dev', bridge) for cidr in gone),
                    tuple('remove address %s from %s' % (cidr, bridge) for cidr in gone))


def plan_bridge_absent(bridge):
    if not link_exists(bridge):
        return HostPlan()
    return HostPlan((('ip', 'link', 'del', 'dev', bridge),), ('delete bridge %s' % bridge,))


def apply_plan(runner, plan):
    for argv in plan.commands:
        runner.run(list(argv), kind='write', check=True)


# --------------------------------------------------------------------------- forwarding

FORWARD_SYSCTLS = {
    'ipv4': 'net/ipv4/ip_forward',
    'ipv6': 'net/ipv6/conf/all/forwarding',
}


def forwarding_needed(spec):
    """Families whose forwarding libvirt turns on for this network: every mode
    except isolated, for the families it has addresses of."""
    if spec.forward_mode == 'isolated':
        return ()
    out = []
    if spec.ipv4s:
        out.append('ipv4')
    if spec.ipv6s:
        out.append('ipv6')
    return tuple(out)


def read_sysctl(key):
    try:
        with open(os.path.join(PROC_SYS, key)) as handle:
            return handle.read().strip()
    except OSError:
        return None


def plan_forwarding(specs):
    """{sysctl key: '1'} for the keys that must be turned on (never off)."""
    wanted = set()
    for spec in specs:
        wanted.update(forwarding_needed(spec))
    changes = {}
    for family in sorted(wanted):
        key = FORWARD_SYSCTLS[family]
        if read_sysctl(key) != '1':
            changes[key] = '1'
    return changes


def apply_forwarding(changes):
    for key, value in sorted(changes.items()):
        path = os.path.join(PROC_SYS, key)
        try:
            with open(path, 'w') as handle:
                handle.write(value + '\n')
        except OSError as exc:
            raise HostError('cannot set %s to %s: %s' % (key.replace('/', '.'), value, exc))


# --------------------------------------------------------------------------- tc checksum

def probe(runner, commands):
    """True when every command (argv lists) succeeds in a throwaway network
    namespace: a kernel feature test that cannot touch the host."""
    steps = []
    for argv in commands:
        found = resolved(argv)
        if found is None:
            return False
        steps.append(Step(found))
    return run_in_scratch(runner, steps).ok


def tc_checksum_supported(runner):
    """libvirt's nftables layout fixes DHCP reply checksums with a tc ``csum``
    action on the bridge; kernels without act_csum cannot load it."""
    return probe(runner, [
        ['ip', 'link', 'add', 'hnfprobe0', 'type', 'bridge'],
        list(tc_qdisc_argv('hnfprobe0')),
        list(tc_filter_argv('hnfprobe0', 'add')),
    ])


def xt_checksum_supported(runner, variant='auto'):
    """Whether the iptables CHECKSUM target loads (libvirt ignores its failure);
    ``variant``: the iptables tools in use (auto, nft or legacy)."""
    tool = {'nft': 'iptables-nft', 'legacy': 'iptables-legacy'}.get(variant, 'iptables')
    return probe(runner, [[tool, '-w', '-t', 'mangle', '-A', 'POSTROUTING', '-p', 'udp',
                           '-j', 'CHECKSUM', '--checksum-fill']])


def plan_tc_checksum(runner, bridge, bridge_exists=True):
    """libvirt's htb root qdisc ``1:`` and the u32/csum filter on the bridge."""
    commands = []
    have_qdisc = have_filter = False
    if bridge_exists:
        _rc, out, _err = runner.run(['tc', 'qdisc', 'show', 'dev', bridge, 'handle', '1:'], check=False)
        have_qdisc = 'qdisc' in out and ' 1: ' in out
        if have_qdisc:
            _rc, out, _err = runner.run(['tc', 'filter', 'show', 'dev', bridge, 'parent', '1:'], check=False)
            have_filter = 'csum' in out
    if not have_qdisc:
        commands.append(tc_qdisc_argv(bridge))
    if not have_filter:
        commands.append(tc_filter_argv(bridge, 'add'))
    messages = ('add DHCP checksum tc filter on %s' % bridge,) if commands else ()
    return HostPlan(tuple(commands), messages)


def plan_tc_checksum_absent(runner, bridge):
    _rc, out, _err = runner.run(['tc', 'filter', 'show', 'dev', bridge, 'parent', '1:'], check=False)
    if 'csum' not in out:
        return HostPlan()
    return HostPlan((tc_filter_argv(bridge, 'del'),), ('remove DHCP checksum tc filter from %s' % bridge,))
