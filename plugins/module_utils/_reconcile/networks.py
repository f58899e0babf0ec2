# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired host state for all managed virtual networks, planned and applied.

The module ``virt_network`` is a thin layer over :func:`run`: it maps its
options to a :class:`Request`; this module loads the stored networks, builds
the union the host must have, plans every piece (bridge, iptables rules via the
shared xtables engine, the nftables tables, the tc checksum filter, IP
forwarding, the firewalld zone), applies the plan unless in check mode and
reports what changed.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import network_iptables as network_compile_iptables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import network_nftables as network_compile_nftables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host import firewalld as network_firewalld
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host import network_devices as network_host
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import HostError, Runner, find_tool
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.interfaces import link_exists
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_apply as network_nft_apply
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import networks as network_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import xtables_variants
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.parse import (
    NetworkSpecError, check_no_overlap)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import Ruleset
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NETWORK_OWNERSHIP
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import (
    describe_chain_change, describe_hook_change, plan_diff)


@dataclasses.dataclass(frozen=True)
class Request:
    state: str  # present, absent, rendered
    name: str
    spec: object = None  # NetworkSpec (present/rendered); None: the stored network ``name`` again
    firewall_backend: str = 'auto'
    xtables_backend: str = 'auto'
    create_bridge: bool = True
    state_dir: str = '/etc/hypervisor-netfilter'
    check_mode: bool = False
    firewalld: str = 'auto'  # auto: use it when running; never: leave it alone
    lock_timeout: float = 60


@dataclasses.dataclass
class Outcome:
    changed: bool = False
    backend: str | None = None
    rendered: dict | None = None
    diff: list = dataclasses.field(default_factory=list)
    changes: list = dataclasses.field(default_factory=list)  # human-readable summary lines
    warnings: list = dataclasses.field(default_factory=list)
    zone: str | None = None
    forwarding: dict = dataclasses.field(default_factory=dict)
    stored: dict | None = None


def choose_backend(requested):
    """libvirt's choice: nftables when ``nft`` is installed, else iptables."""
    if requested in ('iptables', 'nftables'):
        return requested
    return 'nftables' if find_tool('nft') else 'iptables'


def render(spec, backend):
    """``rendered`` output: texts loadable into a host without any of our rules."""
    if backend == 'nftables':
        return {'iptables': '', 'ip6tables': '',
                'nftables': network_compile_nftables.compile_ruleset([spec]).render()}
    ruleset = network_compile_iptables.compile_ruleset([spec])
    return {'iptables': ruleset.render('ip'), 'ip6tables': ruleset.render('ip6'), 'nftables': ''}


def _xt_needed(desired_xt):
    return bool(desired_xt.tables) or find_tool('iptables-save') is not None


def run(request, runner=None):
    runner = runner or Runner()
    out = Outcome()
    if request.state == 'rendered':
        spec, backend = request.spec, choose_backend(request.firewall_backend)
        if spec is None:
            stored = _stored_network(network_store.load_all(request.state_dir), request)
            spec, backend = stored.spec, _reapplied_backend(request, stored)
        out.backend = backend
        out.rendered = render(spec, backend)
        out.stored = spec.to_dict()
        return out
    lock = state_lock(request.state_dir, request.lock_timeout, exclusive=not request.check_mode,
                      create=not request.check_mode)
    with lock:
        _run_locked(request, runner, out)
    return out


def run_locked(request, runner=None):
    """:func:`run` (present or absent) for a caller that holds the ``state_dir`` lock
    (a module that ends its run with the whole-host reconcile in the same lock)."""
    out = Outcome()
    _run_locked(request, runner or Runner(), out)
    return out


def _stored_network(stored, request):
    """The stored network a request without a spec re-applies."""
    for network in stored:
        if network.spec.name == request.name:
            return network
    raise NetworkSpecError('network %r is not stored in %s: give bridge (and the other options) or xml to define it'
                           % (request.name, request.state_dir))


def _reapplied_backend(request, stored):
    """A re-applied network keeps its layout unless another one is asked for."""
    return stored.backend if request.firewall_backend == 'auto' else choose_backend(request.firewall_backend)


