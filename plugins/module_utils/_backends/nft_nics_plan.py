# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The difference between the live guest NIC table and the desired layout, as one ``nft -f`` script.

The script holds only the difference: flush/refill changed chains,
add/delete chains, sets, set and map elements, in an order nft accepts in
one transaction (:data:`SECTIONS`).  Each part of the table (a base chain
with its verdict map, the sets, the regular chains) is compared by a pure
function returning an :class:`_Edit`; :func:`plan` joins them and adds the
``--diff`` lines.  Nothing outside our table is read or written.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.nft_nics_canonical import chain_key
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.nft_nics_live import read_chain_texts
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables as L


@dataclasses.dataclass(frozen=True)
class NftPlan:
    script: str = ''  # '' when nothing changes
    chains_added: tuple = ()
    chains_replaced: tuple = ()
    chains_deleted: tuple = ()
    elements_added: tuple = ()  # (set or map, element line)
    elements_deleted: tuple = ()
    interfaces: tuple = ()  # interfaces whose elements or chains change
    before: tuple = ()  # diff lines
    after: tuple = ()

    @property
    def changed(self):
        return bool(self.script)

    def summary(self):
        return dict(chains_added=len(self.chains_added), chains_replaced=len(self.chains_replaced),
                    chains_deleted=len(self.chains_deleted), elements_added=len(self.elements_added),
                    elements_deleted=len(self.elements_deleted))


# The script's sections, in the order they run: what goes away before what comes (a set is deleted
# after the chains that use it, a chain is created before the map entries that jump to it).
SECTIONS = ('flush', 'drop_map', 'drop_elem', 'drop_chain', 'drop_set', 'add_obj', 'add_elem', 'add_rule', 'add_map')


@dataclasses.dataclass(frozen=True)
class _Edit:
    """A part of the difference: nft commands by script section, and what they change."""

    flush: tuple = ()
    drop_map: tuple = ()
    drop_elem: tuple = ()
    drop_chain: tuple = ()
    drop_set: tuple = ()
    add_obj: tuple = ()
    add_elem: tuple = ()
    add_rule: tuple = ()
    add_map: tuple = ()
    added: tuple = ()  # chain names
    replaced: tuple = ()
    deleted: tuple = ()
    elements_added: tuple = ()  # (set or map, element line)
    elements_deleted: tuple = ()
    interfaces: frozenset = frozenset()
    after: tuple = ()  # diff lines of base chains (the caller adds the others)


def _joined(edits):
    """One :class:`_Edit` with every field of ``edits`` in order."""
    fields = dict((f.name, ()) for f in dataclasses.fields(_Edit))
    for edit in edits:
        for name in fields:
            fields[name] = tuple(fields[name]) + tuple(getattr(edit, name))
    fields['interfaces'] = frozenset(fields['interfaces'])
    return _Edit(**fields)


def _set_types(nft_set):
    """What nft -j lists as a set's type for our typeof keys."""
    types = []
    for expr in nft_set.key:
        if expr in ('iifname', 'oifname'):
            types.append('ifname')
        elif expr in ('ether saddr', 'ether daddr'):
            types.append('ether_addr')
        elif expr in ('ip saddr', 'ip daddr'):
            types.append('ipv4_addr')
        elif expr in ('ip6 saddr', 'ip6 daddr'):
            types.append('ipv6_addr')
        elif expr in ('th sport', 'th dport'):
            types.append('inet_service')
        else:
            types.append('integer')
    return tuple(types)


