# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NIC chains of interfaces that are not ours: kept exactly as they are.

libvirt's nwfilter driver (running, or stopped with its rules left in force) names a NIC's
chains as we do (``libvirt-I-vnet1``, ``I-vnet1-mac``, ``FI-vnet1``, its jumps in the shared
``libvirt-in``/``-out``/``-in-post``/``-host-in`` chains and the ebtables hooks).  We own
chains by name, so without this a run would delete the chains of every interface it does not
bind: a guest libvirt still filters, or one not yet handed over while a host moves NIC by NIC
(``examples/import_from_libvirt.yml`` binds one NIC per task), would be unfiltered.

Ours are the interfaces of the stored bindings (before and after the run) and the ones runs
applied (``_store.bindings.load_applied``: also a binding removed from the store by hand).  The chains, hooks and shared-chain jumps of any other
interface found live are added to the desired rules as they are, so no run changes or removes
them; binding that interface (``takeover``) makes them ours.
"""

from __future__ import annotations

import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_save import (
    parse_save, rule_target, split_words)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import (
    BASE_CHAINS, BASE_HOOKS, interface_of_root_chain)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import (
    BUILTIN_CHAINS, Chain, Hook, Ruleset, Table)

_TABLE = {'eb': 'nat', 'ip': 'filter', 'ip6': 'filter'}
_SUB_CHAIN_PREFIXES = ('I-', 'O-', 'J-', 'P-')
_PHYSDEV = ('--physdev-in', '--physdev-out')
# ":libvirt-I-vnet0 ACCEPT" (ebtables), ":FI-vnet0 - [0:0]" (iptables): declarations of root chains
_DECLARED = re.compile(r'^:((?:libvirt-[IOJP]|F[IOJP]|H[IJ])-\S+) ', re.M)


def chain_owner(family, name, known):
    """The interface a NIC chain belongs to (root chains by name, ebtables sub-chains by the
    first interface of ``known`` (longest first) they start with), or None (shared and built-in chains)."""
    if name in BUILTIN_CHAINS or name in BASE_CHAINS:
        return None
    interface = interface_of_root_chain(family, name)
    if interface is None and family == 'eb' and name[:2] in _SUB_CHAIN_PREFIXES:
        interface = next((i for i in known if name[2:].startswith(i + '-')), None)
    return interface


def _names_foreign(words, foreign, foreign_chains):
    if rule_target(words) in foreign_chains:
        return True
    return any(words[i] in _PHYSDEV and i + 1 < len(words) and words[i + 1] in foreign
               for i in range(len(words)))


def _family_table(family, table, foreign, known):
    chains = table.chain_map()
    names = set(c.name for c in table.chains if chain_owner(family, c.name, known) in foreign)
    kept = [Chain(c.name, tuple(split_words(r) for r in c.rules)) for c in table.chains if c.name in names]
    hooks = []
    for chain in table.chains:
        if chain.name in BUILTIN_CHAINS:
            hooks.extend(Hook(chain.name, tuple(split_words(r)), None) for r in chain.rules
                         if rule_target(split_words(r)) in names)
    for shared in BASE_CHAINS:
        if family == 'eb' or shared not in chains:
            continue
        lines = tuple(words for words in (split_words(r) for r in chains[shared].rules)
                      if _names_foreign(words, foreign, names))
        if lines:
            kept.append(Chain(shared, lines))
            hooks.extend(Hook(builtin, ('-j', target), position) for builtin, target, position in BASE_HOOKS
                         if target == shared)
    return Table(family, _TABLE[family], tuple(kept), tuple(hooks)) if kept else None


def foreign_ruleset(live_texts, ours):
    """The live NIC chains (with their hooks and shared-chain jumps) of interfaces not in ``ours``,
    as a :class:`Ruleset` to add to the desired one; None when there are none."""
    # Root chain declarations first (one regex per dump): the common case, no foreign interface,
    # costs no parse of the dumps.
    roots = set()
    for family, text in live_texts.items():
        roots.update(i for i in (interface_of_root_chain(family, name) for name in _DECLARED.findall(text or ''))
                     if i)
    foreign = roots - set(ours)
    if not foreign:
        return None
    saved = dict((family, parse_save(family, text)) for family, text in live_texts.items() if text)
    known = sorted(foreign | set(ours), key=len, reverse=True)
    tables = []
    for family, by_name in sorted(saved.items()):
        table = by_name.get(_TABLE.get(family))
        kept = _family_table(family, table, foreign, known) if table is not None else None
        if kept is not None:
            tables.append(kept)
    return Ruleset(tuple(tables)) if tables else None
