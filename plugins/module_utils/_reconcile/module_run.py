# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module run: the module's own change, then the whole-host reconcile, in one lock.

Every module run ends with :func:`._reconcile.host.reconcile_host_locked`
inside the same ``state_dir`` lock as its own change, so no module leaves
another's rules missing (virt_network reloading firewalld flushes the NIC
filters; the closing reconcile puts them back and reports it) and nothing
(another play, the host agent) runs in between.
"""

from __future__ import annotations

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile.host import reconcile_host_locked
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import host_settings


def given_settings(**settings):
    """The host settings a module was given (``None``: option not given)."""
    return dict((k, v) for k, v in settings.items() if v is not None)


def change_and_reconcile(state_dir, change=None, undo=None, check_mode=False, lock_timeout=60, settings=None,
                         **options):
    """``(what change() returned, HostReport)``.

    Under the ``state_dir`` lock (shared and never created in check mode):
    ``change()`` (may be None), which returns ``(done, more reconcile
    options)``, then the whole-host reconcile with ``options``, those and the
    given host ``settings`` (:func:`given_settings`), which are stored in
    ``host.json`` once the reconcile succeeded.  When the reconcile raises or
    reports a failed object, ``undo(done)`` runs, still inside the lock,
    before the error is passed on.
    """
    settings = settings or {}
    with state_lock(state_dir, lock_timeout, exclusive=not check_mode, create=not check_mode):
        done, more = change() if change is not None else (None, {})
        try:
            report = reconcile_host_locked(state_dir, check_mode=check_mode, **dict(options, **dict(more, **settings)))
        except (NetfilterError, OSError):
            if undo is not None:
                undo(done)
            raise
        if report.failed:
            if undo is not None:
                undo(done)
        elif settings and not check_mode:
            stored = host_settings.load_host_settings(state_dir)
            host_settings.save_host_settings(state_dir, stored.replace(**settings))
    return done, report


def failures(report):
    """One message for the objects the reconcile could not bring in sync ('' when none failed);
    objects that failed with the same error are named together."""
    by_error = {}
    for failed in report.objects:
        if failed.status == 'failed':
            by_error.setdefault((failed.kind, failed.error or failed.summary), []).append(failed.name)
    return '; '.join('%s %s: %s' % (kind + ('s' if len(names) > 1 else ''), ', '.join(names), error)
                     for (kind, error), names in by_error.items())