def _xtables_backend(request, previous, others):
    """One iptables variant (nft/legacy) for all networks of a host: the one
    asked for, else the one the stored networks were applied with."""
    stored = set(n.xtables_backend for n in others if n.backend == 'iptables' and n.xtables_backend != 'auto')
    if previous is not None and previous.xtables_backend != 'auto':
        stored.add(previous.xtables_backend)
    if request.xtables_backend == 'auto':
        return stored.pop() if len(stored) == 1 else 'auto'
    if request.state == 'present':
        conflicting = sorted(n.spec.name for n in others if n.backend == 'iptables'
                             and n.xtables_backend not in ('auto', request.xtables_backend))
        if conflicting:
            raise NetworkSpecError('network %r: xtables_backend %s differs from the one of network(s) %s; all '
                                   'networks of a host share one iptables variant'
                                   % (request.name, request.xtables_backend, ', '.join(conflicting)))
    return request.xtables_backend


@dataclasses.dataclass(frozen=True)
class RulesPlan:
    """The firewall rules of every desired network: iptables layout (shared xtables
    engine, ``LIBVIRT_*`` chains) and nftables layout (``libvirt_network`` tables)."""
    desired_xt: object
    xt_engine: object = None
    xt_plan: object = None
    desired_nft: object = None
    nft_bridges: tuple = ()
    nft_plan: object = None
    xt_left: tuple = ()  # (engine, Plan) of our chains in the other iptables variant (xtables_variants)


def _plan_rules(state_dir, desired, xtables_backend, runner, out):
    """Plan the rules of the ``desired`` StoredNetworks; note diffs, changes and warnings in ``out``."""
    specs_xt = [n.spec for n in desired if n.backend == 'iptables']
    specs_nft = [n.spec for n in desired if n.backend == 'nftables']
    checksum = True
    if any(ip.dhcp for s in specs_xt if s.has_rules for ip in s.ipv4s):
        checksum = network_host.xt_checksum_supported(runner, xtables_backend)
        if not checksum:
            out.warnings.append('the kernel has no iptables CHECKSUM target: the DHCP checksum rule libvirt '
                                'adds to mangle LIBVIRT_PRT is left out (libvirt ignores its failure too)')
    desired_xt = network_compile_iptables.compile_ruleset(specs_xt, checksum)
    rules = RulesPlan(desired_xt, desired_nft=network_compile_nftables.compile_ruleset(specs_nft),
                      nft_bridges=tuple(s.bridge for s in specs_nft))
    if _xt_needed(desired_xt):
        rules = dataclasses.replace(rules, xt_engine=XtablesEngine(NETWORK_OWNERSHIP, backend=xtables_backend,
                                                                   state_dir=state_dir))
    rules = _replan_rules(rules, runner)
    if rules.xt_plan is not None and rules.xt_plan.changed:
        out.diff.extend(plan_diff(rules.xt_plan))
        out.changes.append('iptables rules of the LIBVIRT_* chains')
    left = xtables_variants.changed_plan(rules.xt_left)
    if left.changed:
        out.diff.extend(plan_diff(left))
        out.changes.append('LIBVIRT_* chains left in the other iptables variant')
    if rules.nft_plan is not None and rules.nft_plan.changed:
        out.diff.append({'before_header': 'nft libvirt_network: live',
                         'after_header': 'nft libvirt_network: desired',
                         'before': network_nft_apply.diff_text(rules.nft_plan.before),
                         'after': network_nft_apply.diff_text(rules.nft_plan.after)})
        out.changes.append('nftables tables libvirt_network')
    return rules


def _replan_rules(rules, runner):
    """Plan (again) against what is live now (after a firewalld reload flushed rules)."""
    xt_plan = nft_plan = None
    xt_left = ()
    if rules.xt_engine is not None:
        xt_plan = rules.xt_engine.plan(rules.desired_xt if rules.desired_xt.tables else Ruleset())
        xt_left = xtables_variants.plan_other_variants(rules.xt_engine, rules.xt_engine.state_dir, check_mode=True)
    if rules.desired_nft.tables or find_tool('nft'):
        nft_plan = network_nft_apply.plan(runner, rules.desired_nft, list(rules.nft_bridges))
    return dataclasses.replace(rules, xt_plan=xt_plan, nft_plan=nft_plan, xt_left=xt_left)


