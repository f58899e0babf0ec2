# -*- coding: utf-8 -*-
"""reconcile_host with ``firewall_backend: nftables`` (stored host setting) in a throwaway namespace.

The NIC stage builds table bridge hnf_nic from the stored bindings; a re-run
is in sync without writing; a flushed ruleset is reported by check mode
(nothing written) and restored; switching the stored setting back to
``iptables`` puts libvirt's chains in place and removes our table, and back
again removes libvirt's chains.  Bindings given to the nftables
``sync_host`` are stored only after the kernel took them.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_nics_fast
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics_nftables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile.host import reconcile_host
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import host_settings
from ansible_collections.hypervisor.netfilter.tests.lib.xtables_ns import NsRunner
from ansible_collections.hypervisor.netfilter.tests.lib.nft_nics import binding, require_kernel
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns


@pytest.fixture
def ns():
    require_kernel()
    with Netns(tag='nr') as namespace:
        yield namespace


def tables(ns):
    return ns.run(['nft', 'list', 'tables']).stdout


def run(ns, state_dir, check_mode=False):
    return reconcile_host(state_dir, check_mode=check_mode, runner=NsRunner(ns), firewalld='never',
                          interface_exists_fn=lambda name: True)


def test_reconcile_with_the_nftables_layout(ns, tmp_path):
    state_dir = str(tmp_path / 'state')
    binding_store.save_bindings(state_dir, [binding(i) for i in range(4)])
    host_settings.save_host_settings(state_dir, host_settings.HostSettings(firewall_backend='nftables'))

    first = run(ns, state_dir)
    assert first.changed and not first.failed
    assert 'table bridge hnf_nic' in tables(ns)
    assert 'libvirt' not in ns.run(['ebtables-nft-save']).stdout
    assert set(o.status for o in first.objects) == {'repaired'}

    again = run(ns, state_dir)
    assert not again.changed and again.nics.sync.writes == ()
    assert set(o.status for o in again.objects) == {'in_sync'}

    ns.run(['nft', 'flush', 'ruleset'])
    check = run(ns, state_dir, check_mode=True)
    assert check.changed and check.nics.sync.writes == () and check.diff
    assert set(o.status for o in check.objects) == {'would_repair'}
    assert 'hnf_nic' not in tables(ns)
    repaired = run(ns, state_dir)
    assert repaired.changed and 'hnf_nic' in tables(ns)
    assert not run(ns, state_dir).changed

    # Back to libvirt's layout: its chains first, then our table goes.
    host_settings.save_host_settings(state_dir, host_settings.HostSettings(firewall_backend='iptables'))
    back = run(ns, state_dir)
    assert back.changed and 'hnf_nic' not in tables(ns)
    assert 'libvirt-I-vnet0' in ns.run(['ebtables-nft-save']).stdout
    assert not run(ns, state_dir).changed
    host_settings.save_host_settings(state_dir, host_settings.HostSettings(firewall_backend='nftables'))
    forth = run(ns, state_dir)
    assert forth.changed and 'hnf_nic' in tables(ns)
    assert 'libvirt' not in ns.run(['ebtables-nft-save']).stdout


def test_sync_host_stores_after_apply_and_reports_interfaces(ns, tmp_path):
    state_dir = str(tmp_path / 'state')
    runner = NsRunner(ns)
    kwargs = dict(runner=runner, interface_exists_fn=lambda name: True)
    first = nics_nftables.sync_host(state_dir, upserts=[binding(i) for i in range(3)], **kwargs)
    assert first.added == ('vnet0', 'vnet1', 'vnet2') and first.kernel_changed
    assert [b.interface for b in binding_store.load_bindings(state_dir)] == ['vnet0', 'vnet1', 'vnet2']
    changed = nics_nftables.sync_host(state_dir, upserts=[binding(1, ips=['10.1.7.7'])], check_mode=True, **kwargs)
    assert changed.updated == ('vnet1',) and changed.interfaces_changed == ('vnet1',)
    assert all('vnet1' in line for _i, lines in changed.interface_details for line in lines)
    assert binding_store.load_bindings(state_dir)[1].parameters == (('IP', ('10.1.0.1',)),)  # check mode
    assert 'nftables' in changed.sync.summary()
    # A binding the compiler refuses changes nothing, kernel or store.
    before = ns.run(['nft', 'list', 'table', 'bridge', 'hnf_nic']).stdout
    with pytest.raises(NetfilterError):
        nics_nftables.sync_host(state_dir, upserts=[binding_store.make_binding(
            'vnet9', '52:54:00:00:09:09', 'no-such-filter')], **kwargs)
    assert ns.run(['nft', 'list', 'table', 'bridge', 'hnf_nic']).stdout == before
    assert len(binding_store.load_bindings(state_dir)) == 3
    removed = nics_nftables.sync_host(state_dir, removals=['vnet2'], **kwargs)
    assert removed.removed == ('vnet2',) and removed.interfaces_changed == ('vnet2',)


def test_incremental_path_and_its_limits(ns, tmp_path):
    """After a run, NIC changes on existing chains are element writes without reading the table;
    any commit by someone else (a drift) sends the next run down the full path, which repairs."""
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import nft_nics
    state_dir = str(tmp_path / 'state')
    kwargs = dict(runner=NsRunner(ns), interface_exists_fn=lambda name: True)
    nics_nftables.sync_host(state_dir, upserts=[binding(i) for i in range(5)], **kwargs)
    reference = nft_nics.read_live(NsRunner(ns))

    def reads(result):
        return [argv for kind, argv in kwargs['runner'].calls if 'list' in argv and kind == 'read']

    kwargs['runner'].calls[:] = []
    changed = nics_nftables.sync_host(state_dir, upserts=[binding(2, ips=['10.1.8.2'])], **kwargs)
    assert changed.kernel_changed and changed.interfaces_changed == ('vnet2',)
    assert reads(changed) == []  # the table was not read: nothing was committed since the last run
    script = changed.sync.result.nft_plan.script.splitlines()
    assert len(script) == 4 and all('"vnet2"' in line for line in script), script  # IP and ARP IP sets
    added = nics_nftables.sync_host(state_dir, upserts=[binding(7)], **kwargs)
    assert added.added == ('vnet7',) and added.sync.result.layout is None  # incremental too
    removed = nics_nftables.sync_host(state_dir, removals=['vnet7'], **kwargs)
    assert removed.removed == ('vnet7',) and removed.sync.result.layout is None
    back = nics_nftables.sync_host(state_dir, upserts=[binding(2)], **kwargs)
    assert back.kernel_changed and nft_nics.read_live(NsRunner(ns)) == reference

    # A drift: the element goes, the next run reads, finds and repairs it.
    ns.run(['nft', 'delete', 'element', 'bridge', 'hnf_nic', 'eth-in', '{ "vnet3" }'])
    check = nics_nftables.sync_host(state_dir, check_mode=True, **kwargs)
    assert check.kernel_changed and check.interfaces_changed == ('vnet3',)
    repaired = nics_nftables.sync_host(state_dir, **kwargs)
    assert repaired.kernel_changed and repaired.sync.result.layout is not None
    assert nft_nics.read_live(NsRunner(ns)) == reference
    # A NIC on another filter needs new chains: the full path.
    other = nics_nftables.sync_host(state_dir, upserts=[binding(9, 'no-mac-spoofing')], **kwargs)
    assert other.kernel_changed and other.sync.result.nft_plan.chains_added
    assert not nics_nftables.sync_host(state_dir, **kwargs).kernel_changed


def test_drop_unbound_interfaces_setting(ns, tmp_path):
    state_dir = str(tmp_path / 'state')
    binding_store.save_bindings(state_dir, [binding(0)])
    host_settings.save_host_settings(state_dir, host_settings.HostSettings(
        firewall_backend='nftables', drop_unbound_interfaces=['vnet*']))
    assert run(ns, state_dir).changed
    listing = ns.run(['nft', 'list', 'table', 'bridge', 'hnf_nic']).stdout
    assert 'iifname "vnet*" drop' in listing and 'oifname "vnet*" drop' in listing
    assert not run(ns, state_dir).changed
    host_settings.save_host_settings(state_dir, host_settings.HostSettings(firewall_backend='nftables'))
    assert run(ns, state_dir).changed
    assert 'vnet*' not in ns.run(['nft', 'list', 'table', 'bridge', 'hnf_nic']).stdout
    with pytest.raises(host_settings.HostSettingsError):
        host_settings.HostSettings(drop_unbound_interfaces=['bad name'])


def test_incremental_path_needs_the_same_boot_and_namespace(tmp_path):
    """A generation id restarts with every namespace (and boot): a snapshot taken elsewhere is not trusted,
    even when the id happens to be the same."""
    require_kernel()
    state_dir = str(tmp_path / 'state')
    with Netns(tag='n1') as first:
        kwargs = dict(runner=NsRunner(first), interface_exists_fn=lambda name: True)
        nics_nftables.sync_host(state_dir, upserts=[binding(0)], **kwargs)
    with Netns(tag='n2') as second:
        # A fresh namespace: no table; make its generation id the recorded one, as chance may.
        kwargs = dict(runner=NsRunner(second), interface_exists_fn=lambda name: True)
        path = os.path.join(state_dir, 'cache', 'nft-applied.json')
        with open(path, encoding='utf-8') as handle:
            snapshot = json.load(handle)
        snapshot['genid'] = nft_nics_fast.genid(kwargs['runner'])
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump(snapshot, handle)
        again = nics_nftables.sync_host(state_dir, **kwargs)
        assert again.kernel_changed and again.sync.result.layout is not None
        assert 'hnf_nic' in second.run(['nft', 'list', 'tables']).stdout
