# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one host reconcile: make the kernel match everything stored in ``state_dir``.

The desired state of a host is every stored network (``networks/``), every
stored guest NIC binding (``bindings.json``) with the filters it uses
(built-in + ``filters/``), and the host settings (``host.json``, see
:mod:`._store.host_settings`).  Modules end their runs with it, the host agent
(``hypervisor-netfilter apply|watch``) calls it at boot, after firewalld
reloads and periodically.

API
===

``reconcile_host(state_dir, check_mode=False, lock_timeout=60, runner=None, **options) -> HostReport``
    Takes the ``state_dir`` lock (exclusive; shared in check mode), then
    :func:`reconcile_host_locked`.

``reconcile_host_locked(state_dir, check_mode=False, runner=None, **options) -> HostReport``
    The same for a caller that already holds the lock (``flock`` is not
    re-entrant across file descriptions): a module can change the store and
    reconcile the whole host inside one lock.

Stages, in order: networks first (bridges, zones, ``LIBVIRT_*`` rules or the
``libvirt_network`` nft tables, tc, forwarding), then guest NIC filters (the
layout the host setting ``firewall_backend`` names; :data:`NIC_BACKENDS`
maps it to its implementation: the one place where a NIC backend is chosen).
A stage runs only when the store says we manage that kind of object
(``networks/`` exists; ``bindings.json`` exists), so a host where libvirtd
owns the networks keeps its rules.  A failing network stage does not stop the
NIC stage: guests stay filtered (fail closed).

``options`` (``None`` = take the stored host setting):

