# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter store: names, atomic files, built-in overlay, cycles, users."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import filters as store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter

U1 = '11111111-1111-1111-1111-111111111111'
U2 = '22222222-2222-2222-2222-222222222222'


def make(name, refs=(), uuid=U1, rules=''):
    body = ''.join("<filterref filter='%s'/>" % r for r in refs)
    return parse_filter("<filter name='%s'><uuid>%s</uuid>%s%s</filter>" % (name, uuid, body, rules), source='t')


@pytest.mark.parametrize('name', ('clean-traffic', 'a', 'no_ip.spoofing:v2', 'nova-instance-instance-00000001-fa163e',
                                  'x+y', 'user@site', '9lives', 'A' * store.MAX_NAME_LENGTH))
def test_good_names(name):
    assert store.validate_filter_name(name) == name


@pytest.mark.parametrize('name,fragment', (
    ('', 'non-empty'), ('has space', "' '"), ('semi;colon', "';'"), ('$(reboot)', "'$'"), ('a/b', "'/'"),
    ('../etc/passwd', "'/'"), ('.hidden', "start with '.'"), ('-rf', "start with '.' or '-'"), ('..', "start"),
    ('x' * (store.MAX_NAME_LENGTH + 1), 'at most'), ('tab\there', "'\\t'"), ('nl\n', "'\\n'"), ('quote\'', "\"'\""),
    ('star*', "'*'"), ('ümlaut', "'ü'"),
))
def test_hostile_names(name, fragment):
    with pytest.raises(FilterError) as info:
        store.validate_filter_name(name)
    assert fragment in str(info.value)


def test_builtins_are_the_24_standard_filters():
    filters = store.load_filters('/nonexistent/state')
    assert len(filters) == 24 and set(filters) == set(BUILTIN_FILTERS)
    assert filters['clean-traffic'].uuid


def test_save_load_roundtrip_is_canonical_and_private(tmp_path):
    nwfilter = make('web', refs=('allow-dhcp',), rules="<rule action='accept' direction='in'><tcp dstportstart='80'/></rule>")
    text = store.save_filter(str(tmp_path), nwfilter)
    path = tmp_path / 'filters' / 'web.xml'
    assert path.read_text() == text
    assert text.startswith("<filter name='web' chain='root'>\n  <uuid>%s</uuid>\n" % U1)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path / 'filters') == ['web.xml']  # no temporary file left behind
    assert store.load_defined(str(tmp_path)) == {'web': parse_filter(text, source=str(path), strict=False)}
    loaded = store.load_filters(str(tmp_path))
    assert len(loaded) == 25 and loaded['web'].uuid == U1


def test_a_defined_filter_overrides_the_builtin(tmp_path):
    store.save_filter(str(tmp_path), make('clean-traffic', uuid=U2))
    filters = store.load_filters(str(tmp_path))
    assert len(filters) == 24 and filters['clean-traffic'].uuid == U2 and filters['clean-traffic'].entries == ()
    assert store.remove_filter(str(tmp_path), 'clean-traffic') is True
    assert store.load_filters(str(tmp_path))['clean-traffic'].uuid != U2
    assert store.remove_filter(str(tmp_path), 'clean-traffic') is False


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    store.save_filter(str(tmp_path), make('web'))
    before = (tmp_path / 'filters' / 'web.xml').read_text()

    def broken_replace(src, dst):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(store.os, 'replace', broken_replace)
    with pytest.raises(OSError):
        store.save_filter(str(tmp_path), make('web', uuid=U2))
    assert (tmp_path / 'filters' / 'web.xml').read_text() == before
    assert os.listdir(tmp_path / 'filters') == ['web.xml']


def test_store_refuses_a_filter_without_uuid(tmp_path):
    with pytest.raises(store.StoreError):
        store.save_filter(str(tmp_path), parse_filter("<filter name='x'/>", source='t'))


def test_a_renamed_file_is_reported(tmp_path):
    store.save_filter(str(tmp_path), make('web'))
    os.rename(tmp_path / 'filters' / 'web.xml', tmp_path / 'filters' / 'other.xml')
    with pytest.raises(store.StoreError) as info:
        store.load_defined(str(tmp_path))
    assert 'other.xml' in str(info.value) and "'web'" in str(info.value)


def test_temporary_files_are_ignored(tmp_path):
    store.save_filter(str(tmp_path), make('web'))
    (tmp_path / 'filters' / '.web.xml.abc.tmp').write_text('<garbage')
    assert list(store.load_defined(str(tmp_path))) == ['web']


def test_cycles_are_named():
    filters = {'a': make('a', refs=('b',)), 'b': make('b', refs=('c',)), 'c': make('c', refs=('x-undefined',))}
    assert store.find_cycle(make('c', refs=('a',)), filters) == ['c', 'a', 'b', 'c']
    assert store.find_cycle(make('self', refs=('self',)), filters) == ['self', 'self']
    assert store.find_cycle(make('c', refs=('missing', 'b')), filters) == ['c', 'b', 'c']
    assert store.find_cycle(make('d', refs=('a', 'a')), filters) is None  # a DAG, shared children are fine
    assert store.find_cycle(make('c', refs=('x-undefined',)), filters) is None
    with pytest.raises(FilterError) as info:
        store.check_no_cycle(make('c', refs=('a',)), filters)
    assert 'c -> a -> b -> c' in str(info.value) and "filter 'c'" in str(info.value)


def test_builtins_are_a_dag():
    filters = store.load_filters('/nonexistent')
    for nwfilter in filters.values():
        store.check_no_cycle(nwfilter, filters)


def test_users_of_filters_and_bindings(tmp_path):
    filters = store.load_filters(str(tmp_path))
    bindings = (('vnet0', 'clean-traffic'), ('vnet1', 'allow-arp'), ('vnet2', 'no-arp-spoofing'))
    users = store.users_of('no-arp-mac-spoofing', str(tmp_path), filters, bindings)
    assert users.filters == ('no-arp-spoofing',)
    assert users.bindings == ('vnet0', 'vnet2')  # clean-traffic reaches it through no-arp-spoofing
    assert "'no-arp-spoofing'" in users.describe() and "'vnet0', 'vnet2'" in users.describe()
    assert not store.users_of('allow-ipv6', str(tmp_path), filters, bindings)


def test_stored_bindings_come_from_the_binding_store(tmp_path):
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
    assert store.stored_bindings(str(tmp_path)) == ()
    binding_store.save_binding(str(tmp_path), binding_store.make_binding('vnet3', '52:54:00:00:00:01', 'clean-traffic'))
    assert store.stored_bindings(str(tmp_path)) == (('vnet3', 'clean-traffic'),)
    users = store.users_of('no-mac-spoofing', str(tmp_path))
    assert users.bindings == ('vnet3',) and users.filters == ('clean-traffic', 'clean-traffic-gateway')


def test_reference_closure_tolerates_undefined_filters():
    filters = {'a': make('a', refs=('b', 'zz')), 'b': make('b', refs=('a',))}
    assert store.reference_closure('a', filters) == {'a', 'b', 'zz'}
