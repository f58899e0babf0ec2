# -*- coding: utf-8 -*-
"""NIC stage (xtables layout): host sync, fail closed, caches, the no-op fast path."""
from __future__ import annotations

import json

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import BindingError
from ansible_collections.hypervisor.netfilter.tests.lib.fake_xtables import make_engine


def _exists(name):
    return name != 'gone0'


def _filters():
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.filters import builtin_filters
    return builtin_filters()


def test_sync_host_bind_rebind_exclusive_absent(tmp_path):
    """The old behaviour, asked for explicitly: a binding of an absent interface is stored, not applied."""
    engine, kernels = make_engine(tmp_path)
    state = str(tmp_path)
    filters = _filters()
    b0 = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.1'})
    b1 = binding_store.make_binding('vnet1', '52:54:00:00:00:02', 'clean-traffic', {'IP': '10.0.0.2'})
    gone = binding_store.make_binding('gone0', '52:54:00:00:00:03', 'clean-traffic', {'IP': '10.0.0.3'})

    check = nic_sync.sync_host(state, engine, upserts=[b0, b1, gone], check_mode=True, filters=filters,
                               interface_exists_fn=_exists,
                               skip_missing_interfaces=True)
    assert check.changed and check.kernel_changed and check.sync.writes == ()
    assert binding_store.load_bindings(state) == () and kernels['ebtables'].tables == {}

    first = nic_sync.sync_host(state, engine, upserts=[b0, b1, gone], filters=filters, interface_exists_fn=_exists,
                               skip_missing_interfaces=True)
    assert first.added == ('vnet0', 'vnet1', 'gone0') and first.skipped == ('gone0',)
    assert 'gone0 does not exist' in first.warnings[0]
    assert set(first.interfaces_changed) == {'vnet0', 'vnet1'}
    nat = kernels['ebtables'].tables['nat']
    assert 'libvirt-I-vnet0' in nat and 'libvirt-I-gone0' not in nat

    again = nic_sync.sync_host(state, engine, upserts=[b0, b1, gone], filters=filters, interface_exists_fn=_exists,
                               skip_missing_interfaces=True)
    assert not again.changed and again.sync.writes == ()

    b1_new = binding_store.make_binding('vnet1', '52:54:00:00:00:02', 'clean-traffic', {'IP': '10.0.0.9'})
    rebind = nic_sync.sync_host(state, engine, upserts=[b1_new], filters=filters, interface_exists_fn=_exists,
                                skip_missing_interfaces=True)
    assert rebind.updated == ('vnet1',) and rebind.interfaces_changed == ('vnet1',)
    assert [b.interface for b in rebind.bindings] == ['vnet0', 'vnet1', 'gone0']  # place kept

    only0 = nic_sync.sync_host(state, engine, upserts=[b0], exclusive=True, filters=filters,
                               interface_exists_fn=_exists,
                               skip_missing_interfaces=True)
    assert only0.removed == ('gone0', 'vnet1')
    assert 'libvirt-I-vnet1' not in kernels['ebtables'].tables['nat']
    assert [b.interface for b in binding_store.load_bindings(state)] == ['vnet0']

    gone_all = nic_sync.sync_host(state, engine, removals=['vnet0'], filters=filters, interface_exists_fn=_exists,
                                  skip_missing_interfaces=True)
    assert gone_all.removed == ('vnet0',)
    assert kernels['ebtables'].tables['nat'] == {'PREROUTING': [], 'OUTPUT': [], 'POSTROUTING': []}
    assert binding_store.load_bindings(state) == ()


