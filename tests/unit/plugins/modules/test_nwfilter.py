# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nwfilter module end to end (through main()), with a temporary state_dir."""

from __future__ import annotations

import json
import os
import types

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import host
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import host_settings
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import parse as nwfilter_parse
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import filters as store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import CommandError
from ansible_collections.hypervisor.netfilter.plugins.modules import nwfilter

UUID = '6f1a8e4c-3d2b-4e5f-9a0b-1c2d3e4f5a6b'
WEB = """<filter name='web'>
  <filterref filter='clean-traffic'/>
  <rule action='accept' direction='in' priority='100'><tcp dstportstart='80'/></rule>
</filter>"""


@pytest.fixture
def run(tmp_path, capsys):
    state_dir = str(tmp_path / 'state')

    def _run(check=False, diff=False, **args):
        args.setdefault('state_dir', state_dir)
        if check:
            args['_ansible_check_mode'] = True
        if diff:
            args['_ansible_diff'] = True
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                nwfilter.main()
        return json.loads(capsys.readouterr().out)

    _run.state_dir = state_dir
    return _run


def warnings(result):
    """Warning texts (ansible-core 2.19 wraps each in a WarningSummary dict)."""
    return [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings', [])]


def stored(state_dir, name):
    path = os.path.join(state_dir, 'filters', name + '.xml')
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


def test_define_assigns_a_uuid_and_writes_canonical_xml(run):
    result = run(xml=WEB)
    assert result['changed'] is True and not result.get('failed')
    text = stored(run.state_dir, 'web')
    assert text == result['filter']['xml']
    assert result['filter']['uuid'] in text and result['filter']['defined'] is True
    assert result['filter']['builtin'] is False and result['rebuilt'] == []
    assert text.splitlines()[2:5] == ["  <filterref filter='clean-traffic'/>",
                                      "  <rule action='accept' direction='in' priority='100'>",
                                      "    <tcp dstportstart='80'/>"]


def test_rerun_is_unchanged_and_keeps_the_uuid(run):
    first = run(xml=WEB)
    second = run(xml=WEB.replace("priority='100'", "priority='+100'"))  # same canonical form
    assert second['changed'] is False
    assert second['filter']['uuid'] == first['filter']['uuid']
    third = run(xml=WEB.replace("'80'", "'8080'"), diff=True)
    assert third['changed'] is True and third['filter']['uuid'] == first['filter']['uuid']
    assert "dstportstart='80'" in third['diff']['before'] and "dstportstart='8080'" in third['diff']['after']


def test_given_uuid_is_kept_and_cannot_silently_change(run):
    result = run(xml=WEB.replace("<filter name='web'>", "<filter name='web'><uuid>%s</uuid>" % UUID))
    assert result['filter']['uuid'] == UUID
    result = run(xml=WEB.replace("<filter name='web'>", "<filter name='web'><uuid>%s</uuid>" % UUID.replace('6f', '7f')))
    assert result['failed'] and 'already exists with uuid %s' % UUID in result['msg']


def test_uuid_of_another_filter_is_refused(run):
    builtin_uuid = store.builtin_filters()['allow-arp'].uuid
    result = run(xml="<filter name='mine'><uuid>%s</uuid></filter>" % builtin_uuid)
    assert result['failed'] and "already used by filter 'allow-arp'" in result['msg']


def test_check_mode_writes_nothing(run):
    result = run(xml=WEB, check=True, diff=True)
    assert result['changed'] is True
    assert result['diff']['before'] == '' and "<filter name='web' chain='root'>" in result['diff']['after']
    assert not os.path.exists(run.state_dir)  # not even the lock file


def test_cycle_is_refused_and_nothing_written(run):
    run(xml="<filter name='a'><filterref filter='b'/></filter>")  # b does not exist yet: allowed
    run(xml="<filter name='b'><filterref filter='c'/></filter>")
    result = run(xml="<filter name='c'><filterref filter='a'/></filter>")
    assert result['failed'] and 'c -> a -> b -> c' in result['msg']
    assert stored(run.state_dir, 'c') is None


def test_invalid_documents_name_what_is_wrong(run):
    result = run(xml="<filter name='bad'><rule action='accept' direction='in'><tcp srcportstart='99999'/></rule></filter>")
    assert result['failed']
    for part in ("filter 'bad'", 'rule #1', "attribute 'srcportstart'", "'99999'"):
        assert part in result['msg']
    assert run(xml='<filter name="x"><rule').get('failed')
    assert 'unknown attribute' in run(xml="<filter name='x' color='red'/>")['msg']
    assert run(xml=WEB, name='other')['msg'] == "name 'other' differs from the document's filter name 'web'"
    assert stored(run.state_dir, 'bad') is None


@pytest.mark.parametrize('name', ('a b', 'x;reboot', '$(id)', '../../etc/x', '.hidden', 'n' * 201))
def test_hostile_names_are_refused(run, name):
    escaped = name.replace('&', '&amp;').replace("'", '&apos;')
    result = run(xml="<filter name='%s'/>" % escaped)
    assert result['failed'] and 'filter name' in result['msg']
    assert not os.path.exists(os.path.join(run.state_dir, 'filters')) or \
        os.listdir(os.path.join(run.state_dir, 'filters')) == []


def test_strict_false_accepts_and_warns(run):
    xml = ("<filter name='lax'><rule action='accept' direction='in'><tcp match='no' srcporttend='24' "
           "srcportstart='22'/></rule></filter>")
    assert 'srcporttend' in run(xml=xml)['msg']
    result = run(xml=xml, strict=False)
    assert result['changed'] is True and result['ignored'] == ["attribute srcporttend='24' of <tcp> (line 1)"]
    assert any('srcporttend' in w for w in warnings(result))
    assert "<tcp match='no' srcportstart='22'/>" in result['filter']['xml']


def test_src_is_read_on_the_host(run, tmp_path):
    path = tmp_path / 'web.xml'
    path.write_text(WEB)
    assert run(src=str(path))['changed'] is True
    assert run(src=str(path))['changed'] is False
    result = run(src=str(tmp_path / 'missing.xml'))
    assert result['failed'] and 'missing.xml' in result['msg']


def test_present_needs_a_document_and_absent_a_name(run):
    assert 'xml' in run(state='present')['msg']
    assert 'name' in run(state='absent')['msg']
    assert 'mutually exclusive' in run(xml=WEB, src='/x')['msg']


def test_redefining_a_builtin(run):
    builtin = store.builtin_filters()['allow-arp']
    same = run(xml=store.format_filter(builtin))
    assert same['changed'] is False and stored(run.state_dir, 'allow-arp') is None
    custom = run(xml="<filter name='allow-arp' chain='arp'><rule action='drop' direction='inout'/></filter>")
    assert custom['changed'] is True and custom['filter']['uuid'] == builtin.uuid  # keeps the built-in's UUID
    assert custom['filter']['builtin'] is True and custom['filter']['defined'] is True
    removed = run(name='allow-arp', state='absent')
    assert removed['changed'] is True and stored(run.state_dir, 'allow-arp') is None
    assert any('built-in definition' in w for w in warnings(removed))
    again = run(name='allow-arp', state='absent')
    assert again['changed'] is False


def test_absent_is_refused_while_used(run, monkeypatch):
    run(xml="<filter name='base'><rule action='accept' direction='in'><all/></rule></filter>")
    run(xml="<filter name='top'><filterref filter='base'/></filter>")
    result = run(name='base', state='absent')
    assert result['failed'] and "filters 'top'" in result['msg']
    monkeypatch.setattr(store, 'stored_bindings', lambda state_dir: (('vnet9', 'top'), ('vnet2', 'allow-arp')))
    result = run(name='top', state='absent')
    assert result['failed'] and "interfaces 'vnet9'" in result['msg'] and 'vnet2' not in result['msg']
    monkeypatch.setattr(store, 'stored_bindings', lambda state_dir: ())
    result = run(name='top', state='absent', diff=True, check=True)
    assert result['changed'] is True and result['diff']['after'] == '' and stored(run.state_dir, 'top')
    assert run(name='top', state='absent')['changed'] is True and stored(run.state_dir, 'top') is None
    assert run(name='top', state='absent')['changed'] is False
    assert run(name='base', state='absent')['changed'] is True


@pytest.fixture
def rebuilds(monkeypatch, run):
    """Record the NIC stage of the closing host reconcile (a fake xtables NIC backend);
    bindings: vnet0/vnet2 -> top, vnet1 -> allow-arp (a binding using 'explode' fails)."""
    calls = []
    monkeypatch.setattr(store, 'stored_bindings',
                        lambda state_dir: (('vnet0', 'top'), ('vnet1', 'allow-arp'), ('vnet2', 'top')))

    def fake_backend(state_dir, check_mode, settings, runner, options):
        filters = options['filters']
        bound = store.stored_bindings(state_dir)
        calls.append(dict(check_mode=check_mode, filters=filters, settings=settings))
        if any('explode' in store.reference_closure(top, filters) for _i, top in bound):
            raise CommandError('iptables-restore failed: line 3', ['iptables-restore'], 1, 'line 3')
        return types.SimpleNamespace(
            bindings=tuple(types.SimpleNamespace(interface=i, filter=top) for i, top in bound), skipped=(),
            interface_details=(), sync=types.SimpleNamespace(diff=()), warnings=('interface vnet9 does not exist',))

    monkeypatch.setitem(host.NIC_BACKENDS, 'iptables', fake_backend)
    binding_store.save_bindings(run.state_dir, ())  # the host has bindings.json: the NIC stage runs
    return calls


def test_changes_rebuild_the_bindings_that_use_the_filter(run, rebuilds):
    result = run(xml="<filter name='top'><filterref filter='base'/></filter>", backend='legacy')
    assert result['rebuilt'] == ['vnet0', 'vnet2'] and len(rebuilds) == 1
    call = rebuilds[0]
    assert call['check_mode'] is False and call['settings'].xtables_backend == 'legacy'
    assert 'top' in call['filters'] and len(call['filters']) == 25  # the new definition, with the built-ins
    assert 'interface vnet9 does not exist' in warnings(result)
    assert host_settings.load_host_settings(run.state_dir).xtables_backend == 'legacy'  # a host setting now
    result = run(xml="<filter name='base'><rule action='accept' direction='in'><all/></rule></filter>", check=True)
    assert result['rebuilt'] == ['vnet0', 'vnet2'] and rebuilds[-1]['check_mode'] is True
    assert 'base' in rebuilds[-1]['filters']  # check mode: the planned definition is compiled, not stored
    assert rebuilds[-1]['settings'].xtables_backend == 'legacy'  # the stored setting, not given this time
    del rebuilds[:]
    unchanged = run(xml="<filter name='top'><filterref filter='base'/></filter>")
    assert unchanged['changed'] is False and unchanged['rebuilt'] == []
    assert run(xml="<filter name='lonely'/>")['rebuilt'] == []
    # unchanged filters and filters nobody uses rebuild nothing; the closing reconcile still ran
    assert len(rebuilds) == 2
    assert [(o['kind'], o['name'], o['status']) for o in unchanged['objects']] == [
        ('binding', 'vnet0', 'in_sync'), ('binding', 'vnet1', 'in_sync'), ('binding', 'vnet2', 'in_sync')]


def test_a_failed_rebuild_restores_the_previous_definition(run, rebuilds, monkeypatch):
    monkeypatch.setattr(store, 'stored_bindings', lambda state_dir: (('vnet5', 'explode'),))
    first = run(xml="<filter name='explode'><rule action='accept' direction='in'><all/></rule></filter>")
    assert first['failed'] and 'iptables-restore failed' in first['msg'] and first['changed'] is False
    assert stored(run.state_dir, 'explode') is None  # a new filter is removed again
    monkeypatch.setattr(store, 'stored_bindings', lambda state_dir: ())
    run(xml="<filter name='explode'><rule action='accept' direction='in'><all/></rule></filter>")
    before = stored(run.state_dir, 'explode')
    monkeypatch.setattr(store, 'stored_bindings', lambda state_dir: (('vnet5', 'explode'),))
    second = run(xml="<filter name='explode'><rule action='drop' direction='in'><all/></rule></filter>")
    assert second['failed'] and stored(run.state_dir, 'explode') == before


def test_gathered_lists_builtins_and_defined(run):
    run(xml=WEB)
    result = run(state='gathered')
    names = [f['name'] for f in result['filters']]
    assert len(names) == 25 and names == sorted(names) and result['changed'] is False
    web = [f for f in result['filters'] if f['name'] == 'web'][0]
    assert web['defined'] is True and web['chain'] == 'root' and web['priority'] == 0
    arp = [f for f in result['filters'] if f['name'] == 'no-arp-ip-spoofing'][0]
    assert (arp['chain'], arp['priority'], arp['builtin'], arp['defined']) == ('arp-ip', -510, True, False)
    assert arp['xml'].startswith("<filter name='no-arp-ip-spoofing' chain='arp-ip' priority='-510'>")
    only = run(state='gathered', name='web')
    assert [f['name'] for f in only['filters']] == ['web']
    assert run(state='gathered', name='nope')['failed']


def test_missing_lxml_is_reported(run, monkeypatch):
    monkeypatch.setattr(nwfilter_parse, 'HAS_LXML', False)
    result = run(state='gathered')
    assert result['failed'] and 'lxml' in result['msg']


def test_rendered_shows_the_filter_and_the_rules_of_its_users_and_touches_nothing(run):
    fresh = run(state='rendered', xml=WEB)
    assert fresh['changed'] is False and fresh['rendered']['interfaces'] == []
    assert fresh['rendered']['xml'] == fresh['filter']['xml'] and fresh['rendered']['iptables'] == ''
    assert not os.path.exists(run.state_dir)  # not even the lock file
    run(xml=WEB)
    binding_store.save_binding(run.state_dir, binding_store.make_binding(
        'vnet0', '52:54:00:00:00:01', 'web', {'IP': '10.0.0.1'}))
    binding_store.save_binding(run.state_dir, binding_store.make_binding(
        'vnet1', '52:54:00:00:00:02', 'allow-arp', {}))
    before = stored(run.state_dir, 'web')
    result = run(state='rendered', xml=WEB.replace("'80'", "'8080'"))
    assert result['changed'] is False and stored(run.state_dir, 'web') == before
    assert result['rendered']['interfaces'] == ['vnet0']  # vnet1's filter tree does not contain web
    assert "dstportstart='8080'" in result['rendered']['xml'] and result['filter']['uuid'] in before
    assert '--dport 8080' in result['rendered']['iptables'] and 'vnet1' not in result['rendered']['ebtables']
    assert '-A I-vnet0-mac -s 52:54:00:00:00:01 -j RETURN' in result['rendered']['ebtables']
    assert 'xml' in run(state='rendered')['msg']


# ---------------------------------------------------------------- the YAML form (rules, filterrefs)

WEB_YAML = dict(name='web', filterrefs=[{'filter': 'clean-traffic'}],
                rules=[{'action': 'accept', 'direction': 'in', 'priority': 100, 'tcp': {'dstportstart': 80}}])


def test_yaml_form_stores_the_same_filter_as_the_xml_form(run, tmp_path):
    from_yaml = run(**WEB_YAML)
    assert from_yaml['changed'] is True and not from_yaml.get('failed'), from_yaml
    other = str(tmp_path / 'other')
    from_xml = run(state_dir=other, xml=WEB.replace("<filter name='web'>",
                                                    "<filter name='web'><uuid>%s</uuid>" % from_yaml['filter']['uuid']))
    assert stored(run.state_dir, 'web') == stored(other, 'web')
    assert run(**WEB_YAML)['changed'] is False  # idempotent
    assert run(xml=WEB)['changed'] is False  # and the XML form is the same definition


def test_gathered_yaml_defines_the_same_filter_when_passed_back(run, tmp_path):
    run(xml="""<filter name='db' chain='ipv4-db' priority='-650'>
      <rule action='accept' direction='in' priority='100'><tcp dstportstart='5432' state='NEW' comment='pg'/></rule>
      <rule action='drop' direction='in' priority='110'><tcp match='no' srcipaddr='10.0.1.0' srcipmask='24'/></rule>
      <filterref filter='allow-dhcp'><parameter name='DHCPSERVER' value='10.0.0.1'/></filterref>
      <rule action='accept' direction='out' statematch='false'><ip protocol='udp' dstportstart='123'/></rule>
    </filter>""")
    gathered = run(state='gathered', name='db')['filters'][0]
    other = str(tmp_path / 'other')
    again = run(state_dir=other, **gathered['yaml'])
    assert again['changed'] is True and again['filter']['xml'] == gathered['xml']
    assert run(**gathered['yaml'])['changed'] is False


def test_yaml_errors_name_rule_key_and_value_and_write_nothing(run):
    result = run(name='web', rules=[{'action': 'accept', 'direction': 'in'},
                                    {'action': 'accept', 'direction': 'in', 'priority': 120,
                                     'tcp': {'dstportstart': 70000}}])
    assert result['failed'] is True
    assert "rules[1] (priority 120), key 'tcp.dstportstart', value '70000'" in result['msg'], result['msg']
    assert stored(run.state_dir, 'web') is None


def test_argument_spec_checks_the_yaml_form_first(run):
    assert 'value of action must be one of' in run(name='x', rules=[{'action': 'jump', 'direction': 'in'}])['msg']
    assert 'Unsupported parameters' in run(name='x', rules=[{'action': 'drop', 'direction': 'in', 'tcpx': {}}])['msg']
    assert 'missing parameter(s) required by' in run(rules=[{'action': 'drop', 'direction': 'in'}])['msg']
    assert 'mutually exclusive' in run(name='x', xml=WEB, rules=[])['msg']
    assert 'belongs to the YAML form' in run(xml=WEB, chain='root')['msg']


def test_yaml_strict_false_reports_ignored_attributes(run):
    result = run(name='t', strict=False, rules=[{'action': 'drop', 'direction': 'out',
                                                 'tcp': {'srcporttend': 1, 'dstportstart': 80}}])
    assert result['changed'] is True and "srcporttend='1'" in result['ignored'][0]
    assert "<tcp dstportstart='80'/>" in stored(run.state_dir, 't')