def _base_edit(base, layout, live, canonical_chains):
    """A base chain and its verdict map (interface -> goto NIC chain)."""
    fam, table = L.FAMILY, L.TABLE
    flush, drop_map, drop_chain, drop_set, add_obj, add_rule, add_map = [], [], [], [], [], [], []
    added, deleted, elements_added, elements_deleted, interfaces, after = [], [], [], [], set(), []
    live_map = live.maps.get(base.map)
    desired = dict(next(e for n, e in layout.maps if n == base.map))
    bases = layout.bases()
    rebuild_base = base in bases and (
        live.base.get(base.name) != ('filter', base.hook, base.priority, 'accept')
        or live.chains.get(base.name) != canonical_chains[chain_key(base.name, layout)])
    if base not in bases and base.name in live.chains:
        flush.append('flush chain %s %s %s' % (fam, table, base.name))
        drop_chain.append('delete chain %s %s %s' % (fam, table, base.name))
        deleted.append(base.name)
    if live_map is None or live_map[:2] != ('ifname', 'verdict'):
        if live_map is not None:
            rebuild_base = True
            drop_set.append('delete map %s %s %s' % (fam, table, base.map))
        add_obj.append('add map %s %s %s { type ifname : verdict; }' % (fam, table, base.map))
        live_elements = {}
    else:
        live_elements = live_map[2]
    for ifname, verdict in sorted(live_elements.items()):
        if desired.get(ifname) != verdict:
            drop_map.append('delete element %s %s %s { "%s" }' % (fam, table, base.map, ifname))
            elements_deleted.append((base.map, '"%s" : %s' % (ifname, verdict)))
            interfaces.add(ifname)
    for ifname, verdict in sorted(desired.items()):
        if live_elements.get(ifname) != verdict:
            add_map.append('add element %s %s %s { "%s" : %s }' % (fam, table, base.map, ifname, verdict))
            elements_added.append((base.map, '"%s" : %s' % (ifname, verdict)))
            interfaces.add(ifname)
    if rebuild_base:
        if base.name in live.chains:
            drop_chain.append('delete chain %s %s %s' % (fam, table, base.name))
            deleted.append(base.name)
        add_rule.extend(L.render_base_chain(base, layout.fail_closed))
        added.append(base.name)
        after.append('chain %s' % base.name)
        after.extend('  ' + r for r in L.base_chain_rules(base, layout.fail_closed))
    return _Edit(flush=tuple(flush), drop_map=tuple(drop_map), drop_chain=tuple(drop_chain),
                 drop_set=tuple(drop_set), add_obj=tuple(add_obj), add_rule=tuple(add_rule), add_map=tuple(add_map),
                 added=tuple(added), deleted=tuple(deleted), elements_added=tuple(elements_added),
                 elements_deleted=tuple(elements_deleted), interfaces=frozenset(interfaces), after=tuple(after))


def _sets_edit(layout, live):
    """``(edit, redeclared set names)``: a changed declaration is a new set (its chains go too)."""
    fam, table = L.FAMILY, L.TABLE
    drop_elem, drop_set, add_obj, add_elem = [], [], [], []
    elements_added, elements_deleted, interfaces = [], [], set()
    wanted_sets = dict((s.name, s) for s in layout.sets)
    redeclared = set()
    for name, (types, flags, elements) in live.sets.items():
        nft_set = wanted_sets.get(name)
        if nft_set is None or types != _set_types(nft_set) or flags != (('interval',) if nft_set.interval else ()):
            drop_set.append('delete set %s %s %s' % (fam, table, name))
            if nft_set is not None:
                redeclared.add(name)
            for element in sorted(elements, key=repr):
                elements_deleted.append((name, repr(element)))
                interfaces.add(element[0])
    for name, nft_set in wanted_sets.items():
        live_set = live.sets.get(name)
        if live_set is None or name in redeclared:
            add_obj.extend(L.render_set(nft_set, with_elements=False))
            live_elements = frozenset()
        else:
            live_elements = live_set[2]
        stale = sorted(live_elements - nft_set.elements)
        new = sorted(nft_set.elements - live_elements)
        if stale:
            drop_elem.append(L.render_elements('delete', nft_set, stale))
        if new:
            add_elem.append(L.render_elements('add', nft_set, new))
        elements_deleted.extend((name, L.render_element(nft_set, element)) for element in stale)
        elements_added.extend((name, L.render_element(nft_set, element)) for element in new)
        interfaces.update(element[0] for element in stale + new)
    edit = _Edit(drop_elem=tuple(drop_elem), drop_set=tuple(drop_set), add_obj=tuple(add_obj),
                 add_elem=tuple(add_elem), elements_added=tuple(elements_added),
                 elements_deleted=tuple(elements_deleted), interfaces=frozenset(interfaces))
    return edit, frozenset(redeclared)


