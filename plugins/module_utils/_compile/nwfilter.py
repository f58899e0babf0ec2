# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compile one NIC binding into libvirt's chain layout, as a ruleset.Ruleset.

ebtables (table nat): ``libvirt-I-IF`` (from the guest, hooked from PREROUTING)
and ``libvirt-O-IF`` (to the guest, from POSTROUTING) with sub-chains
``I-IF-<chain>`` / ``O-IF-<chain>``. iptables/ip6tables (table filter): the
shared ``libvirt-in``, ``libvirt-out``, ``libvirt-in-post`` and
``libvirt-host-in`` chains hooked at the top of FORWARD/INPUT, and per NIC
``FI-IF``, ``FO-IF`` and ``HI-IF``.
"""

from __future__ import annotations

import hashlib
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_ebtables as EB
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_iptables as XT
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import BindingError, ResolveError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import FilterRef
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.resolve import (
    expand, filter_tree, instances, normalise_parameters, resolve)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.values import (
    IllegalValue, parameter_problem, parse_mac)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.interfaces import interface_name_problem
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import Chain, Hook, Ruleset, Table

BASE_CHAINS = ('libvirt-in', 'libvirt-out', 'libvirt-in-post', 'libvirt-host-in')
BASE_HOOKS = (('FORWARD', 'libvirt-in', 1), ('FORWARD', 'libvirt-out', 2), ('FORWARD', 'libvirt-in-post', 3),
              ('INPUT', 'libvirt-host-in', 1))
FROM_GUEST, TO_GUEST = 'I', 'O'
# ebtables-nft 1.8 refuses longer chain names (its message says "under 29 chars").
EB_MAX_CHAIN_NAME = 28
# Bump when the compiler's output for the same input changes (invalidates cached compilations).
COMPILER_VERSION = 1


def check_interface_name(name):
    problem = interface_name_problem(name)
    if problem is not None:
        raise BindingError('invalid interface name %r: %s' % (name, problem))
    return name


def eb_root_chain(interface, direction):
    return 'libvirt-%s-%s' % (direction, interface)


def eb_sub_chain(interface, direction, chain):
    return '%s-%s-%s' % (direction, interface, chain)


def _sort_key(item):
    # Root-filter rules first, then by rule priority; Python's sort is stable like libvirt's.
    return (0 if item.chain == 'root' else 1, item.rule.priority)


def _ebtables_table(interface, eth_rules):
    """Chains of the ebtables nat table, interleaving sub-chain jumps with root rules."""
    if not eth_rules:
        return None
    directions = []
    if any(r.rule.direction in ('out', 'inout') for r in eth_rules):
        directions.append(FROM_GUEST)
    if any(r.rule.direction in ('in', 'inout') for r in eth_rules):
        directions.append(TO_GUEST)

    # Sub-chains: one per (direction, chain name); the last rule's chain priority wins.
    sub_priority = {}
    order = []
    for item in eth_rules:
        if item.chain == 'root':
            continue
        for direction in _eb_directions(item.rule.direction):
            key = (direction, item.chain)
            if key not in sub_priority:
                order.append(key)
            sub_priority[key] = item.chain_priority
    # All from-guest entries before to-guest ones, then a stable sort by priority.
    order.sort(key=lambda k: 0 if k[0] == FROM_GUEST else 1)
    subchains = sorted(order, key=lambda k: sub_priority[k])

    chains = dict((eb_root_chain(interface, d), []) for d in directions)
    created = 0

    def create_subchain(key):
        direction, name = key
        chain_name = eb_sub_chain(interface, direction, name)
        if len(chain_name) > EB_MAX_CHAIN_NAME:
            # libvirt fails half way here; we refuse before touching the host.
            raise ResolveError("ebtables chain name '%s' is too long (%d characters, ebtables-nft allows %d): "
                               "with interface '%s' the filter chain name may have at most %d characters"
                               % (chain_name, len(chain_name), EB_MAX_CHAIN_NAME, interface,
                                  EB_MAX_CHAIN_NAME - 3 - len(interface)), attribute='chain', value=name)
        chains[chain_name] = []
        chains[eb_root_chain(interface, direction)].append(EB.subchain_jump_match(name) + ('-j', chain_name))

    for item in eth_rules:
        priority = item.rule.priority
        if item.chain != 'root' and priority < item.chain_priority:
            priority = item.chain_priority  # libvirt raises it for interleaving only
        while created < len(subchains) and sub_priority[subchains[created]] <= priority:
            create_subchain(subchains[created])
            created += 1
        for inst in instances(item):
            for direction in _eb_directions(item.rule.direction):
                reverse = item.rule.direction == 'inout' and direction == FROM_GUEST
                target = (eb_root_chain(interface, direction) if item.chain == 'root'
                          else eb_sub_chain(interface, direction, item.chain))
                chains[target].append(EB.rule_args(inst, reverse))
    while created < len(subchains):
        create_subchain(subchains[created])
        created += 1

    hooks = []
    if FROM_GUEST in directions:
        hooks.append(Hook('PREROUTING', ('-i', interface, '-j', eb_root_chain(interface, FROM_GUEST))))
    if TO_GUEST in directions:
        hooks.append(Hook('POSTROUTING', ('-o', interface, '-j', eb_root_chain(interface, TO_GUEST))))
    return Table('eb', 'nat', tuple(Chain(name, tuple(rules)) for name, rules in chains.items()), tuple(hooks))


def _eb_directions(direction):
    # inout: the from-guest (reversed) copy comes first.
    return {'out': (FROM_GUEST,), 'in': (TO_GUEST,), 'inout': (FROM_GUEST, TO_GUEST)}[direction]


def xt_nic_chains(interface):
    return tuple('%s-%s' % (copy, interface) for copy in (XT.TO_GUEST, XT.FROM_GUEST, XT.TO_HOST))


# A NIC's root chains, as named above (and the temporary J/P, FJ/FP/HJ names of libvirt's swaps).
_ROOT_CHAIN = {'eb': re.compile(r'^libvirt-[IOJP]-(.+)$'), 'ip': re.compile(r'^(?:F[IOJP]|H[IJ])-(.+)$')}


def interface_of_root_chain(family, chain):
    """The interface a NIC's root chain is named after, or None (sub-chains append
    "-<name>" and are ambiguous, so only root chains are read)."""
    pattern = _ROOT_CHAIN['eb' if family == 'eb' else 'ip']
    match = pattern.match(chain)
    if match is None and family != 'eb':
        match = _ROOT_CHAIN['eb'].match(chain)
    return match.group(1) if match else None


def _xtables_table(family, interface, ip_rules):
    if not ip_rules:
        return None
    per_nic = dict((copy, []) for copy in (XT.TO_GUEST, XT.FROM_GUEST, XT.TO_HOST))
    for item in ip_rules:
        for inst in instances(item):
            for copy, args in XT.rule_copies(inst):
                per_nic[copy].append(args)
    fo, fi, hi = xt_nic_chains(interface)
    base = {
        'libvirt-in': (('-m', 'physdev', '--physdev-in', interface, '-g', fi),),
        'libvirt-out': (('-m', 'physdev', '--physdev-is-bridged', '--physdev-out', interface, '-g', fo),),
        'libvirt-in-post': (('-m', 'physdev', '--physdev-in', interface, '-j', 'ACCEPT'),),
        'libvirt-host-in': (('-m', 'physdev', '--physdev-in', interface, '-g', hi),),
    }
    chains = tuple(Chain(name, base[name]) for name in BASE_CHAINS) + (
        Chain(fo, tuple(per_nic[XT.TO_GUEST])), Chain(fi, tuple(per_nic[XT.FROM_GUEST])),
        Chain(hi, tuple(per_nic[XT.TO_HOST])))
    hooks = tuple(Hook(builtin, ('-j', target), position) for builtin, target, position in BASE_HOOKS)
    return Table(family, 'filter', chains, hooks)


def split_parameters(parameters):
    """``(kept, ignored)``: the binding parameters libvirt keeps, and
    ``((name, value, problem), ...)`` for every value it silently drops
    (name or value outside what its parameter parser allows)."""
    kept = []
    ignored = []
    for name, values in normalise_parameters(parameters):
        good = []
        for value in values:
            problem = parameter_problem(name, value)
            if problem:
                ignored.append((name, value, problem))
            else:
                good.append(value)
        if good:
            kept.append((name, tuple(good)))
    return tuple(kept), tuple(ignored)


def binding_variables(mac, parameters):
    """The top-level variable table: the binding's valid parameters plus MAC unless given."""
    variables, _ignored = split_parameters(parameters)
    if mac is not None and 'MAC' not in dict(variables):
        variables += (('MAC', (mac,)),)
    return variables


