# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply the guest NIC nftables layout (``table bridge hnf_nic``): read, diff, one ``nft -f``.

The NIC stage's entry point, :func:`sync_nics`, in steps that each have
their file: read the live table (:mod:`.nft_nics_live`), learn nft's
spelling of the desired chains (:mod:`.nft_nics_canonical`), the difference
as one script (:mod:`.nft_nics_plan`), written in one kernel transaction
(:func:`apply`); or, when only set and map elements changed since our last
run, the incremental path (:mod:`.nft_nics_fast`).  Nothing outside our
table is read or written.
"""

from __future__ import annotations

import dataclasses
import re

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_nics_fast as FAST
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.nft_nics_canonical import (
    Canonical, probe_bridge_conntrack)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.nft_nics_live import (
    NftError, nft_command, read_live)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.nft_nics_plan import (
    NftPlan, diff_dict, plan, remove_plan)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_plan import plan_diff
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables as L
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets


def apply(runner, nft_plan):
    if not nft_plan.changed:
        return
    rc, _out, err = runner.run([nft_command(), '-f', '-'], nft_plan.script, kind='write')
    if rc != 0:
        raise NftError('nft refused the guest NIC filter update (nothing was changed): %s' % err.strip())


# ---------------------------------------------------------------------------- the whole NIC stage

@dataclasses.dataclass(frozen=True)
class NicSyncResult:
    """Outcome of :func:`sync_nics`: ``changed`` (kernel), the nft plan, the xtables plan of NICs kept
    there (or None), Ansible ``diff`` dicts, ``writes`` (argv run to write), per-NIC ``nics``
    (:class:`nwfilter_nftables.NicLayout`), ``warnings`` and the desired ``layout``.  After the
    incremental path (:mod:`nft_nics_fast`) ``layout`` is None and ``nics`` holds the changed NICs only."""

    changed: bool
    nft_plan: NftPlan
    xt_plan: object = None
    diff: tuple = ()
    writes: tuple = ()
    nics: tuple = ()
    warnings: tuple = ()
    layout: object = None
    interfaces_changed: tuple = ()


def sync_nics(runner, bindings, filters, engine=None, state_dir=None, check_mode=False, fail_closed=(),
              conntrack=None, compile_cache=None, check_xtables=None, canonical=None, keep_xtables=None):
    """Make ``table bridge hnf_nic`` (and, through ``engine``, the xtables rules of NICs that must stay
    there) match ``bindings``.  The caller holds the state_dir lock.

    ``engine``: an :class:`xtables_engine.XtablesEngine` for libvirt's nwfilter chains; its plan also
    removes those chains of NICs that moved to nftables.  Without it, NICs that need xtables fail.
    ``check_xtables``: called with the live xtables texts before anything is planned (may raise).
    ``keep_xtables``: called with them, returns a Ruleset of live rules to keep as they are (or None).
    Order: nftables first, then xtables, so a NIC moving between layouts is filtered by one or both,
    never by none.
    """
    if canonical is None:
        canonical = Canonical(state_dir)
    if conntrack is None:
        conntrack = probe_bridge_conntrack(runner, canonical)
    fail_closed = check_patterns(fail_closed)
    writes_before = len(runner.writes())
    # The incremental path: nothing committed since our last run, only set/map elements differ.
    snapshot = keys = generation = None
    context = {'tool': canonical.tool, 'conntrack': conntrack, 'fail_closed': list(fail_closed)}
    if state_dir and compile_cache is not None and (engine is None or all(
            b.name == 'nft' for b in engine.backends.values())):
        snapshot = FAST.Snapshot(state_dir)
        context['where'] = FAST.identity(runner)
        generation = FAST.genid(runner) if context['where'] else None
        keys = dict((b.interface, compile_cache.key(b, filters, conntrack)) for b in bindings)
        fast = _fast(runner, snapshot, generation, context, bindings, keys, filters, conntrack, compile_cache,
                     check_mode)
        if fast is not None:
            return dataclasses.replace(fast, writes=tuple(runner.writes()[writes_before:]))
    layout = L.compile_layout(bindings, filters, conntrack=conntrack, fail_closed=fail_closed,
                              cache=compile_cache)
    warnings = tuple(w for nic in layout.nics for w in nic.warnings)
    if layout.xtables.tables and engine is None:
        raise NftError('interfaces %s need the xtables layout, which is not available here'
                       % ', '.join(n.interface for n in layout.nics if n.mode != L.NFT))
    xt_plan = None
    if engine is not None:
        texts = engine.read_texts()
        if check_xtables is not None:
            check_xtables(texts)
        kept = keep_xtables(texts) if keep_xtables is not None else None
        xt_plan = engine.plan(merge_rulesets([layout.xtables, kept]) if kept is not None else layout.xtables, texts)
    live = read_live(runner)
    nft_plan = plan(runner, layout, live, canonical)
    if not check_mode:
        apply(runner, nft_plan)
        if xt_plan is not None:
            engine.commit(xt_plan)
        canonical.save()
        if snapshot is not None:
            # Record only when the table is now exactly the layout and our write was the only commit.
            after = FAST.genid(runner)
            commits = 1 if nft_plan.changed else 0
            if generation is not None and after == generation + commits and not layout.xtables.tables and \
                    not (xt_plan is not None and xt_plan.changed):
                snapshot.record(after, context, keys, layout)
            else:
                snapshot.forget()
    diffs = []
    nft_diff = diff_dict(nft_plan)
    if nft_diff:
        diffs.append(nft_diff)
    if xt_plan is not None and xt_plan.changed:
        diffs.extend(plan_diff(xt_plan))
    changed = nft_plan.changed or bool(xt_plan is not None and xt_plan.changed)
    writes = tuple(runner.writes()[writes_before:])
    return NicSyncResult(changed, nft_plan, xt_plan, tuple(diffs), writes, layout.nics, warnings, layout,
                         nft_plan.interfaces)


def _fast(runner, snapshot, generation, context, bindings, keys, filters, conntrack, compile_cache, check_mode):
    """A NicSyncResult from the incremental path, or None."""

    def compile_one(binding):
        key = keys[binding.interface]
        result = compile_cache.get(key)
        if result is None:
            result = L.compile_nic(binding.interface, binding.mac, binding.filter, binding.parameters, filters,
                                   conntrack)
            compile_cache.put(key, result)
        return result

    made = FAST.fast_plan(snapshot, generation, context, bindings, keys, compile_one)
    if made is None:
        return None
    script, changes = made
    nft_plan = NftPlan(script, elements_added=changes['elements_added'], elements_deleted=changes['elements_deleted'],
                       interfaces=changes['interfaces'],
                       before=tuple('element %s %s' % item for item in changes['elements_deleted']),
                       after=tuple('element %s %s' % item for item in changes['elements_added']))
    if script and not check_mode:
        apply(runner, nft_plan)
        after = FAST.genid(runner)
        if after == generation + 1:
            FAST.write(snapshot, FAST.updated(snapshot, after, changes))
        else:
            snapshot.forget()
    # Only the NICs that changed (the others' entries stay packed in the snapshot).
    entries = changes['entries']
    nics = tuple(L.NicLayout(name, entry['m'], '', tuple(tuple(d) for d in entry['d']), tuple(entry['w']))
                 for name, entry in sorted(entries.items()))
    diff = diff_dict(nft_plan)
    return NicSyncResult(bool(script), nft_plan, None, (diff,) if diff else (), (), nics,
                         tuple(w for nic in nics for w in nic.warnings), None, nft_plan.interfaces)


_PATTERN = re.compile(r'^[A-Za-z0-9_.:@-]{1,15}\*?$')


def check_patterns(patterns):
    """Fail-closed interface patterns: a name, or a prefix ending in '*' (nft's wildcard)."""
    for pattern in patterns:
        if not isinstance(pattern, str) or not _PATTERN.match(pattern) or pattern == '*':
            raise NftError('invalid fail-closed interface pattern %r: up to 15 characters of [A-Za-z0-9_.:@-], '
                           'optionally ending in *' % (pattern,))
    return tuple(patterns)


def remove_table(runner, check_mode=False):
    """Delete our table (when the host goes back to the iptables layout); returns the plan."""
    removal = remove_plan(read_live(runner))
    if not check_mode:
        apply(runner, removal)
    return removal
