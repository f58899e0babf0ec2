# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guest NIC filters, xtables layout: make the host's ebtables/iptables rules match
every stored binding (the NIC stage of :mod:`._reconcile.host`).

:func:`sync_host` (takes the ``state_dir`` lock) and :func:`sync_nics_locked`
(the caller holds it) update the stored bindings if asked, compile every
binding (through :class:`CompiledCache`), read the live rules once, plan with
the xtables engine and apply at most one ``*-restore`` per family.  The
bindings file is written only after the kernel accepted the rules, so a
failed run leaves both as they were.

Fail closed: by default every stored binding is applied whether its tap
exists or not (ebtables and iptables match interface names, so the rules are
in force from the first frame of a tap created later), and no run removes a
binding's rules because its tap is absent.  ``skip_missing_interfaces=True``
keeps the old behaviour (absent taps are stored, reported and not applied).

No-op fast path: :class:`VerifiedState` remembers the last (desired, live
dump) pair a real run found in sync; the same pair again skips compiling and
diffing.
"""

from __future__ import annotations

import dataclasses
import hashlib

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import (
    FamilyPlan, Plan, SyncResult, describe_chain_change, describe_hook_change, plan_diff)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_save import (
    rule_target, split_words)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import (
    COMPILER_VERSION, check_chain_collisions, compile_binding, interface_of_root_chain, parameter_warnings)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import BindingError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.json_cache import JsonCache, cache_path
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.interfaces import link_exists, link_lookup
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.resolve import tree_digest
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import xtables_variants
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile.foreign_nics import foreign_ruleset
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import (
    Chain, Hook, Ruleset, Table, merge_rulesets)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import filters as filter_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.bindings import (
    load_applied, load_bindings, next_seq, save_applied, save_bindings)


def interface_exists(name):
    return link_exists(name)


@dataclasses.dataclass(frozen=True)
class HostSyncResult:
    changed: bool  # kernel or store changed (or would, in check mode)
    kernel_changed: bool
    bindings: tuple  # StoredBinding after the run, stored order
    added: tuple = ()  # interfaces newly bound
    updated: tuple = ()  # interfaces rebound with other mac/filter/parameters
    removed: tuple = ()  # interfaces unbound
    skipped: tuple = ()  # interfaces whose bindings were not applied (skip_missing_interfaces and absent)
    interfaces_changed: tuple = ()  # interfaces whose own chains were (re)written or removed
    sync: object = None  # xtables_plan.SyncResult
    warnings: tuple = ()
    previous: tuple = ()  # StoredBinding before the run, stored order
    interface_details: tuple = ()  # ((interface, (what differed, ...)), ...) for interfaces_changed
    absent: tuple = ()  # bound interfaces that do not exist now (their rules are installed unless skipped)


def load_host_filters(state_dir):
    """Built-in filters overlaid by the ones nwfilter defined in ``state_dir``."""
    return filter_store.load_filters(state_dir)


def compile_bindings(bindings, filters, cache=None):
    """``[(binding, Ruleset)]`` in the given order; compiler errors name the interface.

    With a :class:`CompiledCache`, bindings whose inputs (binding and every
    filter of its tree) are unchanged are taken from it instead of compiled.
    """
    out = []
    for binding in bindings:
        key = cache.key(binding, filters) if cache is not None else None
        ruleset = cache.get(key) if key is not None else None
        if ruleset is None:
            ruleset = compile_binding(binding.interface, binding.mac, binding.filter, binding.parameters, filters)
            if key is not None:
                cache.put(key, ruleset)
        out.append((binding, ruleset))
    check_chain_collisions([(binding.interface, ruleset) for binding, ruleset in out])
    return out


def upsert_warnings(bindings, filters):
    """Warnings about parameters of ``bindings`` that are ignored (libvirt drops
    them too and no rule uses them); a used one raises instead."""
    found = []
    for binding in bindings:
        if binding.filter in filters:
            found.extend(parameter_warnings(binding.interface, binding.filter, filters, binding.parameters))
    return found


def ruleset_to_data(ruleset):
    return [[t.family, t.name, [[c.name, [list(r) for r in c.rules]] for c in t.chains],
             [[h.chain, list(h.args), h.position] for h in t.hooks]] for t in ruleset.tables]


def ruleset_from_data(data):
    return Ruleset(tuple(
        Table(family, name, tuple(Chain(c, tuple(tuple(r) for r in rules)) for c, rules in chains),
              tuple(Hook(chain, tuple(args), position) for chain, args, position in hooks))
        for family, name, chains, hooks in data))


class CompiledCache(JsonCache):
    """Compiled rulesets of bindings in ``state_dir/cache/compiled.json``.

    The key digests the compiler version, the binding and the definition of
    every filter in the binding's tree (missing references included), so a
    redefined filter or a changed parameter is a miss.  Compiling 1,000
    clean-traffic bindings takes ~0.7 s here; loading them from the cache ~0.1 s.
    """

    VERSION = 1

    def __init__(self, state_dir):
        super().__init__(cache_path(state_dir, 'compiled'))
        self._tree_digests = {}

    def _tree_digest(self, filter_name, filters):
        digest = self._tree_digests.get(filter_name)
        if digest is None:
            digest = self._tree_digests[filter_name] = tree_digest(filter_name, filters)
        return digest

    def key(self, binding, filters):
        text = repr((COMPILER_VERSION, binding.interface, binding.mac, binding.filter, binding.parameters,
                     self._tree_digest(binding.filter, filters)))
        return hashlib.sha256(text.encode('utf-8')).hexdigest()

    def get(self, key):
        data = self.lookup(key)
        return ruleset_from_data(data) if data is not None else None

    def put(self, key, ruleset):
        self.store(key, ruleset_to_data(ruleset))


def _chain_owner_map(compiled):
    """chain name -> interface, for the chains that belong to one NIC only."""
    counts = {}
    owner = {}
    for binding, ruleset in compiled:
        for table in ruleset.tables:
            for chain in table.chains:
                key = (table.family, table.name, chain.name)
                counts[key] = counts.get(key, 0) + 1
                owner[key] = binding.interface
    return dict((k, v) for k, v in owner.items() if counts[k] == 1)


def interface_changes(plan, owners):
    """``((interface, (line, ...)), ...)``: what differs for each interface whose own
    chains, or the hooks that jump to them, change in ``plan`` (first-seen order)."""
    found = {}

    def note(interface, line):
        if interface:
            found.setdefault(interface, []).append(line)

    for fam in plan.families:
        for change in fam.chain_changes:
            interface = owners.get((fam.family, change.table, change.chain))
            if interface is None and change.action == 'delete':
                interface = interface_of_root_chain(fam.family, change.chain)
            for line in describe_chain_change(fam.family, change):
                note(interface, line)
        for hook in fam.hook_changes:
            target = rule_target(split_words(hook.rule))
            note(owners.get((fam.family, hook.table, target)) or interface_of_root_chain(fam.family, target or ''),
                 describe_hook_change(fam.family, hook))
    return tuple((interface, tuple(lines)) for interface, lines in found.items())


def check_request(upserts, removals):
    seen = set()
    for binding in upserts:
        if binding.interface in seen:
            raise BindingError('interface %s is listed twice' % binding.interface)
        seen.add(binding.interface)
    overlap = sorted(seen & set(removals))
    if overlap:
        raise BindingError('interfaces %s are both bound and unbound in one call' % ', '.join(overlap))
    return seen


def _merge_request(stored, upserts, removals, exclusive, requested):
    """The stored bindings after the request: ``(final, added, updated, removed)``."""
    by_interface = dict((b.interface, b) for b in stored)
    seq = next_seq(stored)
    added, updated, removed = [], [], []
    result = dict(by_interface)
    for binding in upserts:
        old = by_interface.get(binding.interface)
        if old is None:
            result[binding.interface] = dataclasses.replace(binding, seq=seq)
            seq += 1
            added.append(binding.interface)
        elif not old.same_binding(binding):
            result[binding.interface] = dataclasses.replace(binding, seq=old.seq)
            updated.append(binding.interface)
    unbind = set(removals)
    if exclusive:
        unbind |= set(by_interface) - requested
    for interface in sorted(unbind):
        if interface in result:
            del result[interface]
            removed.append(interface)
    final = tuple(b if b.seq == i + 1 else dataclasses.replace(b, seq=i + 1) for i, b in
                  enumerate(sorted(result.values(), key=lambda b: (b.seq, b.interface))))
    return final, tuple(added), tuple(updated), tuple(removed)


def sync_host(state_dir, engine, upserts=(), removals=(), exclusive=False, check_mode=False,
              filters=None, skip_missing_interfaces=False, interface_exists_fn=None,
              lock_timeout=60, coexistence=None):
    """Update the stored bindings and make the host's rules match all of them.

    ``upserts``: StoredBinding objects to create or update (seq ignored);
    ``removals``: interfaces to unbind; ``exclusive``: also unbind every
    stored interface not in ``upserts``.  One read of the live state and at
    most one restore per family, under the state_dir lock (see
    :func:`sync_nics_locked` for callers that hold it).
    """
    check_request(upserts, removals)
    with state_lock(state_dir, lock_timeout, exclusive=not check_mode, create=not check_mode):
        return sync_nics_locked(state_dir, engine, upserts=upserts, removals=removals, exclusive=exclusive,
                                check_mode=check_mode, filters=filters,
                                skip_missing_interfaces=skip_missing_interfaces,
                                interface_exists_fn=interface_exists_fn, coexistence=coexistence)


def _split_absent(final, skip_missing_interfaces, interface_exists_fn):
    """``(active, skipped, absent, warnings)``: which bindings are applied."""
    active, skipped, absent, warnings = [], [], [], []
    for binding in final:
        if interface_exists_fn(binding.interface):
            active.append(binding)
            continue
        absent.append(binding.interface)
        if skip_missing_interfaces:
            skipped.append(binding.interface)
            warnings.append('interface %s does not exist; its binding (filter %s) is stored but not applied'
                            % (binding.interface, binding.filter))
        else:
            active.append(binding)  # fail closed: its rules wait for the tap
    return active, tuple(skipped), tuple(absent), warnings


def sync_nics_locked(state_dir, engine, upserts=(), removals=(), exclusive=False, check_mode=False,
                     filters=None, skip_missing_interfaces=False, interface_exists_fn=None, coexistence=None):
    """:func:`sync_host` for a caller that already holds the ``state_dir`` lock.

    ``coexistence`` (a ``_host.libvirt_nwfilter.Coexistence``): refuse to bind an
    interface that is new to the store while libvirt's nwfilter driver owns it."""
    requested = check_request(upserts, removals)
    stored = load_bindings(state_dir)
    final, added, updated, removed = _merge_request(stored, upserts, removals, exclusive, requested)
    if coexistence is not None:
        coexistence.check_files(added)
    active, skipped, absent, warnings = _split_absent(final, skip_missing_interfaces,
                                                      interface_exists_fn or link_lookup())
    if filters is None:
        filters = load_host_filters(state_dir)
    compiled_cache = CompiledCache(state_dir)
    warnings.extend(upsert_warnings(upserts, filters))
    # Bindings given now are compiled even when they are skipped: bad input fails here.
    active_names = set(b.interface for b in active)
    compile_bindings([b for b in upserts if b.interface not in active_names], filters, compiled_cache)

    applied = load_applied(state_dir)
    ours = our_interfaces(stored, final, applied)

    def keep(texts):
        return foreign_ruleset(texts, ours)
    plan, compiled, live_digest, desired_key, fast_path = _plan_nics(
        state_dir, engine, active, filters, compiled_cache,
        live_check(state_dir, coexistence, added, check_mode, applied), keep=keep)
    if not check_mode and not fast_path and plan.changed:
        xtables_variants.note_variants(engine, state_dir)
    writes_before = len(engine.runner.writes())
    if not fast_path:  # the caches keep what this run used: only a run that compiled and diffed knows
        engine.commit(plan, check_mode)
    # Then our chains go from the other iptables variant, if a run used it (new rules first).
    left = xtables_variants.leave_other_variants(engine, state_dir, check_mode, keep=keep)
    writes = tuple(engine.runner.writes()[writes_before:])
    plan = Plan(plan.families + left.families, plan.warmups)
    if not check_mode:
        if not plan.changed:
            VerifiedState(state_dir, engine.ownership.name).record(desired_key, live_digest)
        if added or updated or removed:
            save_bindings(state_dir, final)
        record_applied(state_dir, applied, active)
        if not fast_path:
            compiled_cache.save()
    sync = SyncResult(plan.changed, plan, tuple(plan_diff(plan)), writes)
    details = interface_changes(plan, _chain_owner_map(compiled))
    return HostSyncResult(
        changed=bool(plan.changed or added or updated or removed),
        kernel_changed=plan.changed,
        bindings=final, added=added, updated=updated, removed=removed,
        skipped=skipped, interfaces_changed=tuple(i for i, _l in details),
        sync=sync, warnings=tuple(warnings), previous=tuple(stored),
        interface_details=details, absent=absent)