def test_sync_host_fails_closed_for_absent_interfaces(tmp_path):
    """Default: the rules of a binding whose tap does not exist are installed, and stay."""
    engine, kernels = make_engine(tmp_path)
    state = str(tmp_path)
    b0 = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.1'})
    gone = binding_store.make_binding('gone0', '52:54:00:00:00:03', 'clean-traffic', {'IP': '10.0.0.3'})
    first = nic_sync.sync_host(state, engine, upserts=[b0, gone], filters=_filters(), interface_exists_fn=_exists)
    assert first.skipped == () and first.warnings == () and first.absent == ('gone0',)
    assert set(first.interfaces_changed) == {'vnet0', 'gone0'}
    nat = kernels['ebtables'].tables['nat']
    assert 'libvirt-I-gone0' in nat and '-i gone0 -j libvirt-I-gone0' in nat['PREROUTING']
    # A later run while the tap is still absent keeps its rules and writes nothing.
    engine.runner.calls = []
    again = nic_sync.sync_host(state, engine, filters=_filters(), interface_exists_fn=_exists)
    assert not again.changed and again.sync.writes == ()
    assert 'libvirt-I-gone0' in kernels['ebtables'].tables['nat']
    # Drift of the absent NIC's chain is reported with what differs, and repaired.
    kernels['ebtables'].tables['nat']['PREROUTING'].remove('-i gone0 -j libvirt-I-gone0')
    check = nic_sync.sync_host(state, engine, filters=_filters(), interface_exists_fn=_exists, check_mode=True)
    assert check.interfaces_changed == ('gone0',) and check.sync.writes == ()
    [(interface, lines)] = check.interface_details
    assert interface == 'gone0' and lines == ('missing hook ebtables nat PREROUTING: -i gone0 -j libvirt-I-gone0',)
    assert nic_sync.sync_host(state, engine, filters=_filters(), interface_exists_fn=_exists).kernel_changed
    assert '-i gone0 -j libvirt-I-gone0' in kernels['ebtables'].tables['nat']['PREROUTING']


def test_sync_host_failed_apply_keeps_store(tmp_path):
    engine, kernels = make_engine(tmp_path)
    kernels['ebtables'].reject = 'vnet0'
    b0 = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.1'})
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import CommandError
    with pytest.raises(CommandError):
        nic_sync.sync_host(str(tmp_path), engine, upserts=[b0], filters=_filters(),
                           interface_exists_fn=lambda n: True)
    assert binding_store.load_bindings(str(tmp_path)) == ()


def test_sync_host_rejects_contradictions(tmp_path):
    engine, _kernels = make_engine(tmp_path)
    b0 = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.1'})
    with pytest.raises(BindingError, match='listed twice'):
        nic_sync.sync_host(str(tmp_path), engine, upserts=[b0, b0], filters=_filters())
    with pytest.raises(BindingError, match='both bound and unbound'):
        nic_sync.sync_host(str(tmp_path), engine, upserts=[b0], removals=['vnet0'], filters=_filters())
    assert engine.runner.calls == []


def test_rebuild_filter_users(tmp_path):
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
    engine, kernels = make_engine(tmp_path)
    filters = _filters()
    b0 = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.1'})
    b1 = binding_store.make_binding('vnet1', '52:54:00:00:00:02', 'no-mac-spoofing')
    b2 = binding_store.make_binding('vnet2', '52:54:00:00:00:03', 'allow-arp')
    nic_sync.sync_host(str(tmp_path), engine, upserts=[b0, b1, b2], filters=filters, interface_exists_fn=_exists)
    # Redefine no-mac-spoofing (used by clean-traffic through a filterref, and directly by vnet1).
    filters = dict(filters)
    filters['no-mac-spoofing'] = parse_filter(
        "<filter name='no-mac-spoofing' chain='mac' priority='-800'>"
        "<rule action='drop' direction='out' priority='500'><mac match='no' srcmacaddr='$MAC'/></rule>"
        "</filter>")
    rebuilt, result = nic_sync.rebuild_filter_users(str(tmp_path), 'no-mac-spoofing', engine, filters=filters,
                                                    interface_exists_fn=_exists)
    assert rebuilt == ('vnet0', 'vnet1')
    assert result.kernel_changed and set(result.interfaces_changed) == {'vnet0', 'vnet1'}
    assert 'vnet2' not in result.sync.plan.family('eb').restore_text


