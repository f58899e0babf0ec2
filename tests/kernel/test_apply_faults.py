# -*- coding: utf-8 -*-
"""Faults during apply, in throwaway namespaces.

* a restore killed (SIGKILL) in the middle of a big change leaves either the
  old or the new ruleset, never a mixture: the engine writes one transaction;
* bad input (unknown filter, missing variable, hostile interface name) fails
  before anything is written: dumps and the binding store are unchanged.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import NetfilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NWFILTER_OWNERSHIP
from ansible_collections.hypervisor.netfilter.tests.lib.xtables_ns import (
    NsRunner, clean_traffic, dumps, require_kernel, sync)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns


@pytest.fixture
def ns():
    require_kernel()
    with Netns(tag='fa') as namespace:
        yield namespace


def _engine(namespace, state_dir=None):
    return XtablesEngine(NWFILTER_OWNERSHIP, backend='nft', ebtables_backend='nft', state_dir=state_dir,
                         runner=NsRunner(namespace))


def test_killed_restore_leaves_old_or_new(ns, capsys):
    old = clean_traffic(60)
    new = clean_traffic(300, ip_base='192.0.3.')  # every old chain replaced, 240 NICs added
    sync(_engine(ns), new)
    new_dump = dumps(ns)
    outcomes = []
    for delay in (0.02, 0.1, 0.2, 0.4, 0.8):
        sync(_engine(ns), old)
        old_dump = dumps(ns)
        plan = _engine(ns).plan(new)
        text = plan.family('eb').restore_text
        restore = subprocess.Popen(ns.exec_argv(['ebtables-nft-restore', '--noflush']), stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, universal_newlines=True)
        restore.stdin.write(text)
        restore.stdin.close()
        time.sleep(delay)
        killed = restore.poll() is None
        if killed:
            restore.send_signal(signal.SIGKILL)
        restore.wait(timeout=60)
        after = dumps(ns)
        assert after in (old_dump, new_dump), 'a killed restore left a mixture (delay %.2f s)' % delay
        outcomes.append((delay, killed, 'new' if after == new_dump else 'old'))
    with capsys.disabled():
        print('\nkilled restores (delay, killed while running, result): %s' % outcomes)
    assert any(killed for _d, killed, _r in outcomes), 'no restore was still running when killed: %s' % outcomes


@pytest.mark.parametrize('binding, message, written', [
    (dict(filter_name='no-such-filter', parameters={}), 'no-such-filter', False),
    (dict(filter_name='clean-traffic', parameters={}), 'IP', False),
    # Not caught by the compiler: the kernel rejects the transaction as a whole.
    (dict(filter_name='clean-traffic', parameters={'IP': '300.1.2.3'}), '300.1.2.3', True),
])
def test_bad_input_changes_nothing(ns, tmp_path, binding, message, written):
    state_dir = str(tmp_path)
    good = binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '192.0.2.10'})
    nic_sync.sync_host(state_dir, _engine(ns, state_dir), upserts=[good], interface_exists_fn=lambda n: True)
    before = dumps(ns)
    stored = binding_store.load_bindings(state_dir)
    bad = binding_store.make_binding('vnet1', '52:54:00:00:00:02', binding['filter_name'], binding['parameters'])
    engine = _engine(ns, state_dir)
    with pytest.raises(NetfilterError) as info:
        nic_sync.sync_host(state_dir, engine, upserts=[bad], interface_exists_fn=lambda n: True)
    assert message in str(info.value)
    assert bool(engine.runner.writes()) == written
    assert dumps(ns) == before
    assert binding_store.load_bindings(state_dir) == stored


def test_concurrent_runs_do_not_lose_bindings(ns, tmp_path):
    """Two runs at once (like two playbooks): the state_dir lock serialises read-diff-apply,
    so both NICs end up bound and filtered, none overwritten."""
    import threading
    state_dir = str(tmp_path)
    errors = []

    def bind(index):
        binding = binding_store.make_binding('vnet%d' % index, '52:54:00:00:00:%02x' % (index + 1), 'clean-traffic',
                                             {'IP': '192.0.2.%d' % (10 + index)})
        try:
            nic_sync.sync_host(state_dir, _engine(ns, state_dir), upserts=[binding],
                               interface_exists_fn=lambda n: True)
        except NetfilterError as exc:  # surfaced below
            errors.append(exc)

    for _round in range(3):
        threads = [threading.Thread(target=bind, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors
        assert sorted(b.interface for b in binding_store.load_bindings(state_dir)) == ['vnet0', 'vnet1']
        eb = dumps(ns)['eb']
        assert '-A PREROUTING -i vnet0 -j libvirt-I-vnet0' in eb and '-A PREROUTING -i vnet1 -j libvirt-I-vnet1' in eb
        nic_sync.sync_host(state_dir, _engine(ns, state_dir), removals=['vnet0', 'vnet1'],
                           interface_exists_fn=lambda n: True)
