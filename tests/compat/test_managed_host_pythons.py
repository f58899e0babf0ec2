# -*- coding: utf-8 -*-
"""module_utils must run on the oldest managed-host Python ansible-core 2.19 supports (3.8).

The controller runs 3.11, so sanity only proves 3.11 here. This test looks for
older interpreters (pyenv installs or python3.X on PATH), and for each one it
finds, imports every module_utils file and compiles clean-traffic with it.
lxml is optional there: without it the parser must say that lxml is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
VERSIONS = ('3.8', '3.9', '3.10')

PROBE = r'''
import glob, importlib, os, sys
sys.path.insert(0, sys.argv[1])
base = 'ansible_collections.hypervisor.netfilter.plugins.module_utils.'
top = os.path.join(sys.argv[1], 'ansible_collections/hypervisor/netfilter/plugins/module_utils')
for path in sorted(glob.glob(os.path.join(top, '**', '*.py'), recursive=True)):
    importlib.import_module(base + os.path.relpath(path, top)[:-3].replace(os.sep, '.'))
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import parse as nwfilter_parse
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
if not nwfilter_parse.HAS_LXML:
    try:
        nwfilter_parse.parse_filter(BUILTIN_FILTERS['allow-arp'])
    except FilterError as exc:
        assert 'lxml' in str(exc)
        print('ok-without-lxml')
        sys.exit(0)
    sys.exit('parser did not report missing lxml')
filters = dict((n, nwfilter_parse.parse_filter(x)) for n, x in BUILTIN_FILTERS.items())
ruleset = compile_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.1'}, filters)
sys.stdout.write(ruleset.render('eb'))
'''


def _interpreters():
    found = []
    for version in VERSIONS:
        candidates = sorted(glob.glob(os.path.expanduser('~/.pyenv/versions/%s.*/bin/python%s' % (version, version))))
        on_path = shutil.which('python' + version)
        path = candidates[-1] if candidates else on_path
        if path:
            found.append((version, path))
    return found


def _expected_clean_traffic():
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
    filters = dict((n, parse_filter(x)) for n, x in BUILTIN_FILTERS.items())
    return compile_binding('vnet0', '52:54:00:00:00:01', 'clean-traffic', {'IP': '10.0.0.1'}, filters).render('eb')


def _with_lxml(python, tmp_path):
    """A venv of ``python`` with lxml from the package index, or None if that cannot be had."""
    venv = tmp_path / 'venv'
    made = subprocess.run([python, '-m', 'venv', str(venv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=120, check=False)
    if made.returncode != 0:
        return None
    pip = subprocess.run([str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '-q', 'lxml'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300, check=False)
    return str(venv / 'bin' / 'python') if pip.returncode == 0 else None


@pytest.mark.parametrize('version', VERSIONS)
def test_module_utils_run_on_older_pythons(version, tmp_path):
    interpreters = dict(_interpreters())
    if version not in interpreters:
        pytest.skip('no python%s interpreter on this machine' % version)
    root = tmp_path / 'collections'
    target = root / 'ansible_collections' / 'hypervisor'
    target.mkdir(parents=True)
    os.symlink(REPO, str(target / 'netfilter'))
    pythons = [interpreters[version]]
    if version == VERSIONS[0]:
        # The oldest one also runs the parser and compiler, with lxml in a venv of its own.
        with_lxml = _with_lxml(interpreters[version], tmp_path)
        if with_lxml:
            pythons.append(with_lxml)
    outputs = []
    for python in pythons:
        result = subprocess.run([python, '-c', PROBE, str(root)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, universal_newlines=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    for output in outputs:
        assert output in ('ok-without-lxml\n', _expected_clean_traffic())
