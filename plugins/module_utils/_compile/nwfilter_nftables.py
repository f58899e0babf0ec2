# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guest NIC bindings -> our nftables layout (``table bridge hnf_nic``).

Fed by the same resolved rule instances as the xtables layout: each binding is
compiled by :mod:`nwfilter` (libvirt's ebtables/iptables rules, which also
validates it) and by the same code again with every variable value wrapped in
markers; the marked ebtables/iptables arguments are translated into nft atoms
(:mod:`nwfilter_nftables_match`).  Atoms whose value came from a variable
become lookups in sets keyed by interface name (``iifname . ip saddr``), so a
chain only holds what is common to every NIC bound to the same filter tree.

Layout (one table of our own, bridge family)::

    eth-in   hook prerouting  priority -300   iifname vmap @eth-in    (libvirt-I-<nic>, ebtables nat)
    ip-in    hook forward     priority 0      iifname vmap @ip-in     (FI-<nic>, iptables FORWARD)
    ip-out   hook forward     priority 1      oifname vmap @ip-out    (FO-<nic>)
    ip-host  hook input       priority 0      iifname vmap @ip-host   (HI-<nic>, iptables INPUT)
    eth-out  hook postrouting priority 300    oifname vmap @eth-out   (libvirt-O-<nic>, ebtables nat)

The maps are keyed by interface *name*: an element may exist before its tap
and still applies after the tap is recreated.  Chains are named
``<kind>-<filter>-<digest of their rules>``: NICs whose rules have the same
shape share them, and changing a NIC's values is only element changes.

What sets cannot express stays per NIC (the values are written into the
chain, whose digest then differs): a negated variable with several values,
masks that are not prefixes, ICMP types from variables, fields nft lists by
name.  What nft here cannot do at all sends the NIC (or its IP layer) back to
the xtables layout; :attr:`NicLayout.mode` and the warnings say so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter as NW
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables_match as M
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.resolve import resolve
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.values import IllegalValue, parse_mac
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import BindingError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import Ruleset, merge_rulesets

FAMILY = 'bridge'
TABLE = 'hnf_nic'
TABLE_COMMENT = 'hypervisor.netfilter guest NIC filters'
# Bump when the layout for the same input changes (invalidates cached compilations).
LAYOUT_VERSION = 3


@dataclasses.dataclass(frozen=True)
class BaseChain:
    name: str
    hook: str
    priority: int
    key: str  # iifname / oifname
    layer: str  # 'eth' / 'ip'

    @property
    def map(self):
        return self.name


# In packet order for a frame bridged from one guest to another.
BASE_CHAINS = (
    BaseChain('eth-in', 'prerouting', -300, 'iifname', 'eth'),
    BaseChain('ip-in', 'forward', 0, 'iifname', 'ip'),
    BaseChain('ip-out', 'forward', 1, 'oifname', 'ip'),
    BaseChain('ip-host', 'input', 0, 'iifname', 'ip'),
    BaseChain('eth-out', 'postrouting', 300, 'oifname', 'eth'),
)
_EB_ROOT_BASE = {NW.FROM_GUEST: 'eth-in', NW.TO_GUEST: 'eth-out'}
_XT_BASE = {'FI': 'ip-in', 'FO': 'ip-out', 'HI': 'ip-host'}
_SAFE = re.compile(r'[^A-Za-z0-9_-]')

# Modes of a NIC.
NFT, MIXED, XTABLES = 'nftables', 'nftables+iptables', 'xtables'


@dataclasses.dataclass(frozen=True)
class NftSet:
    name: str
    key: tuple  # typeof expressions, the first is iifname or oifname
    interval: bool
    elements: frozenset = frozenset()  # (ifname, (low, high), ...)
    kinds: tuple = ()  # value kind per non-interface component (for rendering)

    def declaration(self):
        return (self.key, self.interval)


@dataclasses.dataclass(frozen=True)
class NftChain:
    name: str
    rules: tuple  # rule texts


@dataclasses.dataclass(frozen=True)
class NicLayout:
    interface: str
    mode: str  # NFT, MIXED or XTABLES
    reason: str = ''  # why not (entirely) nftables
    dispatch: tuple = ()  # ((base chain, target chain), ...)
    warnings: tuple = ()