def our_interfaces(stored, final, applied):
    """The interfaces whose NIC chains are ours: stored before or after the run, or applied by a run
    (the chains of any other interface are kept as they are, see :mod:`.foreign_nics`)."""
    return frozenset(b.interface for b in tuple(stored) + tuple(final)) | applied


def record_applied(state_dir, applied, active):
    """After a real run's commit: the interfaces whose chains are now ours (written when it differs)."""
    now = frozenset(b.interface for b in active)
    if now != applied:
        save_applied(state_dir, now)


def live_check(state_dir, coexistence, added, check_mode, applied):
    """The check of the live xtables texts before a run binds ``added`` (None: nothing to check).

    Chains of an added interface refuse it unless they are ours: ``applied`` lists it (a run wrote
    them and was stopped before it stored the binding: killed, or a later family's restore failed).
    A real run records ``added`` as applied once they passed, before its commit."""
    if coexistence is None or not added:
        return None

    def check(texts):
        coexistence.check_chains([i for i in added if i not in applied], texts)
        if not check_mode and not set(added) <= applied:
            save_applied(state_dir, applied | set(added))
    return check


def _plan_nics(state_dir, engine, active, filters, compiled_cache, check_live=None, keep=None):
    """``(plan, compiled, live_digest, desired_key, fast_path)`` for the ``active`` bindings;
    ``check_live(live_texts)`` may refuse the live state before anything is planned;
    ``keep(live_texts)``: a Ruleset of live rules to keep as they are (or None)."""
    # The one read of the live state runs in the background while we compile.
    reads = engine.start_reads()
    verified = VerifiedState(state_dir, engine.ownership.name)
    desired_key = _desired_key(active, filters, compiled_cache, engine)
    compiled = desired = None
    try:
        if not verified.knows(desired_key):
            # The desired state is new: the full diff is needed whatever the live state is.
            compiled = compile_bindings(active, filters, compiled_cache)
            desired = merge_rulesets([ruleset for _b, ruleset in compiled])
    except BaseException:
        engine.cancel_reads(reads)
        raise
    live_texts = engine.finish_reads(reads)
    if check_live is not None:
        check_live(live_texts)
    live_digest = engine.live_digest(live_texts)
    if verified.matches(desired_key, live_digest):
        # Byte-identical live state and identical desired state as a run that found
        # nothing to change: skip compiling, merging and diffing (the no-op fast path).
        plan = Plan(tuple(FamilyPlan(f, engine.backends[f].name) for f in engine.ownership.families()))
        return plan, [], live_digest, desired_key, True
    if desired is None:
        compiled = compile_bindings(active, filters, compiled_cache)
        desired = merge_rulesets([ruleset for _b, ruleset in compiled])
    kept = keep(live_texts) if keep is not None else None
    if kept is not None:
        desired = merge_rulesets([desired, kept])
    return engine.plan(desired, live_texts), compiled, live_digest, desired_key, False