def _first_use(expanded, name):
    """(filter name, rule description) of the first rule of the tree that uses ``$name``."""
    for item in expanded:
        if any(access.name == name for access in item.rule.var_accesses):
            return item.filter_name, item.rule.where()
    return None


def check_ignored_parameters(filter_name, filters, parameters, source=None):
    """Refuse a binding parameter libvirt would drop when the filter tree uses it.

    libvirt skips such a value without a word; the variable is then undefined
    (binding refused), falls back to a filterref default, or loses one list
    element (measured with libvirt 9.0, tests/differential). Each silently
    changes what the user asked for, so we refuse, naming the parameter, its
    value, and the filter and first rule that use it. Return the ignored
    parameters that no rule uses: ``((name, value, problem), ...)``.
    """
    _kept, ignored = split_parameters(parameters)
    if not ignored:
        return ()
    expanded = expand(filter_name, filters, ())
    unused = []
    for name, value, problem in ignored:
        used = _first_use(expanded, name)
        if used is None:
            unused.append((name, value, problem))
            continue
        raise ResolveError('parameter %s: value %r cannot be used: %s (libvirt drops such a parameter '
                           'without a word), and the filter uses $%s' % (name, value, problem, name),
                           filter_name=used[0], rule=used[1], attribute=name, value=value, source=source)
    return tuple(unused)