@dataclasses.dataclass(frozen=True)
class Layout:
    """The whole desired ``table bridge hnf_nic`` plus what stays on xtables."""

    chains: tuple = ()  # NftChain, sub-chains before the chains that jump to them
    sets: tuple = ()  # NftSet
    maps: tuple = ()  # ((base chain name, ((ifname, 'goto CHAIN'), ...)), ...)
    nics: tuple = ()  # NicLayout
    xtables: Ruleset = Ruleset()
    fail_closed: tuple = ()  # interface name patterns (nft wildcards, e.g. 'vnet*')

    def nic(self, interface):
        for nic in self.nics:
            if nic.interface == interface:
                return nic
        return None

    def bases(self):
        """The base chains in use: a hook costs every frame a call, so a chain with nothing to
        dispatch (e.g. the IP-layer ones when no NIC has IP-layer rules) is not created."""
        used = set(name for name, elements in self.maps if elements)
        return tuple(b for b in BASE_CHAINS if b.name in used or (b.layer == 'eth' and self.fail_closed))

    def counts(self):
        """(rules, set elements + map elements) this layout puts in the kernel."""
        base_rules = sum(len(base_chain_rules(b, self.fail_closed)) for b in self.bases())
        rules = sum(len(c.rules) for c in self.chains) + base_rules
        elements = sum(len(s.elements) for s in self.sets) + sum(len(m[1]) for m in self.maps)
        return rules, elements


# ---------------------------------------------------------------------------- marking

def mark(item):
    """The expanded rule with every variable value wrapped in markers."""
    variables = tuple((name, tuple(M.MARK_OPEN + v + M.MARK_CLOSE for v in values))
                      for name, values in item.variables)
    return dataclasses.replace(item, variables=variables)


# ---------------------------------------------------------------------------- templates

@dataclasses.dataclass(frozen=True)
class _Rule:
    atoms: tuple
    verdict: object  # str, or ('jump', nft chain name)

    def shape(self):
        return (tuple((a.expr, a.kind, a.negated, a.var, None if a.var else a.value) for a in self.atoms),
                self.verdict)


def _verdict_text(verdict):
    if isinstance(verdict, tuple):
        return 'jump %s' % verdict[1]
    return verdict


def _literal_rule(rule):
    words = [a.render() for a in rule.atoms]
    words.append(_verdict_text(rule.verdict))
    return ' '.join(words)


def _overlap(first, second):
    return all(a[0] <= b[1] and b[0] <= a[1] for a, b in zip(first, second))


def _contains(outer, inner):
    return all(o[0] <= i[0] and i[1] <= o[1] for o, i in zip(outer, inner))


def _prune(elements):
    """Drop elements inside another; None when two still overlap (nft refuses overlapping intervals)."""
    kept = []
    for element in sorted(set(elements), key=lambda e: tuple(-(c[1] - c[0]) for c in e)):
        if any(_contains(other, element) for other in kept):
            continue
        if any(_overlap(other, element) for other in kept):
            return None
        kept.append(element)
    return kept


def _group_template(group, key_expr, interface):
    """(template text with @{n} placeholders, [(set key, interval, kinds, elements)]) or None for literal."""
    first = group[0]
    var_atoms = [i for i, a in enumerate(first.atoms) if a.var]
    if not var_atoms:
        return None
    if not all(first.atoms[i].settable for i in var_atoms):
        return None
    negated = [i for i in var_atoms if first.atoms[i].negated]
    if negated and len(group) > 1:
        return None  # "not any of these values" cannot be one set lookup
    positive = [i for i in var_atoms if not first.atoms[i].negated]
    lookups = ([positive] if positive else []) + [[i] for i in negated]
    words = [a.render() for a in first.atoms if not a.var]
    sets = []
    for index, members in enumerate(lookups):
        exprs = tuple(first.atoms[i].expr for i in members)
        elements = [tuple(rule.atoms[i].value for i in members) for rule in group]
        # Interval sets (pipapo for concatenations) cost several times a hash lookup per frame: only
        # for NICs whose values are prefixes or ranges ($IP is mostly single addresses).
        interval = any(low != high for element in elements for low, high in element)
        if interval:
            elements = _prune(elements)
            if elements is None:
                return None
        negation = '!= ' if members[0] in negated else ''
        words.append('%s . %s %s@{%d}' % (key_expr, ' . '.join(exprs), negation, index))
        sets.append(((key_expr,) + exprs, interval, tuple(first.atoms[i].kind for i in members),
                     frozenset((interface,) + tuple(e) for e in elements)))
    words.append(_verdict_text(first.verdict))
    return ' '.join(words), sets


