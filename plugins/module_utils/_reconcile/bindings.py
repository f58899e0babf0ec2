# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bind, unbind, render and list guest NIC bindings: what ``guest_nic_filter`` asks for.

The module maps its options to a :class:`BindRequest` (validated
``StoredBinding`` objects and interface names) and the :class:`BindOutcome`
to its result.  The request is checked first (duplicates, unknown filters,
parameters a rule needs but libvirt would drop: bad input changes nothing);
then the whole host is reconciled with the change, in one lock
(:mod:`.module_run`): networks first, then one NIC pass that applies every
stored binding with this change and stores the bindings once the kernel
accepted them.  A request without bindings re-applies the stored ones.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import host
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import module_run
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics_nftables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import merge_rulesets
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store


@dataclasses.dataclass(frozen=True)
class BindRequest:
    state: str  # present, absent, rendered, gathered
    state_dir: str
    upserts: tuple = ()  # StoredBinding to bind (present, rendered)
    removals: tuple = ()  # interfaces to unbind (absent)
    exclusive: bool = False  # present: unbind every stored interface not in upserts
    check_mode: bool = False
    lock_timeout: float = 60
    settings: dict = dataclasses.field(default_factory=dict)  # host settings given (module_run.given_settings)
    coexistence: object = None  # _host.libvirt_nwfilter.Coexistence: refuse NICs libvirt's driver owns


@dataclasses.dataclass(frozen=True)
class BindOutcome:
    report: object = None  # HostReport of the closing (gathered: check-mode) whole-host reconcile
    rendered: dict | None = None
    bindings: tuple = ()  # rendered, gathered: the bindings concerned
    warnings: tuple = ()  # rendered (the others: in the report)

    @property
    def nics(self):
        """The NIC stage's result (``nic_sync.HostSyncResult`` for the xtables layout)."""
        return self.report.nics if self.report is not None else None


def run(request):
    """Carry out ``request``; raises NetfilterError (nothing changed) on bad input."""
    if request.state == 'gathered':
        return BindOutcome(report=host.reconcile_host(request.state_dir, check_mode=True,
                                                      lock_timeout=request.lock_timeout),
                           bindings=binding_store.load_bindings(request.state_dir))
    if request.state == 'rendered':
        return render(request)
    nic_sync.check_request(request.upserts, request.removals)
    # Bad input fails here, before the lock and before anything is reconciled.
    nic_sync.compile_bindings(request.upserts, nic_sync.load_host_filters(request.state_dir),
                              nic_sync.CompiledCache(request.state_dir))
    change = dict(upserts=request.upserts, removals=request.removals, exclusive=request.exclusive,
                  coexistence=request.coexistence)
    _nothing, report = module_run.change_and_reconcile(
        request.state_dir, check_mode=request.check_mode, lock_timeout=request.lock_timeout,
        settings=request.settings, nic_change=change)
    return BindOutcome(report=report)


def render(request):
    """The rules of the given bindings alone (every stored one when none is given) in the host's NIC
    layout (``firewall_backend`` given, else stored); touches nothing."""
    bindings = request.upserts or binding_store.load_bindings(request.state_dir)
    filters = nic_sync.load_host_filters(request.state_dir)
    warnings = list(nic_sync.upsert_warnings(request.upserts, filters))
    ruleset = merge_rulesets([r for _b, r in nic_sync.compile_bindings(bindings, filters)])
    rendered = ruleset.render_by_tool()
    if nics_nftables.effective_backend(request.state_dir, request.settings.get('firewall_backend')) == \
            nics_nftables.NFTABLES:
        rendered, more = nics_nftables.render(bindings, filters, request.state_dir,
                                              request.settings.get('drop_unbound_interfaces'))
        warnings.extend(more)
    return BindOutcome(rendered=rendered, bindings=tuple(bindings), warnings=tuple(warnings))
