# -*- coding: utf-8 -*-
"""reconcile_host against the simulated xtables: stages, per-object reports, check mode, lock."""
from __future__ import annotations

import json

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import xtables_engine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import host
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.tests.lib.fake_xtables import make_engine


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """(state_dir, kernels, runner): reconcile_host's NIC engine runs on the simulated tools.

    The default runner is replaced too, so that a call without ``runner=`` can
    never reach this machine's own tables."""
    engine, kernels = make_engine(tmp_path)
    monkeypatch.setattr(xtables_engine, 'resolve_backends', lambda *a, **k: engine.backends)
    monkeypatch.setattr(xtables_engine, 'Runner', lambda: engine.runner)
    return str(tmp_path), kernels, engine.runner


def _store(state_dir, *names):
    binding_store.save_bindings(state_dir, [
        binding_store.make_binding(name, '52:54:00:00:00:%02x' % (i + 1), 'clean-traffic', {'IP': '10.0.0.%d' % (i + 1)})
        for i, name in enumerate(names)])


def _statuses(report):
    return dict((o.name, o.status) for o in report.objects)


def _exists(name):
    return name != 'gone0'


def test_nothing_stored_touches_nothing(fake):
    state_dir, kernels, runner = fake
    report = host.reconcile_host(state_dir)
    assert report == host.HostReport(changed=False, failed=False)
    assert runner.calls == [] and kernels['ebtables'].tables == {}


def test_check_then_repair_then_in_sync(fake):
    state_dir, kernels, runner = fake
    _store(state_dir, 'vnet0', 'gone0')
    check = host.reconcile_host(state_dir, check_mode=True, interface_exists_fn=_exists)
    assert check.changed and not check.failed and runner.writes() == []
    assert _statuses(check) == {'vnet0': 'would_repair', 'gone0': 'would_repair'}
    assert 'missing chain ebtables nat libvirt-I-gone0 (9 rules)' in dict((o.name, o.missing) for o in check.objects)['gone0']
    assert kernels['ebtables'].tables == {}

    applied = host.reconcile_host(state_dir, interface_exists_fn=_exists)
    assert _statuses(applied) == {'vnet0': 'repaired', 'gone0': 'repaired'}  # fail closed: absent tap filtered
    assert '-i gone0 -j libvirt-I-gone0' in kernels['ebtables'].tables['nat']['PREROUTING']
    assert applied.diff and applied.objects[0].summary.startswith('%d difference(s)' % len(applied.objects[0].missing))

    runner.calls = []
    again = host.reconcile_host(state_dir, interface_exists_fn=_exists)
    assert not again.changed and runner.writes() == []
    assert _statuses(again) == {'vnet0': 'in_sync', 'gone0': 'in_sync'}
    assert json.loads(json.dumps(again.to_dict()))['objects'][0]['status'] == 'in_sync'


def test_stored_and_given_skip_setting(fake):
    state_dir, kernels, _runner = fake
    _store(state_dir, 'vnet0', 'gone0')
    with open('%s/host.json' % state_dir, 'w') as handle:
        json.dump({'version': 1, 'settings': {'skip_missing_interfaces': True}}, handle)
    report = host.reconcile_host(state_dir, interface_exists_fn=_exists)
    assert _statuses(report) == {'vnet0': 'repaired', 'gone0': 'skipped'}
    assert 'libvirt-I-gone0' not in kernels['ebtables'].tables['nat']
    # An explicit option wins over the stored setting.
    report = host.reconcile_host(state_dir, interface_exists_fn=_exists, skip_missing_interfaces=False)
    assert _statuses(report) == {'vnet0': 'in_sync', 'gone0': 'repaired'}


def test_unbound_interface_chains_are_reported_and_removed(fake):
    state_dir, kernels, _runner = fake
    _store(state_dir, 'vnet0', 'vnet1')
    host.reconcile_host(state_dir, interface_exists_fn=_exists)
    _store(state_dir, 'vnet0')
    report = host.reconcile_host(state_dir, interface_exists_fn=_exists)
    assert _statuses(report) == {'vnet0': 'in_sync', 'vnet1': 'repaired'}
    assert [o.summary for o in report.objects if o.name == 'vnet1'] == ['not bound: its rules are removed']
    assert 'libvirt-I-vnet1' not in kernels['ebtables'].tables['nat']


def test_locked_variant_runs_inside_the_callers_lock(fake):
    state_dir, kernels, _runner = fake
    _store(state_dir, 'vnet0')
    with state_lock(state_dir, 1):
        report = host.reconcile_host_locked(state_dir, interface_exists_fn=_exists)
        with pytest.raises(NetfilterError, match='another run holds'):
            host.reconcile_host(state_dir, lock_timeout=0.2)
    assert _statuses(report) == {'vnet0': 'repaired'} and 'libvirt-I-vnet0' in kernels['ebtables'].tables['nat']


def test_failures_are_reported_per_object(fake):
    state_dir, kernels, _runner = fake
    _store(state_dir, 'vnet0')
    kernels['ebtables'].reject = 'vnet0'
    report = host.reconcile_host(state_dir, interface_exists_fn=_exists)
    assert report.failed and _statuses(report) == {'vnet0': 'failed'}
    assert 'rejected the change' in report.objects[0].error


def test_unknown_backend_and_option_are_refused(fake):
    state_dir, _kernels, _runner = fake
    _store(state_dir, 'vnet0')
    with pytest.raises(NetfilterError, match='unknown options bogus'):
        host.reconcile_host(state_dir, bogus=1)
    with pytest.raises(NetfilterError, match='firewall_backend must be one of'):
        host.reconcile_host(state_dir, firewall_backend='pf')