def build_chain(kind, filter_name, rules, key_expr, interface, final=None):
    """Templates for one chain of one NIC: (chain name, rule texts, [NftSet]).

    Consecutive rules of the same shape and verdict are one lookup in a set:
    a frame matching any of them gets the same verdict either way.
    """
    groups = []
    for rule in rules:
        if M.NEVER in rule.atoms:
            continue  # matches nothing (e.g. an upside-down IP range): nothing to write
        if groups and groups[-1][0].shape() == rule.shape():
            groups[-1].append(rule)
        else:
            groups.append([rule])
    texts = []
    pending_sets = []
    for group in groups:
        made = _group_template(group, key_expr, interface)
        if made is None:
            texts.extend(_literal_rule(rule) for rule in group)
            continue
        text, sets = made
        # Renumber this rule's placeholders into chain-wide set indexes.
        for local, spec in enumerate(sets):
            text = text.replace('@{%d}' % local, '@{s%d}' % len(pending_sets))
            pending_sets.append(spec)
        texts.append(text)
    if final:
        texts.append(final)
    digest = hashlib.sha256(repr((kind, key_expr, texts, [(s[0], s[1]) for s in pending_sets])).encode())
    name = '%s-%s-%s' % (kind, _SAFE.sub('_', filter_name)[:32], digest.hexdigest()[:12])
    set_objects = []
    for index, (key, interval, kinds, elements) in enumerate(pending_sets):
        set_name = '%s-%d' % (name, index)
        texts = [t.replace('@{s%d}' % index, '@' + set_name) for t in texts]
        set_objects.append(NftSet(set_name, key, interval, elements, kinds))
    return name, tuple(texts), set_objects


# ---------------------------------------------------------------------------- one NIC

@dataclasses.dataclass(frozen=True)
class NicResult:
    layout: NicLayout
    chains: tuple = ()  # NftChain
    sets: tuple = ()  # NftSet
    xtables: Ruleset = Ruleset()


def _eb_chains(interface, filter_name, table):
    """nft chains for the ebtables nat table of one NIC; returns (chains, sets, dispatch)."""
    chains, sets, dispatch = [], [], []
    names = {}
    roots = dict((NW.eb_root_chain(interface, d), d) for d in (NW.FROM_GUEST, NW.TO_GUEST))
    # Sub-chains first: the root chains jump to their (digest-named) nft names.
    ordered = sorted(table.chains, key=lambda c: c.name in roots)
    for chain in ordered:
        direction = roots.get(chain.name) or chain.name.split('-', 1)[0]
        key_expr = 'iifname' if direction == NW.FROM_GUEST else 'oifname'
        rules = []
        for args in chain.rules:
            atoms, verdict = M.eb_rule(args)
            if isinstance(verdict, tuple):
                verdict = ('jump', names[verdict[1]])
            rules.append(_Rule(atoms, verdict))
        if chain.name in roots:
            kind = 'e%s' % direction
        else:
            # the filter chain name may hold ':' and '.', which nft identifiers may not
            kind = 'e%s-%s' % (direction, _SAFE.sub('_', chain.name[len(NW.eb_sub_chain(interface, direction, '')):]))
        # ebtables user chains end in their policy, ACCEPT (ebtables-nft writes it as a last rule).
        name, texts, chain_sets = build_chain(kind, filter_name, rules, key_expr, interface, final='accept')
        names[chain.name] = name
        chains.append(NftChain(name, texts))
        sets.extend(chain_sets)
        if chain.name in roots:
            dispatch.append((_EB_ROOT_BASE[direction], name))
    return chains, sets, dispatch


