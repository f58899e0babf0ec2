# -*- coding: utf-8 -*-
from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import BindingError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.libvirt_nwfilter import (
    Coexistence, binding_file, interface_chains)

LIVE = {
    'eb': '*nat\n:PREROUTING ACCEPT\n:libvirt-I-vnet0 ACCEPT\n:I-vnet0-arp ACCEPT\n:libvirt-O-vnet10 ACCEPT\n',
    'ip': '*filter\n:FI-vnet0 - [0:0]\n:HI-vnet0 - [0:0]\n:FO-vnet10 - [0:0]\n',
}


def test_interface_chains_are_found_by_exact_root_chain_names():
    assert interface_chains('vnet0', LIVE) == ['libvirt-I-vnet0', 'FI-vnet0', 'HI-vnet0']
    assert interface_chains('vnet1', LIVE) == []
    assert interface_chains('vnet10', LIVE) == ['libvirt-O-vnet10', 'FO-vnet10']


def test_binding_file_refuses_whatever_takeover_says(tmp_path):
    (tmp_path / 'vnet0.xml').write_text('<filterbindingstatus/>')
    assert binding_file('vnet0', str(tmp_path)) == str(tmp_path / 'vnet0.xml')
    assert binding_file('vnet1', str(tmp_path)) is None and binding_file('vnet0', '') is None
    with pytest.raises(BindingError) as refused:
        Coexistence(str(tmp_path), takeover=True).check_files(['vnet1', 'vnet0'])
    text = str(refused.value)
    assert "interface vnet0 is bound by libvirt's nwfilter driver (%s/vnet0.xml exists)" % tmp_path in text
    assert 'To hand interface vnet0 over' in text and 'takeover=true' in text
    Coexistence('', takeover=False).check_files(['vnet0'])  # check turned off


def test_foreign_chains_refused_unless_takeover(tmp_path):
    with pytest.raises(BindingError, match=r'interface vnet0 already has chains this collection did not make '
                                           r'\(libvirt-I-vnet0, FI-vnet0, HI-vnet0\)'):
        Coexistence(str(tmp_path)).check_chains(['vnet0'], LIVE)
    Coexistence(str(tmp_path)).check_chains(['vnet1'], LIVE)
    Coexistence(str(tmp_path), takeover=True).check_chains(['vnet0'], LIVE)
