# -*- coding: utf-8 -*-
"""examples/import_from_libvirt.yml against files a real libvirt wrote.

libvirt 9.0 (libvirt-oracle) defines a filter and binds two NICs (one with
nova's RASERVER=.../128, which libvirt drops); its filter files
(/etc/libvirt/nwfilter) and binding files (/run/libvirt/nwfilter-binding,
``<filterbindingstatus>``) are copied as libvirt laid them out into a
temporary directory. A fresh network namespace gets the same bridge and veths
and libvirt's rules (as if libvirt's driver had just been stopped). Then:

* guest_nic_filter refuses to bind a NIC while libvirt's binding file exists,
  and while libvirt's chains are there without ``takeover`` (coexistence);
* the example playbook imports the filters (UUIDs kept) and the bindings and
  takes the NICs over; the namespace's kernel dump then equals libvirt's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import oracle as harness

pytestmark = [pytest.mark.libvirt_oracle]

REPO = harness.REPO
PLAYBOOK = os.path.join(REPO, 'examples', 'import_from_libvirt.yml')
COLLECTIONS = os.path.join(REPO, '.ansible', 'collections')  # tests/conftest.py links the checkout there
WEB_UUID = '0b7b3a52-52f1-4f51-9a39-6c2f5a3f1e11'
WEB = """<filter name='hnf-imp-web' chain='root'>
  <uuid>%s</uuid>
  <filterref filter='clean-traffic'/>
  <rule action='accept' direction='in' priority='100'><tcp dstportstart='22'/></rule>
  <rule action='drop' direction='in' priority='1000'><all/></rule>