def _xt_chains(interface, filter_name, tables, conntrack):
    """nft chains for the FI/FO/HI copies of both IP families; (chains, sets, dispatch, needs, reject)."""
    chains, sets, dispatch = [], [], []
    needs = set()
    reject = False
    for copy_index, copy in enumerate(('FO', 'FI', 'HI')):
        rules = []
        for table in tables:
            chain = table.chains[len(NW.BASE_CHAINS) + copy_index]
            for args in chain.rules:
                atoms, verdict, rule_needs = M.xt_rule(args, table.family)
                needs |= rule_needs
                if verdict == 'reject':
                    reject = True
                    verdict = 'drop'
                rules.append(_Rule(atoms, verdict))
        if not rules:
            continue
        key_expr = 'oifname' if copy == 'FO' else 'iifname'
        name, texts, chain_sets = build_chain(copy, filter_name, rules, key_expr, interface)
        chains.append(NftChain(name, texts))
        sets.extend(chain_sets)
        dispatch.append((_XT_BASE[copy], name))
    if 'conntrack' in needs and conntrack:
        needs.discard('conntrack')
    return chains, sets, dispatch, needs, reject


def compile_nic(interface, mac, filter_name, parameters, filters, conntrack=False):
    """One binding in the nftables layout (see :class:`NicResult`).

    Bad input raises exactly what the xtables compiler raises.
    """
    full = NW.compile_binding(interface, mac, filter_name, parameters, filters)
    if mac is not None:
        try:
            mac = parse_mac(mac)
        except IllegalValue:
            raise BindingError('invalid MAC address %r for interface %s' % (mac, interface))
    expanded = resolve(filter_name, filters, NW.binding_variables(mac, parameters))
    ordered = [mark(item) for item in sorted(expanded, key=NW._sort_key)]  # pylint: disable=protected-access
    by_layer = {'eb': [], 'ip': [], 'ip6': []}
    for item in ordered:
        by_layer[item.rule.layer].append(item)
    warnings = []
    eb_table = NW._ebtables_table(interface, by_layer['eb'])  # pylint: disable=protected-access
    try:
        eb_chains, eb_sets, eb_dispatch = _eb_chains(interface, filter_name, eb_table) if eb_table else ([], [], [])
    except M.Unsupported as exc:
        reason = 'the Ethernet-layer rules use %s, which this nftables layout cannot express' % exc
        warnings.append('interface %s (filter %s) stays on the ebtables/iptables layout: %s'
                        % (interface, filter_name, reason))
        return NicResult(NicLayout(interface, XTABLES, reason, (), tuple(warnings)), xtables=full)
    ip_tables = [t for t in (NW._xtables_table('ip', interface, by_layer['ip']),  # pylint: disable=protected-access
                             NW._xtables_table('ip6', interface, by_layer['ip6'])) if t is not None]  # noqa
    reason = ''
    try:
        xt_chains, xt_sets, xt_dispatch, needs, reject = _xt_chains(interface, filter_name, ip_tables, conntrack)
    except M.Unsupported as exc:
        needs, reject = set(), False
        reason = 'its IP-layer rules use %s, which this nftables layout cannot express' % exc
    if needs:
        what = {'conntrack': 'connection state (bridge conntrack, nf_conntrack_bridge, is missing)',
                'ipset': 'ipset', 'connlimit': 'connlimit'}
        reason = 'its IP-layer rules need %s' % ', '.join(what[n] for n in sorted(needs))
    if reason:
        warnings.append('interface %s (filter %s): the IP-layer rules stay on the iptables chains, %s'
                        % (interface, filter_name, reason))
        kept = Ruleset(tuple(t for t in full.tables if t.family in ('ip', 'ip6')))
        return NicResult(NicLayout(interface, MIXED, reason, tuple(eb_dispatch), tuple(warnings)),
                         tuple(eb_chains), tuple(eb_sets), kept)
    if reject:
        warnings.append('interface %s (filter %s): the bridge family has no reject here; its IP-layer reject '
                        'rules drop instead' % (interface, filter_name))
    return NicResult(NicLayout(interface, NFT, '', tuple(eb_dispatch + xt_dispatch), tuple(warnings)),
                     tuple(eb_chains + xt_chains), tuple(eb_sets + xt_sets))