def _apply_rules(rules, runner):
    if rules.xt_plan is not None and rules.xt_plan.changed:
        xtables_variants.note_variants(rules.xt_engine, rules.xt_engine.state_dir)
        rules.xt_engine.commit(rules.xt_plan)
    if rules.xt_engine is not None:  # then our chains go from the variant no longer used
        xtables_variants.commit_other_variants(rules.xt_engine, rules.xt_engine.state_dir, rules.xt_left)
    if rules.nft_plan is not None and rules.nft_plan.changed:
        network_nft_apply.apply(runner, rules.nft_plan)


def _present_entry(request, runner, stored, previous, others, xtables_backend, host_plans):
    """``(entry, previous)`` for ``state: present``: the StoredNetwork to keep, after
    checking the request against the host and the other networks; bridge plans
    go to ``host_plans``."""
    spec = request.spec
    if spec is None:
        previous = _stored_network(stored, request)
        spec = previous.spec
    check_no_overlap(spec, [n.spec for n in others])
    if spec.forward_dev and not link_exists(spec.forward_dev):
        raise NetworkSpecError('network %r: forward_dev %s does not exist on this host'
                               % (spec.name, spec.forward_dev))
    backend = choose_backend(request.firewall_backend) if request.spec is not None else \
        _reapplied_backend(request, previous)
    same_bridge = previous is not None and previous.spec.bridge == spec.bridge
    bridge_created = bool(same_bridge and previous.bridge_created)
    if previous is not None and not same_bridge:
        # the network moved to another bridge: the one we made for it goes, or the addresses we added to it
        host_plans.append(network_host.plan_bridge_absent(previous.spec.bridge) if previous.bridge_created else
                          network_host.plan_addresses_absent(runner, previous.spec.bridge, previous.addresses_added))
    wanted = set('%s/%d' % (ip.address, ip.prefix) for ip in spec.ips)
    addresses_added = tuple(a for a in previous.addresses_added if a in wanted) if same_bridge else ()
    if request.create_bridge:
        stale = ()
        if same_bridge:  # addresses of the previous definition: on a bridge we did not make, only ours
            stale = tuple(ip for ip in previous.spec.ips if '%s/%d' % (ip.address, ip.prefix) not in wanted
                          and (previous.bridge_created or '%s/%d' % (ip.address, ip.prefix) in previous.addresses_added))
        plan = network_host.plan_bridge_present(runner, spec, stale)
        if any(argv[:3] == ('ip', 'link', 'add') for argv in plan.commands):
            bridge_created = True
        addresses_added += tuple(a for a in network_host.added_addresses(plan) if a not in addresses_added)
        host_plans.append(plan)
    elif not link_exists(spec.bridge) and backend == 'nftables' and spec.has_rules:
        raise NetworkSpecError('network %r: bridge %s does not exist; the nftables backend needs it '
                               '(set create_bridge: true or create it first)' % (spec.name, spec.bridge))
    # A changed network is a restarted one for libvirt: its rules go above the
    # other networks' (finding N13); an unchanged one keeps its place.
    keep_seq = previous is not None and previous.spec == spec
    entry = network_store.StoredNetwork(
        spec=spec, backend=backend, seq=previous.seq if keep_seq else network_store.next_seq(stored),
        bridge_created=bridge_created, zone=previous.zone if previous else None,
        xtables_backend=xtables_backend, create_bridge=request.create_bridge,
        addresses_added=() if bridge_created else addresses_added)
    return entry, previous


def _tc_plans(request, runner, entry, spec, previous, out):
    """libvirt's DHCP checksum tc filter (nftables layout): add, or remove when leaving it."""
    if request.state == 'present' and entry.backend == 'nftables' and spec.has_rules:
        if network_host.tc_checksum_supported(runner):
            return [network_host.plan_tc_checksum(runner, spec.bridge, link_exists(spec.bridge))]
        out.warnings.append('the kernel has no act_csum tc action (or tc is missing): the DHCP checksum '
                            'filter libvirt puts on %s is skipped' % spec.bridge)
    elif previous is not None and previous.backend == 'nftables' and link_exists(previous.spec.bridge) \
            and find_tool('tc') and not (request.state == 'absent' and previous.bridge_created):
        if request.state == 'absent' or (entry is not None and entry.backend != 'nftables'):
            return [network_host.plan_tc_checksum_absent(runner, previous.spec.bridge)]
    return []