def _desired_key(active, filters, compiled_cache, engine):
    """Digest of everything the desired rules depend on: bindings applied (in order) and their filter trees."""
    hasher = hashlib.sha256(repr((engine.ownership.name, sorted(
        (f, b.tool_id) for f, b in engine.backends.items()))).encode('utf-8'))
    for binding in active:
        hasher.update(compiled_cache.key(binding, filters).encode('ascii'))
    return hasher.hexdigest()


class VerifiedState(JsonCache):
    """The last (desired state, live dump) pair a real run found to need no change.

    Kept in ``state_dir/cache/verified-<owner>.json``.  When both digests
    match again, the live rules are byte-identical to rules already verified
    against the same desired rules, so the diff is skipped.  Any difference
    (a drift, an admin rule, a new binding) just takes the full path.
    """

    VERSION = 1

    def __init__(self, state_dir, owner):
        super().__init__(cache_path(state_dir, 'verified-%s' % owner))

    def knows(self, desired_key):
        return bool(self.entries) and self.entries.get('desired') == desired_key

    def matches(self, desired_key, live_digest):
        return self.knows(desired_key) and self.entries.get('live') == live_digest

    def record(self, desired_key, live_digest):
        if self.matches(desired_key, live_digest):
            return
        self.store('desired', desired_key)
        self.store('live', live_digest)
        self.save()


def filter_users(filter_name, result, filters):
    """Interfaces among ``result.bindings`` whose filter tree contains ``filter_name`` and that were applied."""
    return tuple(b.interface for b in result.bindings
                 if filter_name in filter_store.reference_closure(b.filter, filters)
                 and b.interface not in result.skipped)


def rebuild_filter_users(state_dir, filter_name, engine, filters=None, check_mode=False, **kwargs):
    """After ``filter_name`` was (re)defined: re-apply every stored binding.

    Returns ``(rebuilt, HostSyncResult)``; ``rebuilt`` lists the stored
    interfaces whose filter tree contains ``filter_name`` (directly or through
    filterrefs) and that were applied (not skipped).  Only chains whose
    rules differ are rewritten, so the other NICs are not touched.  Call it
    with the filter already saved (or ``filters`` holding the new definition).
    """
    if filters is None:
        filters = load_host_filters(state_dir)
    result = sync_host(state_dir, engine, filters=filters, check_mode=check_mode, **kwargs)
    return filter_users(filter_name, result, filters), result
