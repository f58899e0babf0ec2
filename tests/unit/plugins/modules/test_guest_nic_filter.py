# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""guest_nic_filter end to end through main(), on the simulated xtables of
test_xtables_apply (the kernel paths are in tests/kernel and the integration target)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import host_settings
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import host as host_reconcile
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import xtables_engine as xtables_apply
from ansible_collections.hypervisor.netfilter.plugins.modules import guest_nic_filter
from ansible_collections.hypervisor.netfilter.tests.lib.fake_xtables import make_engine

NIC0 = dict(interface='vnet0', mac='52:54:00:00:00:01', filter='clean-traffic', parameters={'IP': '10.0.0.1'})
NIC1 = dict(interface='vnet1', mac='52:54:00:00:00:02', filter='clean-traffic',
            parameters={'IP': ['10.0.0.2', '10.0.0.3']})
BINDING_XML = """<filterbinding>
  <owner><name>vm</name><uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid></owner>
  <portdev name='vnet7'/>
  <mac address='52:54:00:11:22:33'/>
  <filterref filter='clean-traffic'><parameter name='IP' value='10.0.0.5'/></filterref>
</filterbinding>"""


@pytest.fixture
def host(tmp_path, monkeypatch):
    """One simulated kernel shared by every module run of the test; interfaces vnet0-9 exist."""
    _engine, kernels = make_engine(tmp_path / 'unused')
    made = []

    def fake_engine(ownership, backend='auto', ebtables_backend='auto', state_dir=None, runner=None):
        engine, _k = make_engine(tmp_path / 'unused')
        engine.runner.kernels = kernels
        engine.cache = xtables_apply.CanonicalCache(state_dir + '/cache/canonical-test.json')
        made.append((backend, ebtables_backend))
        return engine

    monkeypatch.setattr(host_reconcile, 'XtablesEngine', fake_engine)  # the NIC stage of the closing reconcile
    monkeypatch.setattr(nic_sync, 'interface_exists', lambda name: name.startswith('vnet'))
    kernels['made'] = made
    return kernels


@pytest.fixture
def run(tmp_path, capsys, host):
    state_dir = str(tmp_path / 'state')

    def _run(check=False, diff=False, fail=False, **args):
        args.setdefault('state_dir', state_dir)
        if check:
            args['_ansible_check_mode'] = True
        if diff:
            args['_ansible_diff'] = True
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                guest_nic_filter.main()
        result = json.loads(capsys.readouterr().out)
        assert bool(result.get('failed')) == fail, result
        return result

    _run.state_dir = state_dir
    return _run


def test_bind_check_then_apply_then_noop(run, host):
    check = run(check=True, diff=True, **NIC0)
    assert check['changed'] and check['added'] == ['vnet0'] and check['kernel_changed']
    assert 'nat' not in host['ebtables'].tables
    assert binding_store.load_bindings(run.state_dir) == ()
    assert any('-A I-vnet0-mac -s 52:54:00:00:00:01 -j RETURN' in d['after'] for d in check['diff'])

    first = run(**NIC0)
    assert first['changed'] and first['interfaces_changed'] == ['vnet0']
    assert first['families']['ebtables']['chains_created'] == 9
    assert first['bindings'] == [dict(NIC0)]
    assert 'libvirt-I-vnet0' in host['ebtables'].tables['nat']

    again = run(**NIC0)
    assert not again['changed'] and not again['kernel_changed']


def test_many_nics_exclusive_and_absent(run, host):
    run(nics=[NIC0, NIC1])
    assert [b.interface for b in binding_store.load_bindings(run.state_dir)] == ['vnet0', 'vnet1']
    assert host['ebtables'].restores == 1  # both NICs in one transaction
    result = run(nics=[NIC1], exclusive=True)
    assert result['removed'] == ['vnet0'] and result['changed']
    assert 'libvirt-I-vnet0' not in host['ebtables'].tables['nat']
    assert result['bindings'][0]['parameters'] == {'IP': ['10.0.0.2', '10.0.0.3']}
    gone = run(state='absent', interface='vnet1')
    assert gone['removed'] == ['vnet1']
    assert host['ebtables'].tables['nat'] == {'PREROUTING': [], 'OUTPUT': [], 'POSTROUTING': []}
    assert not run(state='absent', interface='vnet1')['changed']


