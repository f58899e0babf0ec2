# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Define, remove, render and list filters: what the ``nwfilter`` module asks for.

The module maps its options to a :class:`FilterRequest` (the document already
parsed into a ``Filter``) and the :class:`FilterOutcome` to its result.  A
change is planned (:func:`._store.filters.plan_define` / ``plan_undefine``)
and written unless in check mode; then the whole host is reconciled with the
new filters, inside the same lock (:mod:`.module_run`), which rebuilds the
stored guest NIC bindings whose filter tree contains the filter.  When that
fails, the previous definition is put back before the lock is released.
Check mode runs the same code and writes nothing.
"""

from __future__ import annotations

import dataclasses
import uuid

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import host
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import module_run
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics_nftables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import filters as store


@dataclasses.dataclass(frozen=True)
class FilterRequest:
    state: str  # present, absent, rendered, gathered
    state_dir: str
    name: str | None = None  # absent; gathered (optional)
    nwfilter: object = None  # parsed Filter: present, rendered
    check_mode: bool = False
    lock_timeout: float = 60
    xtables_backend: str | None = None  # host settings; None: as stored
    ebtables_backend: str | None = None


@dataclasses.dataclass(frozen=True)
class FilterOutcome:
    change: object = None  # store.Change (present, absent, rendered)
    filter: dict | None = None  # the filter after the run (present, rendered) or the removed definition (absent)
    filters: tuple = ()  # gathered: every filter, sorted by name
    rebuilt: tuple = ()  # interfaces whose binding uses the filter and was (would be) re-applied
    rendered: dict | None = None
    warnings: tuple = ()
    report: object = None  # HostReport of the closing (or, gathered, the check-mode) whole-host reconcile

    @property
    def changed(self):
        return self.change is not None and (self.change.changed or self.change.write)


def run(request):
    """Carry out ``request``; raises NetfilterError (nothing changed) on bad input."""
    if request.state == 'gathered':
        return gather(request)
    if request.state == 'rendered':
        return render(request)
    return change(request)


def gather(request):
    filters = store.load_filters(request.state_dir)
    defined_names = set(store.load_defined(request.state_dir))
    if request.name is not None:
        if request.name not in filters:
            raise NetfilterError("no filter named '%s' (defined or built-in)" % request.name)
        filters = {request.name: filters[request.name]}
    report = host.reconcile_host(request.state_dir, check_mode=True, lock_timeout=request.lock_timeout)
    return FilterOutcome(filters=tuple(store.describe_filter(filters[n], defined_names) for n in sorted(filters)),
                         report=report)


def render(request):
    """The canonical filter and the rules the stored bindings that use it would get; touches nothing."""
    filters = store.load_filters(request.state_dir)
    defined = store.load_defined(request.state_dir)
    planned = store.plan_define(request.nwfilter, filters, defined, str(uuid.uuid4()))
    after = _filters_after(filters, planned)
    users = [b for b in binding_store.load_bindings(request.state_dir)
             if planned.name in store.reference_closure(b.filter, after)]
    ruleset = merge_rulesets([r for _b, r in nic_sync.compile_bindings(users, after)])
    rendered = ruleset.render_by_tool()
    if nics_nftables.effective_backend(request.state_dir, None) == nics_nftables.NFTABLES:
        rendered, _warnings = nics_nftables.render(users, after, request.state_dir)  # the host's NIC layout
    rendered['xml'] = planned.after
    rendered['interfaces'] = [b.interface for b in users]
    return FilterOutcome(filter=store.describe_filter(planned.filter, set(defined) | {planned.name}),
                         rendered=rendered)


def change(request):
    """Define (present) or remove (absent) a filter, then reconcile the host with it."""
    state_dir = request.state_dir
    check = request.check_mode

    def plan_and_write():
        filters = store.load_filters(state_dir)
        defined = store.load_defined(state_dir)
        if request.state == 'present':
            planned = store.plan_define(request.nwfilter, filters, defined, str(uuid.uuid4()))
        else:
            planned = store.plan_undefine(request.name, filters, defined, store.stored_bindings(state_dir))
        if planned.write and not check:
            _write(state_dir, planned)
        # check mode: the reconcile compiles the planned definition, not the stored one
        return (planned, filters, defined), {'filters': _filters_after(filters, planned)}

    def undo(done):
        planned, _filters, defined = done
        if planned.write and not check:
            _restore(state_dir, planned.name, defined.get(planned.name))

    (planned, filters, defined), report = module_run.change_and_reconcile(
        state_dir, plan_and_write, undo, check_mode=check, lock_timeout=request.lock_timeout,
        settings=module_run.given_settings(xtables_backend=request.xtables_backend,
                                           ebtables_backend=request.ebtables_backend))
    rebuilt = ()
    if planned.changed and report.nics is not None:
        rebuilt = nic_sync.filter_users(planned.name, report.nics, _filters_after(filters, planned))
    return FilterOutcome(change=planned, filter=_described(request.state, planned, defined), rebuilt=rebuilt,
                         warnings=tuple(planned.notes) + tuple(report.warnings), report=report)


def _described(state, planned, defined):
    if state == 'present':
        defined_names = set(defined) | ({planned.name} if planned.write or planned.name in defined else set())
        return store.describe_filter(planned.filter, defined_names)
    if planned.name in defined:
        return store.describe_filter(defined[planned.name], set(defined) - {planned.name})
    return None


def _filters_after(filters, planned):
    """Every filter the host knows once ``planned`` is done."""
    after = dict(filters)
    if planned.filter is not None:
        after[planned.name] = planned.filter
    elif planned.remove:
        if store.is_builtin(planned.name):
            after[planned.name] = store.builtin_filters()[planned.name]
        else:
            del after[planned.name]
    return after


def _write(state_dir, planned):
    if planned.remove:
        store.remove_filter(state_dir, planned.name)
    else:
        store.save_filter(state_dir, planned.filter)


def _restore(state_dir, name, previous):
    """Put back the stored definition of ``name`` as it was (None: there was none)."""
    if previous is None:
        store.remove_filter(state_dir, name)
    else:
        store.save_filter(state_dir, previous)
