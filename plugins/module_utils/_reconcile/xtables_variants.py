# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our xtables chains in the variant a host no longer uses (iptables-nft vs iptables-legacy).

The nft and legacy variants of iptables are two rule sets, both in force.  When the variant
the engine uses changes (the host setting ``xtables_backend``, or the host's ``iptables``
alternative under ``auto``), the chains a run made with the old one would stay in force: a
guest would keep its old filter, also after it is unbound.  So every run removes our chains
and hooks from the other variant, after its own rules are in place with the new one (a
guest is filtered by one or both, never by none).

To cost nothing in the steady state, ``state_dir/cache/xtables-variants-<owner>.json`` lists
per family the variants runs applied with: the current one is added before a run's commit,
and the others are dropped once emptied of our chains.  Without that record every other
installed variant is read once (a lost cache makes a run slower, never wrong).  Legacy
ebtables is left out: a Perl tool that probes kernel modules, and no kernel table here.
"""

from __future__ import annotations

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import Ownership
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import Plan
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_tools import (
    BACKENDS, make_backend)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import find_tool
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.json_cache import JsonCache, cache_path
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import FAMILY_TOOL, Ruleset


class VariantRecord(JsonCache):
    """``{family: [variant, ...]}``: the variants runs applied ``owner``'s chains with."""

    VERSION = 1

    def __init__(self, state_dir, owner):
        super().__init__(cache_path(state_dir, 'xtables-variants-%s' % owner))


def note_variants(engine, state_dir):
    """Before a real run's commit: record the variants it applies with (a run killed after
    its commit still leaves the record that names them)."""
    record = VariantRecord(state_dir, engine.ownership.name)
    for family, backend in engine.backends.items():
        known = record.lookup(family)
        if known is not None and backend.name not in known:
            record.store(family, sorted(set(known) | {backend.name}))
    record.save()


def _installed(family, name):
    tool = FAMILY_TOOL[family]
    return bool(find_tool('%s-%s-save' % (tool, name)) and find_tool('%s-%s-restore' % (tool, name)))


def _others(engine, record):
    """``{variant: (family, ...)}``: the variants other than the engine's to empty of our chains."""
    out = {}
    for family, backend in engine.backends.items():
        known = record.lookup(family)
        for name in BACKENDS:
            if name == backend.name or (known is not None and name not in known):
                continue
            if (family == 'eb' and name == 'legacy') or not _installed(family, name):
                continue
            out.setdefault(name, []).append(family)
    return out


def _record_current(engine, record):
    for family, backend in engine.backends.items():
        record.store(family, [backend.name])
    record.save()


def plan_other_variants(engine, state_dir, check_mode=False, keep=None):
    """``((other engine, Plan), ...)``: removing our chains and hooks from the variants ``engine``
    does not use (``keep(texts)``: a Ruleset of live rules there to leave as they are, or None).
    A real run that finds nothing there records that (no read next time)."""
    record = VariantRecord(state_dir, engine.ownership.name)
    planned = []
    for name, wanted in sorted(_others(engine, record).items()):
        ownership = Ownership(engine.ownership.name, tuple(
            chain for chain in engine.ownership.chains if chain[0] in wanted))
        other = XtablesEngine(ownership, runner=engine.runner, lock_timeout=engine.lock_timeout, backends=dict(
            (family, make_backend(family, name, engine.lock_timeout)) for family in wanted))
        texts = other.read_texts()
        planned.append((other, other.plan((keep(texts) if keep is not None else None) or Ruleset(), texts)))
    if not check_mode and not any(plan.changed for _other, plan in planned):
        _record_current(engine, record)
    return tuple(planned)


def commit_other_variants(engine, state_dir, planned):
    """Apply what :func:`plan_other_variants` planned (after the engine's own commit)."""
    for other, plan in planned:
        if plan.changed:
            other.commit(plan)
    _record_current(engine, VariantRecord(state_dir, engine.ownership.name))


def changed_plan(planned):
    """The changed family plans of ``planned`` as one :class:`Plan` (backend: the other variant)."""
    return Plan(tuple(fam for _other, plan in planned for fam in plan.families if fam.changed))


def leave_other_variants(engine, state_dir, check_mode=False, keep=None):
    """Plan and (unless ``check_mode``) apply the removal of our chains and hooks from the variants
    ``engine`` does not use; returns the changed family plans as one :class:`Plan`."""
    planned = plan_other_variants(engine, state_dir, check_mode, keep)
    if not check_mode and any(plan.changed for _other, plan in planned):
        commit_other_variants(engine, state_dir, planned)
    return changed_plan(planned)