def test_compiled_cache_hits_and_invalidation(tmp_path):
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
    filters = _filters()
    b0 = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.1'})
    cache = nic_sync.CompiledCache(str(tmp_path))
    [(_b, compiled)] = nic_sync.compile_bindings([b0], filters, cache)
    cache.save()
    again = nic_sync.CompiledCache(str(tmp_path))
    key = again.key(b0, filters)
    assert again.get(key) == compiled  # round-trips through JSON to an equal Ruleset
    other = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.2'})
    assert again.get(again.key(other, filters)) is None
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.resolve import filter_tree
    deepest = filter_tree('clean-traffic', filters)[-1]
    assert deepest != 'clean-traffic'
    changed = dict(filters)
    changed[deepest] = parse_filter("<filter name='%s' chain='arp'>"
                                    "<rule direction='inout' action='drop'><all/></rule></filter>" % deepest)
    assert fresh_key_differs(changed, b0, key, tmp_path)
    unrelated = dict(filters)
    unrelated['allow-arp'] = changed[deepest]
    assert 'allow-arp' not in filter_tree('clean-traffic', filters)
    assert nic_sync.CompiledCache(str(tmp_path)).key(b0, unrelated) == key


def fresh_key_differs(filters, binding, key, tmp_path):
    """A filter deep in the binding's tree changed: the key must change."""
    return nic_sync.CompiledCache(str(tmp_path)).key(binding, filters) != key


def test_hook_only_drift_names_the_interface(tmp_path):
    engine, kernels = make_engine(tmp_path)
    b0 = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.1'})
    b1 = binding_store.make_binding('vnet1', '52:54:00:00:00:02', 'clean-traffic', {'IP': '10.0.0.2'})
    nic_sync.sync_host(str(tmp_path), engine, upserts=[b0, b1], filters=_filters(), interface_exists_fn=_exists)
    kernels['ebtables'].tables['nat']['POSTROUTING'].remove('-o vnet1 -j libvirt-O-vnet1')
    result = nic_sync.sync_host(str(tmp_path), engine, filters=_filters(), interface_exists_fn=_exists)
    assert result.kernel_changed and not result.added
    assert result.interfaces_changed == ('vnet1',)
    assert kernels['ebtables'].tables['nat']['POSTROUTING'][-1] == '-o vnet1 -j libvirt-O-vnet1'


def test_verified_noop_fast_path_and_drift_still_found(tmp_path):
    engine, kernels = make_engine(tmp_path)
    planned = []
    real_plan = engine.plan

    def counting_plan(desired, live_texts=None):
        planned.append(1)
        return real_plan(desired, live_texts)

    engine.plan = counting_plan
    state = str(tmp_path)
    b0 = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.1'})

    def run(check_mode=False, upserts=(b0,)):
        engine.runner.calls = []
        return nic_sync.sync_host(state, engine, upserts=list(upserts), filters=_filters(),
                                  interface_exists_fn=_exists, check_mode=check_mode)

    assert run().kernel_changed and len(planned) == 1
    assert not run().changed and len(planned) == 2  # full diff, found nothing: state recorded
    third = run()
    assert not third.changed and len(planned) == 2  # fast path: no compile, no diff
    assert [k for k, _a in engine.runner.calls] == ['read', 'read', 'read']
    # Drift after the recorded state is found in check mode and repaired.
    kernels['ebtables'].tables['nat']['I-vnet0-mac'] = []
    check = run(check_mode=True)
    assert check.kernel_changed and check.sync.writes == () and len(planned) == 3
    assert run().kernel_changed
    assert kernels['ebtables'].tables['nat']['I-vnet0-mac'] == ['-s 52:54:00:00:00:01 -j RETURN', '-j DROP']
    # Another parameter (same store otherwise) is never served by the fast path.
    b0_new = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.7'})
    assert not run().changed
    assert run(upserts=[b0_new]).kernel_changed


def test_fast_path_keeps_the_caches(tmp_path):
    engine, _kernels = make_engine(tmp_path)
    b0 = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.1'})
    for _round in range(3):  # apply, verified no-op, fast-path no-op
        nic_sync.sync_host(str(tmp_path), engine, upserts=[b0], filters=_filters(), interface_exists_fn=_exists)
    canonical = json.loads((tmp_path / 'cache' / 'canonical-nwfilter.json').read_text())
    compiled = json.loads((tmp_path / 'cache' / 'compiled.json').read_text())
    assert len(canonical['entries']) >= 9 and len(compiled['entries']) == 1