def test_present_without_nics_reapplies_every_stored_binding(run, host):
    run(nics=[NIC0, NIC1])
    applied = dict((k, list(v)) for k, v in host['ebtables'].tables['nat'].items())
    assert not run()['changed']  # nothing restated, nothing to do
    host['ebtables'].tables['nat']['I-vnet1-mac'] = []  # someone flushed one chain
    check = run(check=True)
    assert check['changed'] and [(o['name'], o['status']) for o in check['objects']] == [
        ('vnet0', 'in_sync'), ('vnet1', 'would_repair')]
    assert host['ebtables'].tables['nat']['I-vnet1-mac'] == []
    repaired = run()
    assert repaired['changed'] and repaired['added'] == [] and repaired['interfaces_changed'] == ['vnet1']
    assert [(o['name'], o['status']) for o in repaired['objects']] == [('vnet0', 'in_sync'), ('vnet1', 'repaired')]
    assert dict((k, list(v)) for k, v in host['ebtables'].tables['nat'].items()) == applied


def test_gathered_lists_bindings_and_whether_they_are_in_force(run, host):
    run(nics=[NIC0, NIC1])
    host['ebtables'].tables['nat']['I-vnet0-mac'] = []
    restores = host['ebtables'].restores
    result = run(state='gathered')
    assert result['changed'] is False and result['in_sync'] is False
    assert [b['interface'] for b in result['bindings']] == ['vnet0', 'vnet1']
    vnet0 = [o for o in result['objects'] if o['name'] == 'vnet0'][0]
    assert vnet0['status'] == 'would_repair' and any('I-vnet0-mac' in line for line in vnet0['missing'])
    assert host['ebtables'].restores == restores and host['ebtables'].tables['nat']['I-vnet0-mac'] == []
    one = run(state='gathered', interface='vnet1')
    assert [b['interface'] for b in one['bindings']] == ['vnet1'] and one['in_sync'] is True


def test_binding_xml(run, host):
    result = run(binding_xml=BINDING_XML)
    assert result['bindings'] == [dict(interface='vnet7', mac='52:54:00:11:22:33', filter='clean-traffic',
                                       parameters={'IP': '10.0.0.5'},
                                       owner=dict(name='vm', uuid='d54df46f-1ab5-4a22-8618-4560ef5fac2c'))]
    # the owner (libvirt's guest name and UUID) is stored with the binding
    assert binding_store.load_bindings(run.state_dir)[0].owner == ('vm', 'd54df46f-1ab5-4a22-8618-4560ef5fac2c')
    assert not run(binding_xml=BINDING_XML)['changed']
    assert '-s 52:54:00:11:22:33 -j RETURN' in host['ebtables'].tables['nat']['I-vnet7-mac']


def test_rendered_touches_nothing(run, host):
    result = run(state='rendered', **NIC0)
    assert not result['changed']
    assert result['rendered']['ebtables'].startswith('*nat\n')
    assert '-A I-vnet0-mac -s 52:54:00:00:00:01 -j RETURN' in result['rendered']['ebtables']
    assert result['rendered']['iptables'] == '' and result['rendered']['ip6tables'] == ''
    assert host['made'] == []  # no engine, no kernel access
    assert binding_store.load_bindings(run.state_dir) == ()


def test_missing_interface_gets_its_rules_by_default(run, host):
    """Fail closed: a NIC bound before its tap exists is filtered from the tap's first frame."""
    result = run(interface='tap9', mac='52:54:00:00:00:09', filter='clean-traffic', parameters={'IP': '10.0.0.9'})
    assert result['missing_interfaces'] == ['tap9'] and result['changed'] and result['kernel_changed']
    assert '-s 52:54:00:00:00:09 -j RETURN' in host['ebtables'].tables['nat']['I-tap9-mac']
    assert [(o['name'], o['status']) for o in result['objects']] == [('tap9', 'repaired')]
    assert not run(interface='tap9', mac='52:54:00:00:00:09', filter='clean-traffic',
                   parameters={'IP': '10.0.0.9'})['changed']


def test_missing_interface_is_stored_and_warned(run, host):
    result = run(interface='tap9', mac='52:54:00:00:00:09', filter='clean-traffic', parameters={'IP': '10.0.0.9'},
                 skip_missing_interfaces=True)
    assert result['missing_interfaces'] == ['tap9'] and result['changed'] and not result['kernel_changed']
    texts = [w['event']['msg'] if isinstance(w, dict) else w for w in result['warnings']]
    assert any('tap9 does not exist' in t for t in texts)
    assert [(o['name'], o['status']) for o in result['objects']] == [('tap9', 'skipped')]
    assert host_settings.load_host_settings(run.state_dir).skip_missing_interfaces is True  # a host setting


