# -*- coding: utf-8 -*-
"""module_utils must run on the oldest managed-host Python ansible-core 2.19 supports (3.8).

The controller runs 3.11, so sanity only proves 3.11 here. This test looks for
older interpreters (pyenv installs under $PYENV_ROOT or ~/.pyenv, then python3.X
on PATH), and for each one that runs, imports every module_utils file and
compiles clean-traffic with it. A candidate that does not run (a pyenv shim for
a version that is not selected) is a skip with the reason, not a failure.
lxml is optional there: without it the parser must say that lxml is missing.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

import ansible.module_utils
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


def _pyenv_roots():
    """Where pyenv keeps its installs: $PYENV_ROOT (set by pyenv's shell init), else ~/.pyenv."""
    roots = []
    for root in (os.environ.get('PYENV_ROOT'), os.path.expanduser('~/.pyenv')):
        if root and os.path.realpath(root) not in [os.path.realpath(r) for r in roots]:
            roots.append(root)
    return roots


def _candidates(version):
    """Paths that may be a python<version>: pyenv installs (newest first), then PATH."""
    found = []
    for root in _pyenv_roots():
        found.extend(sorted(glob.glob(os.path.join(root, 'versions', '%s.*' % version, 'bin', 'python' + version)),
                            key=_patch_level, reverse=True))
    on_path = shutil.which('python' + version)
    if on_path:
        found.append(on_path)
    return found


def _patch_level(path):
    match = re.search(r'/versions/\d+\.\d+\.(\d+)/', path)
    return int(match.group(1)) if match else -1


def _probe(path, version):
    """None when ``path`` runs and is Python ``version``, else why not (a pyenv shim for a
    version that is not selected exits 127 with "pyenv: pythonX.Y: command not found")."""
    try:
        result = subprocess.run([path, '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                timeout=60, check=False)
    except OSError as exc:
        return '%s: %s' % (path, exc)
    except subprocess.TimeoutExpired:
        return '%s: no answer within 60 s' % path
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or ['exit status %d' % result.returncode])[0]
        return '%s does not run (exit %d): %s' % (path, result.returncode, first)
    if result.stdout.strip() != version:
        return '%s is Python %s, not %s' % (path, result.stdout.strip(), version)
    return None


def _interpreter(version):
    """``(path, None)`` for the first candidate that runs, else ``(None, reason)``."""
    reasons = []
    for path in _candidates(version):
        reason = _probe(path, version)
        if reason is None:
            return path, None
        reasons.append(reason)
    if not reasons:
        return None, 'no python%s interpreter on this machine (looked in %s and PATH)' % (
            version, ', '.join(os.path.join(r, 'versions') for r in _pyenv_roots()))
    return None, 'no working python%s: %s' % (version, '; '.join(reasons))


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
    interpreter, reason = _interpreter(version)
    if interpreter is None:
        pytest.skip(reason)
    root = tmp_path / 'collections'
    target = root / 'ansible_collections' / 'hypervisor'
    target.mkdir(parents=True)
    os.symlink(REPO, str(target / 'netfilter'))
    # AnsiballZ ships ansible.module_utils beside the collection's module_utils, under an
    # empty ansible/__init__.py: the same layout here, from the controller's ansible-core.
    (root / 'ansible').mkdir()
    (root / 'ansible' / '__init__.py').write_text('')
    os.symlink(os.path.dirname(ansible.module_utils.__file__), str(root / 'ansible' / 'module_utils'))
    pythons = [interpreter]
    if version == VERSIONS[0]:
        # The oldest one also runs the parser and compiler, with lxml in a venv of its own.
        with_lxml = _with_lxml(interpreter, tmp_path)
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