* ``skip_missing_interfaces``: see :mod:`._store.host_settings` (default
  false: a binding's rules are installed whether its tap exists or not).
* ``xtables_backend``, ``ebtables_backend``: ``auto``, ``nft`` or ``legacy``.
* ``firewall_backend``: NIC filter layout, ``iptables`` or ``nftables``.
* ``drop_unbound_interfaces``: tap name patterns whose frames the nftables
  layout drops while they have no binding (see :mod:`._store.host_settings`).
* ``firewalld``: ``auto`` (use firewalld when it runs) or ``never``.
* ``filters``: ``{name: Filter}`` to use instead of the stored ones (a
  module that is about to store a new definition).
* ``interface_exists_fn``: ``name -> bool`` (tests).
* ``nic_change``: ``dict(upserts=(StoredBinding, ...), removals=(interface, ...),
  exclusive=bool)``, the bindings a module binds or unbinds in this run: the NIC
  stage applies the stored bindings with this change and stores the result
  once the kernel accepted it (in check mode it only reports), so the module's
  change and the whole-host reconcile are one NIC pass through the chosen
  backend.  The NIC stage then runs even without ``bindings.json``, and its
  errors are raised (the module's change failed; nothing was stored) instead
  of reported.

``HostReport`` (frozen): ``changed`` (something was repaired, or would be in
check mode), ``failed``, ``objects`` (tuple of :class:`ObjectReport`),
``diff`` (Ansible diff dicts, per family / per piece), ``warnings``,
``nics`` (the NIC stage's raw result, e.g. ``nic_sync.HostSyncResult``, or None).

``ObjectReport``: ``kind`` (``network`` | ``binding``), ``name`` (network
name or interface), ``status`` (``in_sync`` | ``repaired`` |
``would_repair`` | ``skipped`` (binding of an absent interface with
``skip_missing_interfaces``) | ``failed``), ``missing`` (what differed: one
line per missing/unexpected chain, rule, hook, device or setting),
``summary`` (one line), ``error`` (message when failed).

``runner``: a ``Runner`` for the NIC stage's xtables commands (tests
run them in a namespace); the network stage runs its commands on the host it
runs on.

Errors that concern one stage are reported on its objects; errors before any
stage (lock timeout, damaged host.json or store) are raised as
:class:`~._errors.NetfilterError`.
"""

from __future__ import annotations

import dataclasses
import os

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NWFILTER_OWNERSHIP
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import networks as network_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics_nftables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import host_settings
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import networks as network_store

STATUSES = ('in_sync', 'repaired', 'would_repair', 'skipped', 'failed')
_OPTIONS = ('skip_missing_interfaces', 'xtables_backend', 'ebtables_backend', 'firewall_backend',
            'drop_unbound_interfaces',
            'firewalld', 'filters', 'interface_exists_fn', 'nic_change')


@dataclasses.dataclass(frozen=True)
class ObjectReport:
    kind: str  # 'network' or 'binding'
    name: str
    status: str  # one of STATUSES
    missing: tuple = ()
    summary: str = ''
    error: str | None = None

    def to_dict(self):
        return {'kind': self.kind, 'name': self.name, 'status': self.status, 'missing': list(self.missing),
                'summary': self.summary, 'error': self.error}


@dataclasses.dataclass(frozen=True)
class HostReport:
    changed: bool
    failed: bool
    objects: tuple = ()
    diff: tuple = ()
    warnings: tuple = ()
    nics: object = None

    def to_dict(self):
        return {'changed': self.changed, 'failed': self.failed,
                'objects': [o.to_dict() for o in self.objects], 'warnings': list(self.warnings)}

    def differing(self):
        """Objects that are not in sync (repaired, would_repair or failed)."""
        return tuple(o for o in self.objects if o.status not in ('in_sync', 'skipped'))


def _status(changed, check_mode):
    if not changed:
        return 'in_sync'
    return 'would_repair' if check_mode else 'repaired'


def _summary(missing):
    if not missing:
        return 'in sync'
    return '%d difference(s): %s%s' % (len(missing), missing[0], ' ...' if len(missing) > 1 else '')


def _network_stage(state_dir, check_mode, settings, options):
    """``(objects, diff, warnings)`` of the network stage."""
    if not network_sync.networks_managed(state_dir):
        return (), (), ()
    try:
        result = network_sync.reconcile_networks(
            state_dir, check_mode=check_mode, firewalld=options.get('firewalld') or 'auto',
            xtables_backend=settings.xtables_backend)
    except (NetfilterError, OSError) as exc:
        names = [n.spec.name for n in _stored_networks(state_dir)]
        return tuple(ObjectReport('network', name, 'failed', summary='not reconciled', error=str(exc))
                     for name in names or ['*']), (), ()
    objects = tuple(ObjectReport('network', n.name, _status(n.changed, check_mode), n.missing,
                                 _summary(n.missing)) for n in result.networks)
    return objects, result.diff, result.warnings


def _stored_networks(state_dir):
    try:
        return network_store.load_all(state_dir)
    except NetfilterError:
        return ()


def sync_nics_xtables(state_dir, check_mode, settings, runner, options):
    """The xtables (libvirt layout) NIC backend: ``nic_sync.HostSyncResult``.

    A ``table bridge hnf_nic`` left by the nftables layout goes after the xtables rules are in place."""
    engine = XtablesEngine(NWFILTER_OWNERSHIP, backend=settings.xtables_backend,
                           ebtables_backend=settings.ebtables_backend, state_dir=state_dir, runner=runner)
    result = nic_sync.sync_nics_locked(state_dir, engine, check_mode=check_mode, filters=options.get('filters'),
                                       skip_missing_interfaces=settings.skip_missing_interfaces,
                                       interface_exists_fn=options.get('interface_exists_fn'),
                                       **(options.get('nic_change') or {}))
    left = nics_nftables.leave_nftables(runner, check_mode=check_mode)
    if left is None:
        return result
    return dataclasses.replace(result, changed=True, kernel_changed=True,
                               sync=dataclasses.replace(result.sync, diff=tuple(result.sync.diff) + (left,)))


def sync_nics_nftables(state_dir, check_mode, settings, runner, options):
    """The nftables layout NIC backend (:mod:`._reconcile.nics_nftables`): ``nic_sync.HostSyncResult``."""
    return nics_nftables.sync_nics_locked(state_dir, check_mode=check_mode, filters=options.get('filters'),
                                          skip_missing_interfaces=settings.skip_missing_interfaces,
                                          interface_exists_fn=options.get('interface_exists_fn'), runner=runner,
                                          xtables_backend=settings.xtables_backend,
                                          ebtables_backend=settings.ebtables_backend,
                                          fail_closed=settings.drop_unbound_interfaces,
                                          **(options.get('nic_change') or {}))


# firewall_backend -> NIC backend: (state_dir, check_mode, settings, runner, options) -> result with
# changed, bindings, skipped, interface_details (interface, lines), sync.diff, warnings; it applies
# options['nic_change'] (upserts, removals, exclusive, coexistence) when given and stores the bindings it applied.
NIC_BACKENDS = {'iptables': sync_nics_xtables, 'nftables': sync_nics_nftables}


def _nic_stage(state_dir, check_mode, settings, runner, options):
    """``(objects, diff, warnings, raw result)`` of the NIC stage."""
    change = options.get('nic_change')
    if change is None and not os.path.exists(binding_store.bindings_path(state_dir)):
        return (), (), (), None
    backend = NIC_BACKENDS.get(settings.firewall_backend)
    try:
        if backend is None:
            raise NetfilterError('firewall_backend %s: no NIC filter backend of that name is available here'
                                 % settings.firewall_backend)
        result = backend(state_dir, check_mode, settings, runner, options)
    except (NetfilterError, OSError) as exc:
        if change is not None:
            raise  # the caller's own change failed: its error, not a report
        stored = binding_store.load_bindings(state_dir)
        return tuple(ObjectReport('binding', b.interface, 'failed', summary='not reconciled', error=str(exc))
                     for b in stored or ()) or (ObjectReport('binding', '*', 'failed', error=str(exc)),), (), (), None
    details = dict(result.interface_details)
    objects = []
    for binding in result.bindings:
        if binding.interface in result.skipped:
            objects.append(ObjectReport('binding', binding.interface, 'skipped',
                                        summary='interface absent; not applied (skip_missing_interfaces)'))
            continue
        missing = details.get(binding.interface, ())
        objects.append(ObjectReport('binding', binding.interface, _status(bool(missing), check_mode), missing,
                                    _summary(missing)))
    # Chains of interfaces that are no longer bound (stale) are reported too.
    bound = set(b.interface for b in result.bindings)
    for interface, missing in result.interface_details:
        if interface not in bound:
            objects.append(ObjectReport('binding', interface, _status(True, check_mode), missing,
                                        'not bound: its rules are removed'))
    return tuple(objects), tuple(result.sync.diff), tuple(result.warnings), result


def reconcile_host_locked(state_dir=host_settings.DEFAULT_STATE_DIR, check_mode=False, runner=None, **options):
    """:func:`reconcile_host` for a caller that holds the ``state_dir`` lock."""
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise NetfilterError('reconcile_host: unknown options %s' % ', '.join(unknown))
    settings = host_settings.load_host_settings(state_dir).replace(**dict(
        (k, options.get(k)) for k in ('skip_missing_interfaces', 'xtables_backend', 'ebtables_backend',
                                      'firewall_backend', 'drop_unbound_interfaces')))
    net_objects, net_diff, net_warnings = _network_stage(state_dir, check_mode, settings, options)
    nic_objects, nic_diff, nic_warnings, nic_result = _nic_stage(state_dir, check_mode, settings, runner, options)
    objects = net_objects + nic_objects
    return HostReport(
        changed=any(o.status in ('repaired', 'would_repair') for o in objects) or bool(net_diff or nic_diff),
        failed=any(o.status == 'failed' for o in objects),
        objects=objects, diff=tuple(net_diff) + tuple(nic_diff),
        warnings=tuple(net_warnings) + tuple(nic_warnings), nics=nic_result)


def reconcile_host(state_dir=host_settings.DEFAULT_STATE_DIR, check_mode=False, lock_timeout=60, runner=None,
                   **options):
    """Reconcile every stored network and binding; see the module docstring."""
    with state_lock(state_dir, lock_timeout, exclusive=not check_mode, create=not check_mode):
        return reconcile_host_locked(state_dir, check_mode=check_mode, runner=runner, **options)
