# -*- coding: utf-8 -*-
"""virt_network module: option handling that needs no kernel (rendered state and
validation errors; the kernel paths are in tests/kernel/test_network_*.py)."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.locking import state_lock
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network import parse as network_parse
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import networks as network_store
from ansible_collections.hypervisor.netfilter.plugins.modules import virt_network

XML = '''<network><name>default</name><bridge name="virbr0"/><forward/>
<ip address="192.168.122.1" netmask="255.255.255.0"><dhcp><range start="192.168.122.2" end="192.168.122.254"/></dhcp></ip>
</network>'''


def _run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            virt_network.main()
    return json.loads(capsys.readouterr().out)


def test_rendered_from_options_and_xml_are_identical(capsys, tmp_path):
    common = dict(state='rendered', state_dir=str(tmp_path / 'state'), firewall_backend='iptables')
    from_options = _run(capsys, dict(common, name='default', bridge='virbr0', forward_mode='nat',
                                     ipv4={'address': '192.168.122.1/24',
                                           'dhcp_range': {'start': '192.168.122.2', 'end': '192.168.122.254'}}))
    from_xml = _run(capsys, dict(common, xml=XML))
    assert from_options['changed'] is False
    assert from_options['rendered'] == from_xml['rendered']
    assert from_options['network'] == from_xml['network']
    rendered = from_xml['rendered']
    assert rendered['nftables'] == ''
    assert '-A LIBVIRT_PRT --source 192.168.122.0/24 ! --destination 192.168.122.0/24 --jump MASQUERADE' \
        in rendered['iptables']
    assert rendered['ip6tables'].startswith('*filter\n:LIBVIRT_INP - [0:0]\n')
    assert not (tmp_path / 'state').exists()  # rendered writes nothing


def test_rendered_nftables(capsys, tmp_path):
    out = _run(capsys, dict(state='rendered', xml=XML, firewall_backend='nftables', state_dir=str(tmp_path)))
    assert out['backend'] == 'nftables'
    assert out['rendered']['iptables'] == '' and out['rendered']['ip6tables'] == ''
    assert 'table ip libvirt_network {' in out['rendered']['nftables']


@pytest.mark.parametrize('args, message', [
    (dict(name='x', bridge='virbr0', ipv4={'address': '10.0.0.1', 'prefix': 40}), 'prefix 40 is out of range'),
    (dict(name='x', bridge='br:0'), "bridge 'br:0' is not a valid interface name"),
    (dict(name='x', forward_mode='nat'), 'bridge is required when xml is not given'),
    (dict(xml=XML, bridge='virbr1'), 'parameters are mutually exclusive: xml|bridge'),
    (dict(xml=XML, name='other'), "name 'other' disagrees with the XML network name 'default'"),
    (dict(bridge='virbr0'), 'one of the following is required: name, xml'),
    (dict(name='x', bridge='virbr0', ipv4='10.0.0.1/24'), 'ipv4 must be a dictionary or a list of dictionaries'),
    (dict(name='x', bridge='virbr0', forward_mode='nat', nat={'ports': {'start': 10, 'end': 5}}),
     'nat port range 10-5 is invalid'),
])
def test_bad_options_fail_with_a_clear_message(capsys, tmp_path, args, message):
    out = _run(capsys, dict(args, state='rendered', state_dir=str(tmp_path)))
    assert out['failed'] is True
    assert message in out['msg']


def test_lock_timeout_is_honoured(capsys, tmp_path):
    state_dir = str(tmp_path / 'state')
    with state_lock(state_dir):  # another run holds the state_dir lock
        out = _run(capsys, dict(name='x', bridge='virbr0', state_dir=state_dir, lock_timeout=0))
    assert out['failed'] is True and 'gave up after 0 s' in out['msg']


def test_name_alone_renders_the_stored_network(capsys, tmp_path):
    state_dir = str(tmp_path / 'state')
    defined = _run(capsys, dict(state='rendered', xml=XML, firewall_backend='iptables', state_dir=state_dir))
    missing = _run(capsys, dict(state='rendered', name='default', state_dir=state_dir))
    assert missing['failed'] and "network 'default' is not stored in %s" % state_dir in missing['msg']
    spec = network_parse.spec_from_xml(XML)
    network_store.save(state_dir, network_store.StoredNetwork(spec=spec, backend='iptables', seq=1))
    again = _run(capsys, dict(state='rendered', name='default', state_dir=state_dir))
    assert again['changed'] is False and again['backend'] == 'iptables'  # the stored layout, not auto's choice
    assert again['rendered'] == defined['rendered'] and again['network'] == defined['network']
    other = _run(capsys, dict(state='rendered', name='default', state_dir=state_dir, firewall_backend='nftables'))
    assert 'table ip libvirt_network {' in other['rendered']['nftables']