</filter>
""" % WEB_UUID
BINDINGS = (
    harness.Binding.make('imp0', '52:54:00:aa:bb:01', 'hnf-imp-web', {'IP': '10.0.0.5', 'RASERVER': 'fd00::1/128'}),
    harness.Binding.make('imp1', '52:54:00:aa:bb:02', 'clean-traffic', {'IP': ['10.0.0.6', '10.0.0.7']}),
)


def _playbook_binary():
    candidate = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return candidate if os.path.exists(candidate) else shutil.which('ansible-playbook')


def _libvirt_files(oracle, tmp_path):
    """Bind on libvirt (kept), copy its files as it laid them out, return (dump, libvirt root)."""
    work = tmp_path / 'in'
    (work / 'filters').mkdir(parents=True)
    (work / 'filters' / 'web.xml').write_text(WEB)
    argv = [harness.ORACLE, '--ns', oracle.ns, 'nwfilter', '--filter-dir', str(work / 'filters'), '--keep']
    for index, binding in enumerate(BINDINGS):
        path = work / ('b%d.xml' % index)
        path.write_text(binding.to_xml())
        argv += ['--binding', str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    state = os.path.join(harness.ORACLE_STATE, oracle.ns)
    root = tmp_path / 'libvirt-host'
    shutil.copytree(os.path.join(state, 'etc-libvirt', 'nwfilter'), str(root / 'etc' / 'libvirt' / 'nwfilter'))
    shutil.copytree(os.path.join(state, 'run-libvirt', 'nwfilter-binding'),
                    str(root / 'run' / 'libvirt' / 'nwfilter-binding'))
    subprocess.run([harness.ORACLE, '--ns', oracle.ns, 'reset'], capture_output=True, timeout=600, check=False)
    return done.stdout, root


def _restore_dump(ns, dump):
    """Load a libvirt-oracle dump into ``ns`` (libvirt's rules, left behind by a stopped driver)."""
    sections = {}
    current = None
    for line in dump.splitlines():
        if line.startswith('### '):
            current = line[4:].split()[0]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    for name, tool in (('ebtables-save', 'ebtables-restore'), ('iptables-save', 'iptables-restore'),
                       ('ip6tables-save', 'ip6tables-restore')):
        body = [line for line in sections.get(name, ()) if line.strip()]
        if not body:
            continue
        text = '\n'.join(body) + '\n'
        if tool == 'ebtables-restore' and 'COMMIT' not in text:
            text += 'COMMIT\n'
        done = subprocess.run(['ip', 'netns', 'exec', ns, tool], input=text, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, '%s: %s\n%s' % (tool, done.stderr, text)


def _play(ns, tmp_path, playbook, extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING='False',
               ANSIBLE_NOCOLOR='1')
    argv = ['ip', 'netns', 'exec', ns, _playbook_binary(), '-i', 'localhost,', '-c', 'local', str(playbook),
            '-e', json.dumps(dict(extra, ansible_python_interpreter=sys.executable))]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False, env=env, cwd=str(tmp_path))


def _bind_task(tmp_path, binding_file, state_dir, binding_dir, takeover):
    playbook = tmp_path / 'bind.yml'
    playbook.write_text(json.dumps([{'hosts': 'all', 'gather_facts': False, 'tasks': [
        {'hypervisor.netfilter.guest_nic_filter': {
            'binding_xml': "{{ lookup('ansible.builtin.file', '%s') }}" % binding_file, 'state_dir': state_dir,
            'libvirt_binding_dir': binding_dir, 'takeover': takeover, 'skip_missing_interfaces': False}}]}]))
    return playbook


def test_import_from_libvirt_gives_libvirts_rules_and_refuses_to_fight(libvirt_oracle, tmp_path):
    if not _playbook_binary():
        pytest.skip('ansible-playbook not found')
    libvirt_dump, root = _libvirt_files(libvirt_oracle, tmp_path)
    filter_dir = str(root / 'etc' / 'libvirt' / 'nwfilter')
    binding_dir = str(root / 'run' / 'libvirt' / 'nwfilter-binding')
    assert sorted(os.listdir(binding_dir)) == ['imp0.xml', 'imp1.xml']
    assert '<filterbindingstatus>' in (root / 'run' / 'libvirt' / 'nwfilter-binding' / 'imp0.xml').read_text()
    state_dir = str(tmp_path / 'state')
    handover = str(tmp_path / 'handover')
    ns = harness.unique_name('hnfimp')
    harness.make_netns(ns, [b.interface for b in BINDINGS])
    try:
        _restore_dump(ns, libvirt_dump)
        # Coexistence: libvirt's binding file is there -> refused, nothing changed
        kept = tmp_path / 'imp1-binding.xml'
        shutil.copy(os.path.join(binding_dir, 'imp1.xml'), str(kept))
        refused = _play(ns, tmp_path, _bind_task(tmp_path, kept, state_dir, binding_dir, True), {})
        assert refused.returncode != 0
        assert "interface imp1 is bound by libvirt's nwfilter driver (%s/imp1.xml exists)" % binding_dir \
            in refused.stdout, refused.stdout[-3000:]
        assert 'To hand interface imp1 over' in refused.stdout
        # Its chains without its file (driver stopped, file gone) -> refused unless takeover
        empty = str(tmp_path / 'no-bindings')
        os.mkdir(empty)
        refused = _play(ns, tmp_path, _bind_task(tmp_path, kept, state_dir, empty, False), {})
        assert refused.returncode != 0
        assert 'interface imp1 already has chains this collection did not make (libvirt-I-imp1' in refused.stdout, \
            refused.stdout[-3000:]
        assert 'takeover=true' in refused.stdout
        assert harness.dump_netns(ns) == libvirt_dump  # nothing changed by the refusals

        # The example playbook: import, hand over, take over
        done = _play(ns, tmp_path, PLAYBOOK, {
            'hnf_libvirt_nwfilter_dir': filter_dir, 'hnf_libvirt_binding_dir': binding_dir,
            'hnf_handover_dir': handover, 'hnf_state_dir': state_dir, 'hnf_libvirt_driver_stopped': True})
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        assert 'failed=0' in done.stdout
        ours = harness.dump_netns(ns)
    finally:
        harness.delete_netns(ns)
    priorities = harness.chain_priorities(harness.all_filter_texts({'hnf-imp-web': WEB}))
    expected = harness.normalise(libvirt_dump, priorities)
    assert harness.normalise(ours, priorities) == expected, harness.diff(expected, harness.normalise(ours, priorities))
    # filter UUIDs kept, bindings stored with their owners, libvirt's files handed over
    with open(os.path.join(state_dir, 'filters', 'hnf-imp-web.xml')) as handle:
        assert '<uuid>%s</uuid>' % WEB_UUID in handle.read()
    with open(os.path.join(filter_dir, 'clean-traffic.xml')) as handle:
        libvirt_uuid = handle.read().split('<uuid>')[1].split('</uuid>')[0]
    with open(os.path.join(state_dir, 'filters', 'clean-traffic.xml')) as handle:
        assert '<uuid>%s</uuid>' % libvirt_uuid in handle.read()
    with open(os.path.join(state_dir, 'bindings.json')) as handle:
        stored = json.load(handle)['bindings']
    assert [(b['interface'], b['filter']) for b in stored] == [('imp0', 'hnf-imp-web'), ('imp1', 'clean-traffic')]
    for entry in stored:  # the guests' names and UUIDs (libvirt's <owner>) are kept too
        with open(os.path.join(handover, entry['interface'] + '.xml')) as handle:
            owner = handle.read().split('<owner>')[1]
        assert '<uuid>%s</uuid>' % entry['owner']['uuid'] in owner and entry['owner']['name'] in owner
    assert os.listdir(binding_dir) == [] and sorted(os.listdir(handover)) == ['imp0.xml', 'imp1.xml']
