# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The xtables engine's plan: what differs between desired and live rules, per family.

:class:`Plan` holds one :class:`FamilyPlan` per family (its chain and hook
changes and the one ``*-restore --noflush`` text that makes them);
:func:`plan_diff` turns it into Ansible diff dicts and
:func:`describe_chain_change` / :func:`describe_hook_change` into the report
lines of ``_reconcile.host``.  Pure data and functions: nothing here runs a tool.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import FAMILY_TOOL

_COUNT_NAME = {'create': 'chains_created', 'replace': 'chains_replaced', 'delete': 'chains_deleted'}


class ApplyError(NetfilterError):
    """The desired ruleset cannot be applied as given (nothing was changed)."""


@dataclasses.dataclass(frozen=True)
class ChainChange:
    table: str
    chain: str
    action: str  # 'create', 'replace' or 'delete'
    before: tuple  # live rules, save spelling
    after: tuple  # desired rules: save spelling when known, else restore spelling


@dataclasses.dataclass(frozen=True)
class HookChange:
    table: str
    chain: str
    action: str  # 'insert', 'append' or 'delete'
    rule: str  # rule text (save spelling for deletes, restore spelling for adds)
    position: object = None


@dataclasses.dataclass(frozen=True)
class FamilyPlan:
    family: str
    backend: str
    chain_changes: tuple = ()
    hook_changes: tuple = ()
    restore_text: str = ''

    @property
    def changed(self):
        return bool(self.restore_text)


@dataclasses.dataclass(frozen=True)
class Plan:
    families: tuple = ()  # FamilyPlan
    # Created chains/hooks whose save spelling is learnt after apply, per family:
    # ((family, ((table, 'chain'|'hook', name or Hook, key, rule count), ...)), ...)
    warmups: tuple = ()

    @property
    def changed(self):
        return any(f.changed for f in self.families)

    def family(self, family):
        for plan in self.families:
            if plan.family == family:
                return plan
        return None


@dataclasses.dataclass(frozen=True)
class SyncResult:
    changed: bool
    plan: Plan
    diff: tuple = ()
    writes: tuple = ()
    timings: tuple = ()  # ((phase, seconds), ...)

    def summary(self):
        """JSON-friendly per-family counts for module results."""
        out = {}
        for fam in self.plan.families:
            counts = {'chains_created': 0, 'chains_replaced': 0, 'chains_deleted': 0,
                      'hooks_added': 0, 'hooks_deleted': 0}
            for change in fam.chain_changes:
                counts[_COUNT_NAME[change.action]] += 1
            for hook in fam.hook_changes:
                counts['hooks_deleted' if hook.action == 'delete' else 'hooks_added'] += 1
            counts['backend'] = fam.backend
            key = FAMILY_TOOL[fam.family]
            # a second plan of one family: our chains in the other variant (nft/legacy), removed
            out['%s (%s)' % (key, fam.backend) if key in out else key] = counts
        return out


def describe_chain_change(family, change):
    """What differs in one owned chain, as short lines for a report."""
    where = '%s %s %s' % (FAMILY_TOOL[family], change.table, change.chain)
    if change.action == 'create':
        return ['missing chain %s (%d rules)' % (where, len(change.after))]
    if change.action == 'delete':
        return ['stale chain %s' % where]
    before = set(change.before)
    after = set(change.after)
    lines = ['missing rule %s: %s' % (where, rule) for rule in change.after if rule not in before]
    lines.extend('unexpected rule %s: %s' % (where, rule) for rule in change.before if rule not in after)
    return lines or ['rule order or policy differs in chain %s' % where]


def describe_hook_change(family, hook):
    """One report line for a hook (a jump from a built-in chain into ours) to add or delete."""
    what = 'stale hook' if hook.action == 'delete' else 'missing hook'
    return '%s %s %s %s: %s' % (what, FAMILY_TOOL[family], hook.table, hook.chain, hook.rule)


def plan_diff(plan):
    """Ansible diff dicts: per family, the changed chains' lines before and after."""
    diffs = []
    for fam in plan.families:
        if not fam.changed:
            continue
        before = []
        after = []
        for change in fam.chain_changes:
            header = '# %s %s' % (change.table, change.chain)
            if change.action != 'create':
                before.append(header)
                before.extend('-A %s %s' % (change.chain, r) for r in change.before)
            if change.action != 'delete':
                after.append(header)
                after.extend('-A %s %s' % (change.chain, r) for r in change.after)
        for hook in fam.hook_changes:
            if hook.action == 'delete':
                before.append('# %s %s (hook)\n-A %s %s' % (hook.table, hook.chain, hook.chain, hook.rule))
            elif hook.action == 'insert':
                after.append('# %s %s (hook)\n-I %s %s %s'
                             % (hook.table, hook.chain, hook.chain, hook.position, hook.rule))
            else:
                after.append('# %s %s (hook)\n-A %s %s' % (hook.table, hook.chain, hook.chain, hook.rule))
        label = '%s (%s)' % (FAMILY_TOOL[fam.family], fam.backend)
        diffs.append({
            'before_header': '%s: live' % label,
            'after_header': '%s: desired' % label,
            'before': '\n'.join(before) + ('\n' if before else ''),
            'after': '\n'.join(after) + ('\n' if after else ''),
        })
    return diffs