def _zone_plan(request, spec, previous, out):
    """The firewalld zone binding of the network's bridge (None: firewalld not used)."""
    if request.firewalld == 'never':
        return None
    fw_plan = network_firewalld.plan(
        spec if request.state == 'present' else (previous.spec if previous else None),
        request.state, previous.zone if previous else None)
    if fw_plan is not None:
        out.zone = fw_plan.zone
        if fw_plan.changed:
            out.changes.extend(fw_plan.messages)
            out.diff.append({'before_header': 'firewalld', 'after_header': 'firewalld',
                             'before': ''.join(m + '\n' for m in fw_plan.before),
                             'after': ''.join(m + '\n' for m in fw_plan.after)})
    return fw_plan


def _note_store_change(request, previous, entry, out):
    store_changed = False
    if request.state == 'present':
        store_changed = previous is None or previous.to_json() != entry.to_json()
        out.stored = entry.spec.to_dict()
    elif previous is not None:
        store_changed = True
    if store_changed:
        out.changes.append('state file of network %s' % request.name)


@dataclasses.dataclass(frozen=True)
class _RunPlan:
    """Everything one ``virt_network`` run would change, in apply order."""
    host_plans: tuple  # bridges
    fw_plan: object  # firewalld zone (or None)
    rules: RulesPlan
    tc_plans: tuple
    forwarding: dict
    entry: object  # StoredNetwork to save (present) or None
    previous: object  # StoredNetwork before the run or None


def _run_locked(request, runner, out):
    stored = network_store.load_all(request.state_dir)
    previous = next((n for n in stored if n.spec.name == request.name), None)
    others = tuple(n for n in stored if n.spec.name != request.name)
    spec = request.spec
    host_plans = []
    entry = None
    xtables_backend = _xtables_backend(request, previous, others)
    if request.state == 'present':
        entry, previous = _present_entry(request, runner, stored, previous, others, xtables_backend, host_plans)
        spec = entry.spec
        # libvirt's order: networks started earlier sit lower in the chains
        desired = tuple(sorted(others + (entry,), key=lambda n: (n.seq, n.spec.name)))
        out.backend = entry.backend
    else:
        desired = others
        if previous is not None:
            out.backend = previous.backend
            out.stored = previous.spec.to_dict()
            spec = previous.spec

    rules = _plan_rules(request.state_dir, desired, xtables_backend, runner, out)
    # bridge removal after the rules are gone (only a bridge we created)
    if request.state == 'absent' and previous is not None and previous.bridge_created:
        host_plans.append(network_host.plan_bridge_absent(previous.spec.bridge))
    elif request.state == 'absent' and previous is not None:  # a bridge we did not make: our addresses go
        host_plans.append(network_host.plan_addresses_absent(runner, previous.spec.bridge, previous.addresses_added))
    tc_plans = _tc_plans(request, runner, entry, spec, previous, out)
    for plan in host_plans + tc_plans:
        if plan.changed:
            out.changes.extend(plan.messages)
            out.diff.append({'before_header': 'host', 'after_header': 'host',
                             'before': '', 'after': ''.join(m + '\n' for m in plan.messages)})
    # IP forwarding (only turned on, never off)
    forwarding = network_host.plan_forwarding([entry.spec] if entry is not None else [])
    if forwarding:
        out.forwarding = forwarding
        out.changes.extend('set %s = 1' % k.replace('/', '.') for k in sorted(forwarding))
    fw_plan = _zone_plan(request, spec, previous, out)
    if entry is not None and fw_plan is not None:
        entry = dataclasses.replace(entry, zone=fw_plan.zone)
    _note_store_change(request, previous, entry, out)
    out.changed = bool(out.changes)
    if request.check_mode or not out.changed:
        return
    _apply_run(request, runner, out, _RunPlan(tuple(host_plans), fw_plan, rules, tuple(tc_plans), forwarding,
                                              entry, previous))


