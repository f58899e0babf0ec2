# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Define, remove, render and list filters: what the ``nwfilter`` module asks for.

The module maps its options to a :class:`FilterRequest` (the document already
parsed into a ``Filter``) and the :class:`FilterOutcome` to its result.  A
change is planned (:func:`._store.filters.plan_define` / ``plan_undefine``),
written unless in check mode, and the stored guest NIC bindings whose filter
tree contains the filter are rebuilt; when that fails, the previous
definition is put back.  Check mode runs the same code and writes nothing.
"""

from __future__ import annotations

import dataclasses
import uuid

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import xtables_engine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics_nftables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import filters as store

FAMILY_LABELS = (('eb', 'ebtables'), ('ip', 'iptables'), ('ip6', 'ip6tables'))


@dataclasses.dataclass(frozen=True)
class FilterRequest:
    state: str  # present, absent, rendered, gathered
    state_dir: str
    name: str | None = None  # absent; gathered (optional)
    nwfilter: object = None  # parsed Filter: present, rendered
    check_mode: bool = False
    lock_timeout: float = 60
    xtables_backend: str = 'auto'
    ebtables_backend: str = 'auto'


@dataclasses.dataclass(frozen=True)
class FilterOutcome:
    change: object = None  # store.Change (present, absent, rendered)
    filter: dict | None = None  # the filter after the run (present, rendered) or the removed definition (absent)
    filters: tuple = ()  # gathered: every filter, sorted by name
    rebuilt: tuple = ()  # interfaces whose binding uses the filter and was (would be) re-applied
    rendered: dict | None = None
    warnings: tuple = ()

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
    return FilterOutcome(filters=tuple(store.describe_filter(filters[n], defined_names) for n in sorted(filters)))


def render(request):
    """The canonical filter and the rules the stored bindings that use it would get; touches nothing."""
    filters = store.load_filters(request.state_dir)
    defined = store.load_defined(request.state_dir)
    planned = store.plan_define(request.nwfilter, filters, defined, str(uuid.uuid4()))
    after = _filters_after(filters, planned)
    users = [b for b in binding_store.load_bindings(request.state_dir)
             if planned.name in store.reference_closure(b.filter, after)]
    ruleset = merge_rulesets([r for _b, r in nic_sync.compile_bindings(users, after)])
    rendered = dict((label, ruleset.render(family)) for family, label in FAMILY_LABELS)
    rendered['xml'] = planned.after
    rendered['interfaces'] = [b.interface for b in users]
    return FilterOutcome(filter=store.describe_filter(planned.filter, set(defined) | {planned.name}),
                         rendered=rendered)


def change(request):
    """Define (present) or remove (absent) a filter and rebuild the bindings that use it."""
    state_dir = request.state_dir
    check = request.check_mode
    with state_lock(state_dir, request.lock_timeout, exclusive=not check, create=not check):
        filters = store.load_filters(state_dir)
        defined = store.load_defined(state_dir)
        bindings = store.stored_bindings(state_dir)
        if request.state == 'present':
            planned = store.plan_define(request.nwfilter, filters, defined, str(uuid.uuid4()))
        else:
            planned = store.plan_undefine(request.name, filters, defined, bindings)
        if planned.write and not check:
            _write(state_dir, planned)
    after = _filters_after(filters, planned)
    # outside our lock: nic_sync.sync_host takes it itself
    rebuilt, warnings = _rebuild_or_restore(request, planned, after, defined, bindings)
    return FilterOutcome(change=planned, filter=_described(request.state, planned, defined),
                         rebuilt=rebuilt, warnings=tuple(planned.notes) + warnings)


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


def _rebuild_or_restore(request, planned, after, defined, bindings):
    """``(rebuilt, warnings)``: re-apply the bindings ``planned`` affects; if that
    fails, put back the previous definition of the filter and re-raise."""
    if not planned.changed or not store.affected_bindings(planned.name, after, bindings):
        return (), ()
    try:
        if nics_nftables.effective_backend(request.state_dir, None) == nics_nftables.NFTABLES:
            # The host's NIC filters use the nftables layout (stored firewall_backend).
            result = nics_nftables.sync_host(
                request.state_dir, filters=after, check_mode=request.check_mode, lock_timeout=request.lock_timeout,
                xtables_backend=request.xtables_backend, ebtables_backend=request.ebtables_backend)
            rebuilt = nic_sync.filter_users(planned.name, result, after)
        else:
            engine = xtables_engine.XtablesEngine(
                xtables_engine.NWFILTER_OWNERSHIP, backend=request.xtables_backend,
                ebtables_backend=request.ebtables_backend, state_dir=request.state_dir,
                lock_timeout=request.lock_timeout)
            rebuilt, result = nic_sync.rebuild_filter_users(
                request.state_dir, planned.name, engine, filters=after, check_mode=request.check_mode,
                lock_timeout=request.lock_timeout)
    except NetfilterError:
        if planned.write and not request.check_mode:
            with state_lock(request.state_dir, request.lock_timeout):
                _restore(request.state_dir, planned.name, defined.get(planned.name))
        raise
    return tuple(rebuilt), tuple(result.warnings)
