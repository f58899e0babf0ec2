# -*- coding: utf-8 -*-
"""Binding store: interface name checks, atomic persistence, stored order."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import BindingError


@pytest.mark.parametrize('name', ['vnet0', 'tap-1.2', 'a@b', 'x' * 15, 'macvtap_9'])
def test_valid_interface_names(name):
    assert binding_store.validate_interface(name) == name


@pytest.mark.parametrize('name, message', [
    ('', 'non-empty'),
    ('x' * 16, '16 characters; Linux allows at most 15'),
    ('.', 'not a valid interface name'),
    ('..', 'not a valid interface name'),
    ('eth+', 'trailing'),
    ('a/b', "'/'"),
    ('a b', "' '"),
    ('a:1', "':'"),
    ('v;rm', "';'"),
    ('$(x)', "'$'"),
    ('-i', "must not start with '-'"),
    (None, 'non-empty string'),
])
def test_hostile_interface_names(name, message):
    with pytest.raises(BindingError) as info:
        binding_store.validate_interface(name)
    assert message in str(info.value)


def test_make_binding_normalises_and_checks():
    binding = binding_store.make_binding('vnet0', '52:54:00:AA:bb:01', 'clean-traffic', {'IP': ['10.0.0.1', '10.0.0.2']})
    assert binding.mac == '52:54:00:aa:bb:01'
    assert binding.parameters == (('IP', ('10.0.0.1', '10.0.0.2')),)
    assert binding.parameters_dict() == {'IP': ['10.0.0.1', '10.0.0.2']}
    with pytest.raises(BindingError, match='not a MAC address'):
        binding_store.make_binding('vnet0', '52:54:00', 'f')
    with pytest.raises(BindingError, match='not a valid parameter name'):
        binding_store.make_binding('vnet0', '52:54:00:aa:bb:01', 'f', {'bad\nname': 'x'})
    # libvirt uses '1X' and drops 'bad-name' (the compiler warns): both are stored
    assert binding_store.make_binding('vnet0', '52:54:00:aa:bb:01', 'f', {'1X': 'x', 'bad-name': 'y'}).parameters \
        == (('1X', ('x',)), ('bad-name', ('y',)))
    with pytest.raises(BindingError, match='empty list'):
        binding_store.make_binding('vnet0', '52:54:00:aa:bb:01', 'f', {'IP': []})


def test_store_roundtrip_order_and_atomic_files(tmp_path):
    state = str(tmp_path)
    for seq, name in enumerate(['vnet5', 'vnet1', 'vnet3'], 1):
        binding_store.save_binding(state, binding_store.make_binding(name, '52:54:00:00:00:0%d' % seq, 'f'))
    loaded = binding_store.load_bindings(state)
    assert [b.interface for b in loaded] == ['vnet5', 'vnet1', 'vnet3']
    assert [b.seq for b in loaded] == [1, 2, 3]
    assert binding_store.binding_filters(state) == (('vnet5', 'f'), ('vnet1', 'f'), ('vnet3', 'f'))
    assert sorted(os.listdir(state)) == ['bindings.json']  # no temporary files left
    data = json.loads(open(os.path.join(state, 'bindings.json')).read())
    assert data['bindings'][1] == {'interface': 'vnet1', 'mac': '52:54:00:00:00:02', 'filter': 'f', 'parameters': []}
    # Rebinding keeps the place.
    binding_store.save_binding(state, binding_store.make_binding('vnet5', '52:54:00:00:00:09', 'g'))
    assert [(b.interface, b.filter) for b in binding_store.load_bindings(state)][0] == ('vnet5', 'g')
    assert binding_store.remove_binding(state, 'vnet1') is True
    assert binding_store.remove_binding(state, 'vnet1') is False
    assert [b.interface for b in binding_store.load_bindings(state)] == ['vnet5', 'vnet3']


@pytest.mark.parametrize('text, message', [
    ('not json', 'are damaged'),
    ('{"version": 7, "bindings": []}', 'unknown format'),
    ('{"version": 1, "bindings": [{"interface": "vnet0"}]}', "binding #1 is damaged: 'mac'"),
    ('{"version": 1, "bindings": [{"interface": "a/b", "mac": "52:54:00:00:00:01", "filter": "f"}]}', "'/'"),
    ('{"version": 1, "bindings": [{"interface": "v", "mac": "52:54:00:00:00:01", "filter": "f"},'
     ' {"interface": "v", "mac": "52:54:00:00:00:01", "filter": "f"}]}', 'interface v twice'),
])
def test_damaged_store_is_reported(tmp_path, text, message):
    (tmp_path / 'bindings.json').write_text(text)
    with pytest.raises(BindingError) as info:
        binding_store.load_bindings(str(tmp_path))
    assert message in str(info.value)


@pytest.mark.parametrize('value', ['10.0.0.1\n-A PREROUTING -j DROP', ['10.0.0.1', 'x\ry'], 'tab\there'])
def test_parameter_values_with_control_characters_are_refused(value):
    with pytest.raises(BindingError, match='contains control characters'):
        binding_store.make_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': value})
