# -*- coding: utf-8 -*-
"""NftCompiledCache: each binding's compiled share of the nftables layout in the one JSON cache of state_dir."""

from __future__ import annotations

import json
import os

from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import nwfilter_nftables as layout
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile.nics_nftables import NftCompiledCache
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.filters import builtin_filters
from ansible_collections.hypervisor.netfilter.tests.lib.nft_nics import binding

FILTERS = builtin_filters()


def _compile(cache, bindings):
    return layout.compile_layout(bindings, FILTERS, cache=cache)


def test_a_later_run_loads_every_nic_instead_of_compiling(tmp_path, monkeypatch):
    state_dir = str(tmp_path)
    bindings = [binding(i) for i in range(4)] + [binding(9, filter_name='no-ip-spoofing')]
    first_cache = NftCompiledCache(state_dir)
    first = _compile(first_cache, bindings)
    first_cache.save()
    with open(os.path.join(state_dir, 'cache', 'nft-compiled.json'), encoding='utf-8') as handle:
        data = json.load(handle)
    assert data['version'] == NftCompiledCache.VERSION
    kinds = sorted(set(k.split(':', 1)[0] for k in data['entries']))
    assert kinds == ['chain', 'nic', 'set']
    assert len([k for k in data['entries'] if k.startswith('nic:')]) == len(bindings)

    later = NftCompiledCache(state_dir)
    assert not later.loaded  # lazy: nothing read before a lookup
    compiled = []
    real = layout.compile_nic
    monkeypatch.setattr(layout, 'compile_nic', lambda *a, **k: compiled.append(a[0]) or real(*a, **k))
    again = _compile(later, bindings)
    assert compiled == [] and again == first
    # One changed binding: only that one is compiled.
    changed = bindings[:2] + [binding(2, ips=['10.1.9.2'])] + bindings[3:]
    _compile(later, changed)
    assert compiled == ['vnet2']


def test_a_cache_never_read_is_never_written(tmp_path):
    state_dir = str(tmp_path)
    cache = NftCompiledCache(state_dir)
    _compile(cache, [binding(1)])
    cache.save()
    path = os.path.join(state_dir, 'cache', 'nft-compiled.json')
    before = os.stat(path).st_mtime_ns
    unread = NftCompiledCache(state_dir)
    unread.save()
    assert os.stat(path).st_mtime_ns == before and not unread.loaded