def _chains_edit(layout, live, canonical_chains, redeclared):
    """The regular chains: refill changed ones (or those using a redeclared set), add and delete."""
    fam, table = L.FAMILY, L.TABLE
    wanted = dict((c.name, c) for c in layout.chains)
    flush, drop_chain, add_obj, add_rule = [], [], [], []
    added, replaced, deleted = [], [], []
    base_names = set(b.name for b in L.BASE_CHAINS)
    for name, rules in live.chains.items():
        if name in base_names:
            continue
        chain = wanted.get(name)
        uses_redeclared = any('@%s' % s in r for s in redeclared for r in (chain.rules if chain else ()))
        if chain is None:
            flush.append('flush chain %s %s %s' % (fam, table, name))
            drop_chain.append('delete chain %s %s %s' % (fam, table, name))
            deleted.append(name)
        elif rules != canonical_chains[name] or uses_redeclared:
            flush.append('flush chain %s %s %s' % (fam, table, name))
            add_rule.extend('add rule %s %s %s %s' % (fam, table, name, r) for r in chain.rules)
            replaced.append(name)
    for chain in layout.chains:
        if chain.name not in live.chains:
            add_obj.append('add chain %s %s %s' % (fam, table, chain.name))
            add_rule.extend('add rule %s %s %s %s' % (fam, table, chain.name, r) for r in chain.rules)
            added.append(chain.name)
    return _Edit(flush=tuple(flush), drop_chain=tuple(drop_chain), add_obj=tuple(add_obj), add_rule=tuple(add_rule),
                 added=tuple(added), replaced=tuple(replaced), deleted=tuple(deleted))


def _diff_lines(edit, layout, live, chain_texts):
    """``(before, after)`` lines for --diff: changed chains as nft lists them, then elements."""
    wanted = dict((c.name, c) for c in layout.chains)
    base_names = set(b.name for b in L.BASE_CHAINS)
    replaced = list(edit.replaced)
    before, after = [], list(edit.after)
    for name in replaced + [d for d in edit.deleted if d not in base_names]:
        before.append('chain %s' % name)
        before.extend('  ' + r for r in chain_texts.get(name, ['(%d rules)' % len(live.chains.get(name, ()))]))
    for name in replaced + [a for a in edit.added if a not in base_names]:
        after.append('chain %s' % name)
        after.extend('  ' + r for r in wanted[name].rules)
    before.extend('element %s %s' % item for item in edit.elements_deleted)
    after.extend('element %s %s' % item for item in edit.elements_added)
    return tuple(before), tuple(after)


def plan(runner, layout, live, canonical):
    """The difference between ``live`` (LiveTable) and ``layout`` as one nft script."""
    keys = [chain_key(c.name, layout) for c in layout.chains] + [chain_key(b.name, layout) for b in layout.bases()]
    canonical.learn(runner, layout, keys)
    sets, redeclared = _sets_edit(layout, live)
    edit = _joined([_base_edit(base, layout, live, canonical.chains) for base in L.BASE_CHAINS]
                   + [sets, _chains_edit(layout, live, canonical.chains, redeclared)])
    head = [] if live.exists else ['add table %s %s { comment "%s"; }' % (L.FAMILY, L.TABLE, L.TABLE_COMMENT)]
    base_names = set(b.name for b in L.BASE_CHAINS)
    changed = set(edit.replaced + edit.deleted) - base_names
    chain_texts = read_chain_texts(runner, changed) if (edit.replaced or edit.deleted) else {}
    before, after = _diff_lines(edit, layout, live, chain_texts)
    body = [line for section in SECTIONS for line in getattr(edit, section)]
    script = '\n'.join(head + body) + '\n' if (head or body) else ''
    return NftPlan(script, edit.added, edit.replaced, edit.deleted, edit.elements_added, edit.elements_deleted,
                   tuple(sorted(i for i in edit.interfaces if isinstance(i, str))), before, after)


def remove_plan(live):
    """Script that deletes our table ('' when there is none)."""
    if not live.exists:
        return NftPlan()
    summary = 'table %s %s (%d chains, %d sets)' % (L.FAMILY, L.TABLE, len(live.chains), len(live.sets))
    return NftPlan('delete table %s %s\n' % (L.FAMILY, L.TABLE), chains_deleted=tuple(sorted(live.chains)),
                   before=(summary,))


def diff_dict(nft_plan):
    """Ansible diff dict (lines before/after) for a plan with changes, else None."""
    if not nft_plan.changed:
        return None
    return {'before_header': 'table %s %s (live)' % (L.FAMILY, L.TABLE),
            'after_header': 'table %s %s (desired)' % (L.FAMILY, L.TABLE),
            'before': '\n'.join(nft_plan.before) + ('\n' if nft_plan.before else ''),
            'after': '\n'.join(nft_plan.after) + ('\n' if nft_plan.after else '')}
