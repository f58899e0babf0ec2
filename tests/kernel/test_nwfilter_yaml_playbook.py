# -*- coding: utf-8 -*-
"""The nwfilter module's YAML form through real ``ansible-playbook`` runs in a
throwaway hypervisor: a filter tree defined as YAML and one defined as XML,
bound to the same guests, store byte-identical files and give the same kernel
dump; the YAML ``gathered`` returns, passed back, changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.netns import (
    ThrowawayHypervisor, can_create_namespaces, missing_tools)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, '.ansible', 'collections')  # tests/conftest.py links the checkout there
UUIDS = ('3f1e0d2c-6b5a-4c3d-8e9f-0a1b2c3d4e5f', '4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d')

XML_FILTERS = [
    """<filter name='hnf-y-db' chain='ipv4-db' priority='-650'><uuid>%s</uuid>
      <rule action='accept' direction='in' priority='100'><tcp dstportstart='5432' state='NEW' comment='pg'/></rule>
      <rule action='drop' direction='in' priority='110'><tcp match='no' srcipaddr='192.0.2.0' srcipmask='24'/></rule>
      <rule action='accept' direction='out' priority='120' statematch='false'><udp dstportstart='53' dstipaddr='$DNS'/></rule>
    </filter>""" % UUIDS[0],
    """<filter name='hnf-y-web' chain='root'><uuid>%s</uuid>
      <filterref filter='clean-traffic'/>
      <rule action='accept' direction='in' priority='100'><tcp dstportstart='443'/></rule>
      <filterref filter='hnf-y-db'><parameter name='DNS' value='192.0.2.53'/></filterref>
      <rule action='accept' direction='inout' priority='200'><icmp/></rule>
      <rule action='drop' direction='inout' priority='1000'><all/></rule>
    </filter>""" % UUIDS[1],
]
YAML_FILTERS = [
    {'name': 'hnf-y-db', 'chain': 'ipv4-db', 'priority': -650, 'uuid': UUIDS[0], 'rules': [
        {'action': 'accept', 'direction': 'in', 'priority': 100,
         'tcp': {'dstportstart': 5432, 'state': 'NEW', 'comment': 'pg'}},
        {'action': 'drop', 'direction': 'in', 'priority': 110,
         'tcp': {'match': False, 'srcipaddr': '192.0.2.0', 'srcipmask': 24}},
        {'action': 'accept', 'direction': 'out', 'priority': 120, 'statematch': False,
         'udp': {'dstportstart': 53, 'dstipaddr': '$DNS'}}]},
    {'name': 'hnf-y-web', 'chain': 'root', 'uuid': UUIDS[1], 'filterrefs': [{'filter': 'clean-traffic'}], 'rules': [
        {'action': 'accept', 'direction': 'in', 'priority': 100, 'tcp': {'dstportstart': 443}},
        {'filter': 'hnf-y-db', 'parameters': {'DNS': '192.0.2.53'}},
        {'action': 'accept', 'direction': 'inout', 'priority': 200, 'icmp': {}},
        {'action': 'drop', 'direction': 'inout', 'priority': 1000, 'all': {}}]},
]


def _playbook_binary():
    candidate = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return candidate if os.path.exists(candidate) else shutil.which('ansible-playbook')


def require_environment():
    ok, reason = can_create_namespaces()
    if not ok:
        pytest.skip(reason)
    missing = missing_tools('ebtables-save', 'iptables-save')
    if missing or not _playbook_binary():
        pytest.skip('missing tools: %s' % ', '.join(missing + ([] if _playbook_binary() else ['ansible-playbook'])))


def play(hv, tmp_path, tasks):
    playbook = tmp_path / 'play.yml'
    result_file = tmp_path / 'result.json'
    playbook.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks + [
        {'ansible.builtin.copy': {'content': '{{ out | to_json }}', 'dest': str(result_file)}}]}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING='False',
               ANSIBLE_NOCOLOR='1')
    proc = hv.host.run([_playbook_binary(), '-i', 'localhost,', '-c', 'local', str(playbook),
                        '-e', 'ansible_python_interpreter=%s' % sys.executable], check=False, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(result_file.read_text())


def save(hv):
    return dict((tool, '\n'.join(l for l in hv.host.run([tool]).stdout.splitlines() if not l.startswith('#')))
                for tool in ('ebtables-save', 'iptables-save', 'ip6tables-save'))


def yaml_task(state_dir):
    """nwfilter with the YAML form of ``item`` (a dict of the module's options)."""
    args = dict((key, '{{ item.%s | default(omit) }}' % key)
                for key in ('name', 'chain', 'priority', 'uuid', 'filterrefs', 'rules'))
    args['state_dir'] = state_dir
    return {'hypervisor.netfilter.nwfilter': args}


def define_and_bind(tmp_path, filters_task):
    state_dir = str(tmp_path / 'state')
    with ThrowawayHypervisor(guests=2) as hv:
        nics = [{'interface': g.port, 'mac': g.mac, 'filter': 'hnf-y-web', 'parameters': {'IP': g.ip}}
                for g in hv.guests]
        out = play(hv, tmp_path, [filters_task(state_dir), {
            'hypervisor.netfilter.guest_nic_filter': {'nics': nics, 'state_dir': state_dir,
                                                      'skip_missing_interfaces': False},
            'register': 'out'}])
        assert out['changed'] is True and out['added'] == [g.port for g in hv.guests]
        dump = save(hv)
        gathered = play(hv, tmp_path, [{'hypervisor.netfilter.nwfilter': {'state': 'gathered', 'state_dir': state_dir},
                                        'register': 'out'}])
        again = play(hv, tmp_path, [dict(yaml_task(state_dir), register='out', loop=[
            f['yaml'] for f in gathered['filters'] if f['name'].startswith('hnf-y-')])])
    stored = dict((name, (tmp_path / 'state' / 'filters' / (name + '.xml')).read_text())
                  for name in ('hnf-y-db', 'hnf-y-web'))
    return dump, stored, again


def test_yaml_and_xml_twins_store_the_same_files_and_give_the_same_kernel_dump(tmp_path):
    require_environment()
    (tmp_path / 'x').mkdir()
    (tmp_path / 'y').mkdir()
    xml_dump, xml_files, xml_again = define_and_bind(tmp_path / 'x', lambda state_dir: {
        'hypervisor.netfilter.nwfilter': {'xml': '{{ item }}', 'state_dir': state_dir}, 'loop': XML_FILTERS})
    yaml_dump, yaml_files, yaml_again = define_and_bind(
        tmp_path / 'y', lambda state_dir: dict(yaml_task(state_dir), loop=YAML_FILTERS))
    assert yaml_files == xml_files
    assert '--dport 5432' in xml_dump['iptables-save'] and '-d 192.0.2.53' in xml_dump['iptables-save']
    assert 'libvirt-I-vnet1' in xml_dump['ebtables-save']
    assert yaml_dump == xml_dump
    # gathered yaml passed back to the module: nothing to change
    for again in (xml_again, yaml_again):
        assert [r['changed'] for r in again['results']] == [False, False], again
