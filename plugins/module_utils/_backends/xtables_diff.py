# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Diff one owned table (desired vs live, both in the tools' spelling) into changes
and the restore text that makes them.

Per owned chain: the whole ordered rule list (ebtables chain policy must be
ACCEPT).  Per hook: hooks with a ``position`` (libvirt's ``-I FORWARD 1..3``,
``-I INPUT 1``) must be present once and in the desired relative order,
otherwise all of that chain's positioned hooks are deleted and re-inserted at
their positions; appended hooks (``-A PREROUTING -i vnet0 -j libvirt-I-vnet0``)
must be present once.  The restore text ``-D``s stale hooks, declares (=
creates or flushes) every changed and every obsolete chain, refills the
changed ones, ``-X``es the obsolete ones, then inserts/appends hooks.
"""

from __future__ import annotations

import collections

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_canonical import hook_groups
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import (
    ApplyError, ChainChange, HookChange)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_save import (
    rule_target, text_target)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.restore import (
    WHOLE_TABLE_MIN_CHAINS, declaration_order, natural_key, render_rule, table_text)


def _diff_chains(work, canon):
    """``(chain changes, chains to write, obsolete chains, chains to learn)``."""
    changes = []
    write = []  # (name, rules)
    warm = []
    for name, rules, key in work.desired_chains:
        live = work.live_owned.get(name)
        known = canon.get(key)
        if live is None:
            changes.append(ChainChange(work.name, name, 'create', (), known or tuple(render_rule(r) for r in rules)))
            write.append((name, rules))
            if known is None:
                warm.append((name, rules, key))
            continue
        policy_ok = work.family != 'eb' or live.policy == 'ACCEPT'
        if known is None:
            raise ApplyError('internal: no canonical form for live chain %s' % name)
        if tuple(live.rules) != known or not policy_ok:
            changes.append(ChainChange(work.name, name, 'replace', tuple(live.rules), known))
            write.append((name, rules))
    obsolete = [name for name in work.live_owned if name not in work.desired_names]
    changes.extend(ChainChange(work.name, name, 'delete', tuple(work.live_owned[name].rules), ())
                   for name in obsolete)
    return changes, write, obsolete, warm


def _diff_hook_chain(work, ownership, chain_name, wanted, canon, warm):
    """``(deletes, adds)`` for the hooks of one built-in chain."""
    live_chain = work.live_other.get(chain_name)
    live_rules = live_chain.rules if live_chain else ()
    ours = [r for r in live_rules if ownership.owns(work.family, work.name, text_target(r) or '')]
    canon_of = {}
    ours_targets = set(text_target(r) for r in ours)
    for hook, rendered, key in wanted:
        if key in canon:
            canon_of[id(hook)] = canon[key][0]
        elif rule_target(hook.args) in ours_targets:
            raise ApplyError('internal: no canonical form for hook %s' % rendered)
        else:
            warm.append((hook, rendered, key))
    wanted_texts = set(canon_of.values())
    # Live hooks that are not wanted at all.
    deletes = [(chain_name, rule) for rule in ours if rule not in wanted_texts]
    adds = []
    live_counts = collections.Counter(ours)
    remaining = [r for r in ours if r in wanted_texts]
    positioned = sorted((h for h in wanted if h[0].position is not None), key=lambda h: h[0].position)
    pos_texts = [canon_of.get(id(h)) for h, _r, _k in positioned]
    live_pos = [r for r in remaining if r in set(t for t in pos_texts if t)]
    if positioned and live_pos != pos_texts:
        deletes.extend((chain_name, rule) for rule in live_pos)
        length = len(live_rules) - len(deletes)
        for hook, rendered, _key in positioned:
            adds.append((chain_name, rendered, min(hook.position, length + 1)))
            length += 1
    for hook, rendered, _key in (h for h in wanted if h[0].position is None):
        text = canon_of.get(id(hook))
        count = live_counts[text] if text else 0
        if count == 0:
            adds.append((chain_name, rendered, None))
        deletes.extend((chain_name, text) for _extra in range(max(count - 1, 0)))
    return deletes, adds


def diff_table(work, canon, ownership, whole_table_read=False):
    """``(restore text or '', chain changes, hook changes, (chains to learn, hooks to learn))``.

    ``whole_table_read``: the restore tool is an nft variant, which loads big
    restores faster when told to read the whole table (see
    :data:`._ruleset.restore.WHOLE_TABLE_MIN_CHAINS`).
    """
    chain_changes, write_chains, obsolete, warm_chains = _diff_chains(work, canon)
    warm_hooks = []
    deletes = []
    adds = []
    desired_by_chain = hook_groups(work.desired_hooks)
    hook_chains = list(desired_by_chain) + [c for c in work.live_other if c not in desired_by_chain]
    for chain_name in hook_chains:
        chain_deletes, chain_adds = _diff_hook_chain(work, ownership, chain_name,
                                                     desired_by_chain.get(chain_name, []), canon, warm_hooks)
        deletes.extend(chain_deletes)
        adds.extend(chain_adds)
    hook_changes = [HookChange(work.name, chain, 'delete', rule) for chain, rule in deletes]
    hook_changes.extend(HookChange(work.name, chain, 'append' if position is None else 'insert', rendered, position)
                        for chain, rendered, position in adds)
    if not (write_chains or obsolete or deletes or adds):
        return '', chain_changes, hook_changes, (warm_chains, warm_hooks)
    declare = declaration_order([n for n, _r in write_chains] + obsolete)
    whole_table = None
    if whole_table_read and len(declare) >= WHOLE_TABLE_MIN_CHAINS:
        whole_table = set(text_target(rendered) for _chain, rendered, _position in adds)
    text = table_text(work.family, work.name, hook_deletes=deletes, declare=declare,
                      fill=sorted(write_chains, key=lambda item: natural_key(item[0])),
                      remove=obsolete, hook_adds=adds, whole_table=whole_table)
    return text, chain_changes, hook_changes, (warm_chains, warm_hooks)
