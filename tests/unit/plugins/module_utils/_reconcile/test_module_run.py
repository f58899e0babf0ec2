# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""change_and_reconcile: the module's change and the whole-host reconcile under one lock,
host settings stored only after a successful real run, undo inside the lock on failure."""

from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import LockTimeout, state_lock
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import module_run
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile.host import HostReport, ObjectReport
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import host_settings


@pytest.fixture
def reconcile(monkeypatch):
    """A fake reconcile_host_locked: records its calls, proves the lock is held, returns ``reconcile.report``."""
    calls = []

    def fake(state_dir, check_mode=False, **options):
        if not check_mode:
            with pytest.raises(LockTimeout):
                with state_lock(state_dir, 0):  # the module's lock is still held
                    pass
        calls.append(dict(options, check_mode=check_mode))
        for error in fake.errors:
            raise error
        return fake.report

    fake.report = HostReport(changed=False, failed=False)
    fake.errors = []  # raised instead of returning a report
    fake.calls = calls
    monkeypatch.setattr(module_run, 'reconcile_host_locked', fake)
    return fake


def test_change_then_reconcile_in_one_lock_and_settings_stored_after(tmp_path, reconcile):
    state_dir = str(tmp_path / 'state')
    seen = []

    def change():
        with pytest.raises(LockTimeout):
            with state_lock(state_dir, 0):
                pass
        seen.append(host_settings.load_host_settings(state_dir).xtables_backend)
        return 'done', {'filters': {'x': 1}}

    done, report = module_run.change_and_reconcile(
        state_dir, change, check_mode=False, lock_timeout=1,
        settings=module_run.given_settings(xtables_backend='legacy', ebtables_backend=None), firewalld='never')
    assert done == 'done' and report is reconcile.report
    assert reconcile.calls == [dict(filters={'x': 1}, firewalld='never', xtables_backend='legacy', check_mode=False)]
    assert seen == ['auto']  # stored only after the reconcile succeeded
    assert host_settings.load_host_settings(state_dir).xtables_backend == 'legacy'
    assert host_settings.load_host_settings(state_dir).ebtables_backend == 'auto'  # not given: untouched


def test_check_mode_stores_nothing(tmp_path, reconcile):
    state_dir = str(tmp_path / 'state')
    module_run.change_and_reconcile(state_dir, check_mode=True, settings={'skip_missing_interfaces': True})
    assert reconcile.calls == [dict(skip_missing_interfaces=True, check_mode=True)]
    assert not (tmp_path / 'state').exists()  # no lock file, no host.json


def test_a_failed_object_undoes_the_change_inside_the_lock(tmp_path, reconcile):
    state_dir = str(tmp_path / 'state')
    undone = []

    def undo(done):
        with pytest.raises(LockTimeout):
            with state_lock(state_dir, 0):
                pass
        undone.append(done)

    reconcile.report = HostReport(changed=False, failed=True, objects=(
        ObjectReport('binding', 'vnet0', 'failed', error='iptables-restore: line 3'),
        ObjectReport('binding', 'vnet1', 'failed', error='iptables-restore: line 3'),
        ObjectReport('network', 'default', 'in_sync')))
    _done, report = module_run.change_and_reconcile(state_dir, lambda: ('planned', {}), undo,
                                                    settings={'xtables_backend': 'nft'})
    assert undone == ['planned']
    assert module_run.failures(report) == 'bindings vnet0, vnet1: iptables-restore: line 3'
    assert host_settings.load_host_settings(state_dir).xtables_backend == 'auto'  # not stored: the run failed

    undone[:] = []
    reconcile.errors.append(NetfilterError('damaged host.json'))
    with pytest.raises(NetfilterError):
        module_run.change_and_reconcile(state_dir, lambda: ('again', {}), undo)
    assert undone == ['again']
