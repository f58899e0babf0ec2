# -*- coding: utf-8 -*-
"""Stored networks: round trip, order, damaged files."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import networks as network_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.parse import NetworkSpecError
from ansible_collections.hypervisor.netfilter.tests.lib.network_spec import network_spec as _spec


def test_store_round_trip_and_order(tmp_path):
    state_dir = str(tmp_path)
    assert network_store.load_all(state_dir) == ()
    second = network_store.StoredNetwork(_spec('b', 'br-b', ipv4={'address': '10.2.0.1/24'}), 'nftables', 2)
    first = network_store.StoredNetwork(_spec('a'), 'iptables', 1, bridge_created=True, zone='libvirt')
    network_store.save(state_dir, second)
    network_store.save(state_dir, first)
    loaded = network_store.load_all(state_dir)
    assert loaded == (first, second)
    assert network_store.next_seq(loaded) == 3
    assert oct(os.stat(os.path.join(state_dir, 'networks')).st_mode & 0o777) == '0o700'
    network_store.remove(state_dir, 'a')
    assert [n.spec.name for n in network_store.load_all(state_dir)] == ['b']
    assert os.listdir(os.path.join(state_dir, 'networks')) == ['b.json']  # no temp files left


def test_store_rejects_damaged_files(tmp_path):
    directory = tmp_path / 'networks'
    directory.mkdir()
    (directory / 'x.json').write_text('{not json')
    with pytest.raises(NetworkSpecError, match='cannot read stored network'):
        network_store.load_all(str(tmp_path))
    (directory / 'x.json').write_text(json.dumps({'version': 1, 'backend': 'iptables', 'seq': 1,
                                                  'spec': dict(_spec().to_dict(), bridge='bad/name')}))
    with pytest.raises(NetworkSpecError, match="bridge 'bad/name' is not a valid interface name"):
        network_store.load_all(str(tmp_path))
