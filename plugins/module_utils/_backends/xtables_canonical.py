# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tools' own spelling of our rules ("canonical" text), and its cache.

``*-save`` prints rules in another spelling than libvirt's command lines
(``-p 0x0800`` is saved as ``-p IPv4``, ``-p tcp --dport 22`` as ``-p tcp -m
tcp --dport 22``, ...).  Rather than re-implementing each tool's printer, the
desired chains that must be compared with live ones are loaded into a
throwaway network namespace with the same tools and read back
(:func:`canonicalise`).  Results are cached in ``state_dir`` keyed by (tool
build, family, table, rule text) (:class:`CanonicalCache`), so a no-op run
costs one ``*-save`` per family plus hashing.
"""

from __future__ import annotations

import hashlib

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import ApplyError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_save import (
    parse_save, rule_target, text_target)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_tools import scratch_save
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.json_cache import JsonCache
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import BUILTIN_CHAINS, FAMILY_TOOL
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.restore import (
    declaration_order, natural_key, render_rule, table_text)


class CanonicalCache(JsonCache):
    """``{key: [save-spelled rules]}`` in ``state_dir/cache/canonical-<owner>.json``."""

    VERSION = 1

    def get(self, key):
        value = self.lookup(key)
        return tuple(value) if value is not None else None

    def put(self, key, rules):
        self.store(key, list(rules))


def cache_key(*parts):
    return hashlib.sha1('\0'.join(parts).encode('utf-8')).hexdigest()


def rules_key(rules):
    # Unit separators cannot occur in arguments the tools accept: unambiguous and cheap.
    return '\n'.join('\x1f'.join(rule) for rule in rules)


class TableWork:
    """Desired and live state of one owned table while planning."""

    def __init__(self, family, table, tool_id, desired_table, live_table, ownership):
        self.family = family
        self.name = table
        self.desired_chains = []  # (name, rules as argument tuples, key)
        self.desired_hooks = []  # (Hook, rendered, key)
        self.live_owned = {}
        self.live_other = {}  # built-in chains: where our hooks live
        if desired_table is not None:
            for chain in desired_table.chains:
                self.desired_chains.append(
                    (chain.name, chain.rules, cache_key(tool_id, family, table, 'chain', rules_key(chain.rules))))
            for hook in desired_table.hooks:
                self.desired_hooks.append(
                    (hook, render_rule(hook.args),
                     cache_key(tool_id, family, table, 'hook', hook.chain, '\x1f'.join(hook.args))))
        if live_table is not None:
            for chain in live_table.chains:
                if ownership.owns(family, table, chain.name):
                    self.live_owned[chain.name] = chain
                elif chain.name in BUILTIN_CHAINS:
                    # Only built-in chains hold hooks; an admin's own chain that jumps
                    # into one of ours is the admin's rule and is left alone.
                    self.live_other[chain.name] = chain
        self.desired_names = frozenset(name for name, _r, _k in self.desired_chains)
        self.chain_keys = dict((name, key) for name, _r, key in self.desired_chains)
        self.hook_keys = dict((id(hook), key) for hook, _r, key in self.desired_hooks)


def _declared_for_scratch(work, chains, hooks):
    """Chains to declare so that ``chains`` and ``hooks`` load: themselves and their targets."""
    declared = [name for name, _rules in chains]
    seen = set(declared)

    def add(name):
        if name not in seen:
            declared.append(name)
            seen.add(name)

    for _name, rules in chains:
        for rule in rules:
            target = rule_target(rule)
            if target in work.desired_names:
                add(target)
    for hook, _rendered in hooks:
        target = rule_target(hook.args)
        if target in work.desired_names:
            add(target)
        if hook.chain not in BUILTIN_CHAINS:
            add(hook.chain)
    return declared


def scratch_text(family, works_and_items):
    """Restore text that loads the given chains and hooks into an empty namespace.

    ``works_and_items``: ``[(work, chains, hooks)]`` with chains a list of
    ``(name, rules)`` and hooks a list of ``(Hook, rendered)``.
    """
    out = []
    for work, chains, hooks in works_and_items:
        if not chains and not hooks:
            continue
        out.append(table_text(
            family, work.name, declare=declaration_order(_declared_for_scratch(work, chains, hooks)),
            fill=sorted(chains, key=lambda item: natural_key(item[0])),
            hook_adds=[(hook.chain, rendered, None) for hook, rendered in hooks]))
    return ''.join(out)


def hook_groups(hooks):
    by_chain = {}
    for item in hooks:
        by_chain.setdefault(item[0].chain, []).append(item)
    return by_chain


def canonicalise(runner, backend, need, canon, cache):
    """Load ``need`` (``[(work, chains, hooks)]``) in a scratch namespace; note each
    chain's and hook's saved spelling in ``canon`` and ``cache`` by key."""
    family = backend.family
    saved = parse_save(family, scratch_save(runner, backend, scratch_text(family, need)))
    for work, chains, hooks in need:
        saved_table = saved.get(work.name)
        chain_map = saved_table.chain_map() if saved_table else {}
        for name, _rules in chains:
            rules = chain_map[name].rules if name in chain_map else ()
            canon[work.chain_keys[name]] = tuple(rules)
            cache.put(work.chain_keys[name], rules)
        # Hooks were appended in order to their (empty) chains in the scratch namespace.
        for chain_name, group in hook_groups(hooks).items():
            rules = chain_map[chain_name].rules if chain_name in chain_map else ()
            if len(rules) != len(group):
                raise ApplyError('%s %s: hook rules in %s do not load one-to-one (%d rules for %d hooks)'
                                 % (FAMILY_TOOL[family], work.name, chain_name, len(rules), len(group)))
            for (hook, _rendered), rule in zip(group, rules):
                canon[work.hook_keys[id(hook)]] = (rule,)
                cache.put(work.hook_keys[id(hook)], (rule,))


def learn(saved, keys, cache):
    """Cache the save spelling of chains and hooks we just created, read from the host.

    ``keys``: ``(table, 'chain'|'hook', name or Hook, key, rule count)``.  An
    entry is only learnt when its rule count is the one we loaded, so a
    concurrent external flush in this short window is not mistaken for the
    canonical form.
    """
    chain_maps = dict((name, table.chain_map()) for name, table in saved.items())
    by_target = {}  # (table, chain) -> {target: [rules]}
    for table, kind, item, key, count in keys:
        chain_map = chain_maps.get(table, {})
        if kind == 'chain':
            live = chain_map.get(item)
            if live is not None and len(live.rules) == count:
                cache.put(key, live.rules)
            continue
        index = by_target.get((table, item.chain))
        if index is None:
            index = by_target[(table, item.chain)] = {}
            live = chain_map.get(item.chain)
            for rule in live.rules if live else ():
                index.setdefault(text_target(rule), []).append(rule)
        matches = index.get(rule_target(item.args), ())
        if len(matches) == 1:
            cache.put(key, (matches[0],))