@pytest.mark.parametrize('args, message', [
    (dict(interface='vnet0/../x', mac='52:54:00:00:00:01', filter='clean-traffic'), "'/'"),
    (dict(interface='vnet0+', mac='52:54:00:00:00:01', filter='clean-traffic'), 'wildcard'),
    (dict(interface='averyveryverylongname', mac='52:54:00:00:00:01', filter='clean-traffic'), 'at most 15'),
    (dict(interface='vnet0', mac='nonsense', filter='clean-traffic'), 'not a MAC address'),
    (dict(interface='vnet0', filter='clean-traffic'), 'mac is required'),
    (dict(interface='vnet0', mac='52:54:00:00:00:01', filter='no-such-filter'), 'no-such-filter'),
    (dict(interface='vnet0', mac='52:54:00:00:00:01', filter='clean-traffic', parameters={}), 'IP'),
    (dict(nics=[NIC0, NIC0]), 'listed twice'),
    (dict(state='absent'), 'needs interface, binding_xml or nics'),
    (dict(exclusive=True), 'exclusive=true needs the complete list in nics'),
    (dict(binding_xml='<filterbinding><portdev name="v"/></filterbinding>'), 'mac'),
])
def test_bad_input_changes_nothing(run, host, args, message):
    result = run(fail=True, **args)
    assert message in result['msg']
    assert host['ebtables'].tables == {} and host['ebtables'].restores == 0
    assert binding_store.load_bindings(run.state_dir) == ()


def test_rejected_restore_fails_with_tool_text(run, host):
    run(**NIC0)
    host['ebtables'].reject = 'vnet1'
    result = run(fail=True, **NIC1)
    assert 'Bad argument' in result['msg'] and 'Bad argument' in result['stderr']
    assert [b.interface for b in binding_store.load_bindings(run.state_dir)] == ['vnet0']


def test_backend_options_reach_the_engine(run, host):
    run(backend='legacy', ebtables_backend='nft', **NIC0)
    assert host['made'][-1] == ('legacy', 'nft')


def test_diff_shows_stored_bindings(run, host):
    run(**NIC0)
    result = run(diff=True, interface='vnet0', mac='52:54:00:00:00:01', filter='clean-traffic',
                 parameters={'IP': '10.0.0.9'})
    store = [d for d in result['diff'] if d['before_header'] == 'stored bindings'][0]
    assert store['before'] == 'vnet0 52:54:00:00:00:01 clean-traffic IP=10.0.0.1\n'
    assert store['after'] == 'vnet0 52:54:00:00:00:01 clean-traffic IP=10.0.0.9\n'
    rules = ''.join(d['before'] + d['after'] for d in result['diff'] if d['before_header'] != 'stored bindings')
    assert '10.0.0.1' in rules and '10.0.0.9' in rules


def _warning_texts(result):
    return [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings', [])]


NOVA_RASERVER = '2001:db8:0:1::1/128'  # OpenStack nova's value: libvirt drops it, clean-traffic never uses it


@pytest.mark.parametrize('form', ['parameters', 'nics', 'binding_xml', 'rendered'])
def test_parameter_libvirt_drops_is_ignored_with_a_warning_in_every_form(run, host, form):
    if form == 'binding_xml':
        args = dict(binding_xml=BINDING_XML.replace(
            "<parameter name='IP' value='10.0.0.5'/>",
            "<parameter name='IP' value='10.0.0.5'/><parameter name='RASERVER' value='%s'/>" % NOVA_RASERVER))
        interface = 'vnet7'
    else:
        nic = dict(NIC0, parameters={'IP': '10.0.0.1', 'RASERVER': NOVA_RASERVER})
        args = dict(nics=[nic]) if form == 'nics' else dict(nic, state='rendered') if form == 'rendered' else nic
        interface = 'vnet0'
    result = run(**args)
    # (warnings of earlier module runs in this process may be listed too: look for this interface's)
    assert "interface %s: parameter RASERVER='%s' is ignored" % (interface, NOVA_RASERVER) \
        in '\n'.join(_warning_texts(result)), _warning_texts(result)
    if form == 'rendered':
        assert '-A I-vnet0-ipv4-ip -p ipv4 --ip-source 10.0.0.1 -j RETURN' in result['rendered']['ebtables']
    else:
        assert 'libvirt-I-%s' % interface in host['ebtables'].tables['nat']


def test_parameter_libvirt_drops_but_a_rule_uses_is_refused_naming_it(run, host):
    result = run(fail=True, **dict(NIC0, parameters={'IP': '10.0.0.1/24'}))
    for part in ('interface vnet0', "filter 'no-ip-spoofing'", 'rule #', "parameter IP: value '10.0.0.1/24'", '$IP'):
        assert part in result['msg'], (part, result['msg'])
    assert binding_store.load_bindings(run.state_dir) == ()