def compile_layout(bindings, filters, conntrack=False, fail_closed=(), cache=None):
    """The desired :class:`Layout` for ``bindings`` (objects with interface, mac, filter, parameters).

    ``cache``: optional object with ``key(binding, filters, conntrack)``,
    ``get(key)`` and ``put(key, NicResult)`` (e.g. the state_dir cache of
    :mod:`._reconcile.nics_nftables`), so unchanged bindings are not compiled again.
    """
    chains = {}
    sets = {}
    maps = dict((base.name, []) for base in BASE_CHAINS)
    nics = []
    xtables = []
    for binding in bindings:
        key = cache.key(binding, filters, conntrack) if cache is not None else None
        result = cache.get(key) if key is not None else None
        if result is None:
            result = compile_nic(binding.interface, binding.mac, binding.filter, binding.parameters, filters,
                                 conntrack)
            if key is not None:
                cache.put(key, result)
        nics.append(result.layout)
        for chain in result.chains:
            chains.setdefault(chain.name, chain)
        for nft_set in result.sets:
            known = sets.get(nft_set.name)
            if known is None:
                sets[nft_set.name] = known = (nft_set, [])
            known[1].append(nft_set.elements)
        for base, target in result.layout.dispatch:
            maps[base].append((binding.interface, 'goto %s' % target))
        if result.layout.mode == XTABLES and fail_closed:
            # Bound, but filtered by ebtables: its frames must pass our table, not meet the drop for
            # unbound taps (accept ends only our base chain; ebtables' chains still see the frame).
            maps.update((base.name, maps[base.name] + [(binding.interface, 'accept')])
                        for base in BASE_CHAINS if base.layer == 'eth')
        if result.xtables.tables:
            xtables.append((binding.interface, result.xtables))
    NW.check_chain_collisions(xtables)
    merged = tuple(dataclasses.replace(first, elements=frozenset().union(*parts)) for first, parts in sets.values())
    return Layout(tuple(chains.values()), merged,
                  tuple((base.name, tuple(maps[base.name])) for base in BASE_CHAINS),
                  tuple(nics), merge_rulesets([r for _i, r in xtables]) if xtables else Ruleset(), tuple(fail_closed))


# ---------------------------------------------------------------------------- rendering

def render_element(nft_set, element):
    parts = ['"%s"' % element[0]]
    for kind, value in zip(nft_set.kinds, element[1:]):
        parts.append(M.render_value(kind, value))
    return ' . '.join(parts)


def render_set(nft_set, with_elements=True):
    lines = ['add set %s %s %s { typeof %s; %s}' % (
        FAMILY, TABLE, nft_set.name, ' . '.join(nft_set.key), 'flags interval; ' if nft_set.interval else '')]
    if with_elements and nft_set.elements:
        lines.append(render_elements('add', nft_set, sorted(nft_set.elements)))
    return lines


def render_elements(op, nft_set, elements):
    return '%s element %s %s %s { %s }' % (op, FAMILY, TABLE, nft_set.name,
                                           ', '.join(render_element(nft_set, e) for e in elements))


def render_base_chain(base, fail_closed=()):
    lines = ['add chain %s %s %s { type filter hook %s priority %d; policy accept; }'
             % (FAMILY, TABLE, base.name, base.hook, base.priority),
             'add rule %s %s %s %s vmap @%s' % (FAMILY, TABLE, base.name, base.key, base.map)]
    if base.layer == 'eth':
        for pattern in fail_closed:
            lines.append('add rule %s %s %s %s "%s" drop' % (FAMILY, TABLE, base.name, base.key, pattern))
    return lines


def base_chain_rules(base, fail_closed=()):
    rules = ['%s vmap @%s' % (base.key, base.map)]
    if base.layer == 'eth':
        rules.extend('%s "%s" drop' % (base.key, pattern) for pattern in fail_closed)
    return tuple(rules)


def render_layout(layout):
    """A complete ``nft -f`` script creating the layout on a host without our table."""
    lines = ['add table %s %s { comment "%s"; }' % (FAMILY, TABLE, TABLE_COMMENT)]
    for base in BASE_CHAINS:
        lines.append('add map %s %s %s { type ifname : verdict; }' % (FAMILY, TABLE, base.map))
    for nft_set in layout.sets:
        lines.extend(render_set(nft_set))
    for chain in layout.chains:
        lines.append('add chain %s %s %s' % (FAMILY, TABLE, chain.name))
    for chain in layout.chains:
        lines.extend('add rule %s %s %s %s' % (FAMILY, TABLE, chain.name, rule) for rule in chain.rules)
    for base_name, elements in layout.maps:
        if elements:
            lines.append('add element %s %s %s { %s }' % (FAMILY, TABLE, base_name, ', '.join(
                '"%s" : %s' % (ifname, verdict) for ifname, verdict in elements)))
    for base in layout.bases():
        lines.extend(render_base_chain(base, layout.fail_closed))
    return '\n'.join(lines) + '\n'
