# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Neutral, immutable model of the xtables rules we own (its restore text: :mod:`._ruleset.restore`).

Every stage after the compilers speaks this model: the nwfilter and virtual
network compilers produce it, the apply engine reads the live kernel into it,
diffs the two and renders the difference as ``*-restore --noflush`` input.

A rule is a tuple of arguments exactly as they follow ``-A CHAIN`` on an
ebtables/iptables command line, ending with ``-j TARGET`` / ``-g TARGET``.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.restore import render_table

# Families we render restore text for.
FAMILIES = ('eb', 'ip', 'ip6')
# The one family -> xtables tool map (ebtables-restore, iptables-save, ... derive from it).
FAMILY_TOOL = {'eb': 'ebtables', 'ip': 'iptables', 'ip6': 'ip6tables'}

# Chains that exist in the kernel without being declared; we only add hooks to them.
BUILTIN_CHAINS = frozenset(('PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING', 'BROUTING'))


@dataclasses.dataclass(frozen=True)
class Chain:
    """A chain we own completely: declared, flushed and refilled as a whole."""

    name: str
    rules: tuple = ()  # tuple of argument tuples, in order


@dataclasses.dataclass(frozen=True)
class Hook:
    """One rule of ours in a chain we do not own (a built-in chain).

    ``position`` is the 1-based place libvirt inserts it at (``-I CHAIN N``);
    ``None`` means appended (``-A``).
    """

    chain: str
    args: tuple
    position: int | None = None


@dataclasses.dataclass(frozen=True)
class Table:
    family: str  # 'eb', 'ip' or 'ip6'
    name: str  # 'nat', 'filter', 'mangle'
    chains: tuple = ()  # tuple of Chain, in creation order
    hooks: tuple = ()  # tuple of Hook, in creation order

    def chain(self, name):
        for chain in self.chains:
            if chain.name == name:
                return chain
        return None

    def is_empty(self):
        return not self.chains and not self.hooks


@dataclasses.dataclass(frozen=True)
class Ruleset:
    tables: tuple = ()  # tuple of Table

    def table(self, family, name):
        for table in self.tables:
            if table.family == family and table.name == name:
                return table
        return None

    def family_tables(self, family):
        return tuple(t for t in self.tables if t.family == family and not t.is_empty())

    def families(self):
        return tuple(f for f in FAMILIES if self.family_tables(f))

    def merge(self, other):
        """Union of two rulesets (e.g. of two NICs).

        Chains of the same name are concatenated (shared chains such as
        ``libvirt-in`` collect one rule per NIC); identical hooks are kept once.
        """
        return merge_rulesets((self, other))

    def render(self, family):
        """Restore-format text for ``family`` that loads this ruleset with
        ``--noflush`` into a host that has none of it yet ('' if nothing)."""
        return ''.join(render_table(t) for t in self.family_tables(family))

    def render_by_tool(self):
        """``{'ebtables': text, 'iptables': text, 'ip6tables': text}`` (the ``rendered`` outputs)."""
        return dict((FAMILY_TOOL[family], self.render(family)) for family in FAMILIES)


def merge_rulesets(rulesets):
    order = []
    chains = {}
    hooks = {}
    for ruleset in rulesets:
        for table in ruleset.tables:
            key = (table.family, table.name)
            if key not in chains:
                order.append(key)
                chains[key] = {}
                hooks[key] = {}
            for chain in table.chains:
                chains[key].setdefault(chain.name, []).extend(chain.rules)
            for hook in table.hooks:
                hooks[key].setdefault(hook, None)
    return Ruleset(tuple(
        Table(family=key[0], name=key[1],
              chains=tuple(Chain(name, tuple(rules)) for name, rules in chains[key].items()),
              hooks=tuple(hooks[key]))
        for key in order))