def _apply_run(request, runner, out, run):
    """Apply: bridge first (nft rules need the device), then the firewalld zone
    (as libvirt: before any rule), then rules, then the rest."""
    removal_plans = [p for p in run.host_plans if any(a[:3] == ('ip', 'link', 'del') for a in p.commands)]
    for plan in run.host_plans:
        if plan not in removal_plans:
            network_host.apply_plan(runner, plan)
    rules = run.rules
    if run.fw_plan is not None and run.fw_plan.changed:
        network_firewalld.apply(run.fw_plan)
        if run.fw_plan.reloads:
            # A firewalld reload may flush rules that are not firewalld's (this is
            # why libvirt re-applies its rules on firewalld's Reloaded signal):
            # plan again against what is live now.
            rules = _replan_rules(rules, runner)
    _apply_rules(rules, runner)
    for plan in run.tc_plans:
        try:
            network_host.apply_plan(runner, plan)
        except HostError as exc:
            out.warnings.append('DHCP checksum tc filter on %s not applied: %s' % (_plan_bridge(plan), exc))
    network_host.apply_forwarding(run.forwarding)
    if request.state == 'present':
        network_store.save(request.state_dir, run.entry)
    elif run.previous is not None:
        network_store.remove(request.state_dir, request.name)
    for plan in removal_plans:
        network_host.apply_plan(runner, plan)


def _plan_bridge(plan):
    """The device a tc plan is about (``dev <name>`` in its first command)."""
    argv = plan.commands[0] if plan.commands else ()
    return argv[argv.index('dev') + 1] if 'dev' in argv else '?'


# --------------------------------------------------------------------------
# Reconciling every stored network (the network stage of _reconcile.host)

@dataclasses.dataclass(frozen=True)
class NetworkStatus:
    name: str
    changed: bool  # something of this network was (or, in check mode, would be) repaired
    missing: tuple = ()  # what differed, one line each


@dataclasses.dataclass(frozen=True)
class NetworksResult:
    changed: bool
    networks: tuple = ()  # NetworkStatus, stored order
    diff: tuple = ()
    warnings: tuple = ()


def networks_managed(state_dir):
    """True once virt_network stored anything here (even if every network was removed since):
    a host where we never managed networks keeps its LIBVIRT_* rules (libvirtd's own)."""
    return os.path.isdir(os.path.join(state_dir, network_store.SUBDIR))


def _mentions(line, bridge):
    return re.search(r'(^|[\s"])%s([\s",]|$)' % re.escape(bridge), line) is not None


def _attribute(lines, nets, found):
    """Give each line to the networks whose bridge it names, else to all of ``nets``."""
    for line in lines:
        owners = [n for n in nets if _mentions(line, n.spec.bridge)] or nets
        for net in owners:
            found[net.spec.name].append(line)


def _rule_lines(rules):
    """What differs in the rules: lines naming iptables chains and nft listing lines."""
    xt_lines = []
    if rules.xt_plan is not None:
        for fam in rules.xt_plan.families + xtables_variants.changed_plan(rules.xt_left).families:
            for change in fam.chain_changes:
                xt_lines.extend(describe_chain_change(fam.family, change))
            xt_lines.extend(describe_hook_change(fam.family, hook) for hook in fam.hook_changes)
    nft_lines = []
    if rules.nft_plan is not None:
        for family in rules.nft_plan.changed_families:
            before = (rules.nft_plan.before.get(family) or '').splitlines()
            after = (rules.nft_plan.after.get(family) or '').splitlines()
            nft_lines.extend('missing nft %s: %s' % (family, line.strip()) for line in after if line not in before)
            nft_lines.extend('unexpected nft %s: %s' % (family, line.strip()) for line in before if line not in after)
            if before and not after:
                nft_lines.append('stale nft table %s %s' % (family, network_nft_apply.TABLE))
    return xt_lines, nft_lines


def _device_plans(stored, runner, warnings):
    """``([(StoredNetwork, HostPlan)], [(StoredNetwork, tc HostPlan)])``: the bridges
    we manage and libvirt's DHCP checksum tc filter of nftables-layout networks."""
    bridges = []
    tcs = []
    for net in stored:
        spec = net.spec
        exists = link_exists(spec.bridge)
        if net.create_bridge:
            bridges.append((net, network_host.plan_bridge_present(runner, spec)))
        elif not exists:
            warnings.append('network %s: bridge %s does not exist (create_bridge is false); its rules are '
                            'installed and take effect when it appears' % (spec.name, spec.bridge))
        if net.backend == 'nftables' and spec.has_rules and (exists or net.create_bridge) \
                and network_host.tc_checksum_supported(runner):
            tcs.append((net, network_host.plan_tc_checksum(runner, spec.bridge, exists)))
    return bridges, tcs