def _subtree_uses(filter_name, filters, name, seen=()):
    """(filter, rule) of the first rule below ``filter_name`` that uses ``$name``
    without a filterref on the way defining it; None if none (or unknown)."""
    flt = filters.get(filter_name)
    if flt is None or filter_name in seen:
        return None
    for entry in flt.entries:
        if isinstance(entry, FilterRef):
            if name in dict(entry.parameters):
                continue
            found = _subtree_uses(entry.filter, filters, name, seen + (filter_name,))
            if found:
                return found
        elif any(access.name == name for access in entry.var_accesses):
            return filter_name, entry.where()
    return None


def check_filterref_parameters(filter_name, filters, variables=(), source=None):
    """Refuse when a filterref parameter that libvirt drops (nwfilter_parse
    FilterRef.ignored) is needed by a rule below it and no caller defines the
    variable (libvirt then refuses the binding as an unresolvable variable).
    Return ``((filter, name, value, problem), ...)`` of the dropped ones that
    nothing needs."""
    unused = []

    def walk(name, defined, path):
        flt = filters.get(name)
        if flt is None or name in path:
            return  # resolve() reports missing filters and cycles
        for entry in flt.entries:
            if not isinstance(entry, FilterRef):
                continue
            for param, value, problem in entry.ignored:
                used = None if param in defined else _subtree_uses(entry.filter, filters, param)
                if used is not None:
                    raise ResolveError("parameter %s of the filterref to '%s' in filter '%s': value %r cannot be used: "
                                       "%s (libvirt drops such a parameter without a word), and the filter uses $%s"
                                       % (param, entry.filter, name, value, problem, param),
                                       filter_name=used[0], rule=used[1], attribute=param, value=value, source=source)
                unused.append((name, param, value, problem))
            walk(entry.filter, defined | set(dict(entry.parameters)), path + (name,))

    walk(filter_name, set(dict(variables)), ())
    return tuple(unused)


