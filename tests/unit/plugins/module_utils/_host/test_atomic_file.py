# -*- coding: utf-8 -*-
import os
import stat

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.atomic_file import atomic_write


@pytest.mark.parametrize('durable', [True, False])
def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path, durable):
    path = str(tmp_path / 'sub' / 'state.json')
    atomic_write(path, 'old', durable=durable)
    atomic_write(path, 'new\n', mode=0o640, durable=durable)
    with open(path) as handle:
        assert handle.read() == 'new\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(str(tmp_path / 'sub')) == ['state.json']


def test_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / 'f')
    atomic_write(path, 'old')
    with pytest.raises(TypeError):
        atomic_write(path, b'not text')
    with open(path) as handle:
        assert handle.read() == 'old'
    assert os.listdir(str(tmp_path)) == ['f']