def _zone_plans(stored, firewalld):
    """``[(StoredNetwork, FirewalldPlan)]`` for the networks whose zone binding differs."""
    if firewalld == 'never':
        return []
    plans = []
    for net in stored:
        fw_plan = network_firewalld.plan(net.spec, 'present', net.zone)
        if fw_plan is not None and (fw_plan.changed or fw_plan.zone != net.zone):
            plans.append((net, fw_plan))
    return plans


def reconcile_networks(state_dir, check_mode=False, runner=None, firewalld='auto', xtables_backend='auto'):
    """Make the host match every stored network (the caller holds the ``state_dir`` lock).

    Bridges we manage (created, addressed, up), firewalld zones, the rules of
    both layouts, the tc checksum filter and IP forwarding, as the last
    ``virt_network`` runs left them.  Nothing is removed here that a stored
    network still wants; owned rules no stored network wants are removed.
    Returns :class:`NetworksResult` with what differed per network.
    """
    runner = runner or Runner()
    stored = network_store.load_all(state_dir)
    out = Outcome()
    if xtables_backend == 'auto':
        variants = set(n.xtables_backend for n in stored if n.backend == 'iptables' and n.xtables_backend != 'auto')
        xtables_backend = variants.pop() if len(variants) == 1 else 'auto'
    found = collections.OrderedDict((n.spec.name, []) for n in stored)
    devices, tcs = _device_plans(stored, runner, out.warnings)
    for net, plan in devices + tcs:
        found[net.spec.name].extend(plan.messages)
    zones = _zone_plans(stored, firewalld)
    for net, fw_plan in zones:
        found[net.spec.name].extend(fw_plan.messages)
    rules = _plan_rules(state_dir, stored, xtables_backend, runner, out)
    xt_lines, nft_lines = _rule_lines(rules)
    _attribute(xt_lines, [n for n in stored if n.backend == 'iptables'] or list(stored), found)
    _attribute(nft_lines, [n for n in stored if n.backend == 'nftables'] or list(stored), found)
    forwarding = network_host.plan_forwarding([n.spec for n in stored])
    for key in sorted(forwarding):
        family = 'ipv6' if 'ipv6' in key else 'ipv4'
        _attribute(['%s is off' % key.replace('/', '.')],
                   [n for n in stored if family in network_host.forwarding_needed(n.spec)], found)
    diff = list(out.diff)
    for net, plan in devices + tcs:
        if plan.changed:
            diff.append({'before_header': 'host', 'after_header': 'host',
                         'before': '', 'after': ''.join(m + '\n' for m in plan.messages)})
    changed = any(found.values()) or bool(xt_lines or nft_lines)  # stale rules of removed networks too
    if changed and not check_mode:
        _repair_networks(state_dir, runner, (devices, tcs), zones, rules, forwarding, out.warnings)
    statuses = tuple(NetworkStatus(name, bool(lines), tuple(lines)) for name, lines in found.items())
    return NetworksResult(changed, statuses, tuple(diff), tuple(out.warnings))


def _repair_networks(state_dir, runner, device_plans, zones, rules, forwarding, warnings):
    """Apply in virt_network's order: bridges, firewalld zones, rules, tc filter, forwarding."""
    devices, tcs = device_plans
    for _net, plan in devices:
        network_host.apply_plan(runner, plan)
    reloaded = False
    for net, fw_plan in zones:
        if fw_plan.changed:
            network_firewalld.apply(fw_plan)
            reloaded = reloaded or fw_plan.reloads
        if fw_plan.zone != net.zone:
            network_store.save(state_dir, dataclasses.replace(net, zone=fw_plan.zone))
    if reloaded:
        # A firewalld reload may flush rules that are not firewalld's: plan again.
        rules = _replan_rules(rules, runner)
    _apply_rules(rules, runner)
    for net, plan in tcs:
        try:
            network_host.apply_plan(runner, plan)
        except HostError as exc:
            warnings.append('DHCP checksum tc filter on %s not applied: %s' % (net.spec.bridge, exc))
    network_host.apply_forwarding(forwarding)