def parameter_warnings(interface, filter_name, filters, parameters):
    """Warnings for the binding parameters that are ignored (libvirt drops them
    too, and no rule of the filter tree uses them); raise ResolveError for one
    that a rule uses (see check_ignored_parameters)."""
    return tuple("interface %s: parameter %s=%r is ignored: %s, and no rule of filter '%s' (or the filters it "
                 "references) uses $%s" % (interface, name, value, problem, filter_name, name)
                 for name, value, problem in check_ignored_parameters(filter_name, filters, parameters,
                                                                      source='interface %s' % interface))


def compile_binding(interface, mac, filter_name, parameters, filters):
    """Compile ``filter_name`` bound to NIC ``interface`` with guest MAC ``mac``.

    ``parameters``: dict name -> str or list of str (libvirt's binding
    parameters); ``filters``: dict name -> nwfilter_parse.Filter (built-ins
    included). Returns a Ruleset with the tables this binding uses.
    """
    check_interface_name(interface)
    if mac is not None:
        try:
            mac = parse_mac(mac)
        except IllegalValue:
            raise BindingError('invalid MAC address %r for interface %s' % (mac, interface))
    check_ignored_parameters(filter_name, filters, parameters, source='interface %s' % interface)
    variables = binding_variables(mac, parameters)
    check_filterref_parameters(filter_name, filters, variables, source='interface %s' % interface)
    expanded = resolve(filter_name, filters, variables)
    ordered = sorted(expanded, key=_sort_key)
    by_layer = {'eb': [], 'ip': [], 'ip6': []}
    for item in ordered:
        by_layer[item.rule.layer].append(item)
    tables = [
        _ebtables_table(interface, by_layer['eb']),
        _xtables_table('ip', interface, by_layer['ip']),
        _xtables_table('ip6', interface, by_layer['ip6']),
    ]
    return Ruleset(tuple(t for t in tables if t is not None))


def check_chain_collisions(compiled):
    """Refuse two NICs whose ebtables chains have the same name.

    A sub-chain is named ``I-<interface>-<chain>``: NIC ``vnet1`` with chain
    ``mac-arp`` and NIC ``vnet1-mac`` with chain ``arp`` both need
    ``I-vnet1-mac-arp``. Merged, each NIC would run the other's rules; libvirt 9.0
    leaves the first NIC's chain empty and the second's rules in a temporary
    chain (measured, tests/differential/FINDINGS.md F16). ``compiled``:
    ``((interface, Ruleset), ...)``.
    """
    owners = {}
    for interface, ruleset in compiled:
        table = ruleset.table('eb', 'nat')
        for chain in (table.chains if table is not None else ()):
            other = owners.setdefault(chain.name, interface)
            if other != interface:
                raise BindingError("interfaces '%s' and '%s' would both use the ebtables chain '%s' (a sub-chain is "
                                   "named I-<interface>-<filter chain>); rename an interface or the filter chain"
                                   % (other, interface, chain.name))


def binding_fingerprint(interface, mac, filter_name, parameters, filters):
    """A digest of everything ``compile_binding`` reads for this binding.

    Equal fingerprints mean equal compiled rulesets, so callers may cache the
    compiled result (e.g. in state_dir) and skip compiling thousands of
    unchanged NICs. A filter that is missing from the tree changes it too.
    """
    digest = hashlib.sha256()
    digest.update(repr((COMPILER_VERSION, interface, mac, filter_name, normalise_parameters(parameters))).encode())
    for name in filter_tree(filter_name, filters):
        digest.update(repr(filters[name]).encode())
    for name in filter_tree(filter_name, filters):
        for ref in filters[name].references:
            if ref not in filters:
                digest.update(('missing:' + ref).encode())
    return digest.hexdigest()
