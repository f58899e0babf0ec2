# -*- coding: utf-8 -*-
"""virt_network conformance against libvirt 11.3's networkxml2firewalldata vectors.

Two layers:

1. Command streams: for every ``N.xml`` the commands our compilers say libvirt
   issues, rendered the way libvirt's dry run renders them, must equal
   ``N-linux.iptables`` / ``N-linux.nftables`` byte for byte (and the one-time
   private-chain setup must equal ``base.iptables`` / ``base.nftables``).
2. Kernel dumps (root only): the ruleset we *load* (one ``iptables-restore
   --noflush`` per family / one ``nft -f`` script) and the result of running
   libvirt's own vector commands one by one are loaded into two fresh network
   namespaces; the ``*-save`` / ``nft list ruleset`` dumps must be equal.

The vectors are read from ../shared/reference (never copied); without them
the tests skip and say why.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import uuid

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib import libvirt_commands as network_commands
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import network_iptables as network_compile_iptables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import network_nftables as network_compile_nftables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network import parse as network_parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
VECTORS = os.path.join(os.path.dirname(REPO), 'shared', 'reference', 'libvirt-11.3.0', 'tests',
                       'networkxml2firewalldata')
HAVE_VECTORS = os.path.isdir(VECTORS)
SKIP_REASON = 'libvirt reference vectors not found at %s (../shared is absent)' % VECTORS

CASES = sorted(f[:-4] for f in os.listdir(VECTORS) if f.endswith('.xml')) if HAVE_VECTORS else []
BACKENDS = ('iptables', 'nftables')


def _spec(case):
    with open(os.path.join(VECTORS, case + '.xml'), 'rb') as handle:
        return network_parse.spec_from_xml(handle.read())


def _expected(case, backend):
    with open(os.path.join(VECTORS, '%s-linux.%s' % (case, backend))) as handle:
        return handle.read()


def _ours(case, backend):
    spec = _spec(case)
    if backend == 'iptables':
        argvs = [c.argv() for c in network_compile_iptables.network_commands(spec)]
    else:
        argvs = network_compile_nftables.network_commands(spec)
    return network_commands.render_commands(argvs)


def _base(backend):
    if backend == 'iptables':
        return network_commands.render_commands(network_compile_iptables.private_chain_commands())
    return network_commands.render_commands(network_compile_nftables.private_table_commands())


def _all_results():
    results = []
    for backend in BACKENDS:
        for case in CASES:
            results.append(('%s-linux.%s' % (case, backend), _ours(case, backend) == _expected(case, backend)))
        with open(os.path.join(VECTORS, 'base.' + backend)) as handle:
            results.append(('base.' + backend, _base(backend) == handle.read()))
    return results


@pytest.mark.skipif(not HAVE_VECTORS, reason=SKIP_REASON)
def test_conformance_summary(capsys):
    results = _all_results()
    identical = sum(1 for _name, same in results if same)
    with capsys.disabled():
        print('\nnetwork conformance: %d/%d identical' % (identical, len(results)))
        for backend in BACKENDS:
            names = [n for n, _s in results if n.endswith('.' + backend)]
            same = sum(1 for n, s in results if s and n.endswith('.' + backend))
            print('  %s: %d/%d' % (backend, same, len(names)))
        for name, same in results:
            if not same:
                print('  MISMATCH: %s' % name)
    assert len(results) == 2 * (len(CASES) + 1)
    assert identical == len(results)


@pytest.mark.skipif(not HAVE_VECTORS, reason=SKIP_REASON)
@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('case', CASES or ['none'])
def test_command_stream_identical(case, backend):
    assert _ours(case, backend) == _expected(case, backend)


# --------------------------------------------------------------------------- kernel layer

def _kernel_skip_reason():
    if not HAVE_VECTORS:
        return SKIP_REASON
    if os.geteuid() != 0:
        return 'kernel conformance needs root (network namespaces)'
    for tool in ('ip', 'iptables-restore', 'iptables-save', 'ip6tables-save', 'nft'):
        if not shutil.which(tool):
            return 'kernel conformance needs %s' % tool
    return None


KERNEL_SKIP = _kernel_skip_reason()


class Netns:
    def __init__(self, tag):
        self.name = 'hnf-%d-%s-%s' % (os.getpid(), tag, uuid.uuid4().hex[:6])

    def __enter__(self):
        subprocess.run(['ip', 'netns', 'add', self.name], check=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(['ip', 'netns', 'delete', self.name], check=False)

    def run(self, argv, stdin=None, check=True):
        proc = subprocess.run(['ip', 'netns', 'exec', self.name] + list(argv), input=stdin,
                              capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise AssertionError('%s failed in %s: %s' % (argv, self.name, proc.stderr))
        return proc


def _parse_vector(text):
    """libvirt's rendered commands back into argv lists."""
    joined = text.replace(' \\\n', ' ')
    return [shlex.split(line) for line in joined.splitlines() if line.strip()]


_COUNTERS = re.compile(r'\[\d+:\d+\]|counter packets \d+ bytes \d+|# handle \d+')


def _dump_xtables(ns):
    out = []
    for tool in ('iptables-save', 'ip6tables-save'):
        text = ns.run([tool]).stdout
        out.append('### ' + tool)
        out.extend(_COUNTERS.sub('', line).rstrip() for line in text.splitlines() if not line.startswith('#'))
    return '\n'.join(out)


def _dump_nft(ns):
    text = ns.run(['nft', 'list', 'ruleset']).stdout
    return '\n'.join(_COUNTERS.sub('counter', line).rstrip() for line in text.splitlines())


def _add_links(ns, spec):
    ns.run(['ip', 'link', 'add', spec.bridge, 'type', 'bridge'])
    if spec.forward_dev:
        ns.run(['ip', 'link', 'add', spec.forward_dev, 'type', 'veth', 'peer', 'name', 'fwdpeer0'])


def _iptables_dumps(case):
    spec = _spec(case)
    ruleset = network_compile_iptables.compile_ruleset([spec])
    with Netns('ours') as ours, Netns('lv') as libvirt:
        for family, tool in (('ip', 'iptables-restore'), ('ip6', 'ip6tables-restore')):
            ours.run([tool, '-w', '--noflush'], stdin=ruleset.render(family))
        with open(os.path.join(VECTORS, 'base.iptables')) as handle:
            base = _parse_vector(handle.read())
        for argv in base + _parse_vector(_expected(case, 'iptables')):
            if '--list-rules' in argv:
                continue
            libvirt.run(argv)
        return _dump_xtables(ours), _dump_xtables(libvirt)


def _nftables_dumps(case):
    spec = _spec(case)
    script = network_compile_nftables.compile_ruleset([spec]).render()
    with Netns('ours') as ours, Netns('lv') as libvirt:
        _add_links(ours, spec)
        _add_links(libvirt, spec)
        ours.run(['nft', '-f', '-'], stdin=script)
        with open(os.path.join(VECTORS, 'base.nftables')) as handle:
            base = _parse_vector(handle.read())
        for argv in base + _parse_vector(_expected(case, 'nftables')):
            if argv[0] != 'nft' or argv[1] == 'list':
                continue  # tc is not part of the nft script; list is a query
            libvirt.run(argv)
        return _dump_nft(ours), _dump_nft(libvirt)


@pytest.mark.skipif(KERNEL_SKIP is not None, reason=KERNEL_SKIP or '')
@pytest.mark.parametrize('case', CASES or ['none'])
def test_iptables_kernel_dump_identical(case):
    ours_dump, libvirt_dump = _iptables_dumps(case)
    assert 'LIBVIRT_FWX' in ours_dump
    assert ours_dump == libvirt_dump


@pytest.mark.skipif(KERNEL_SKIP is not None, reason=KERNEL_SKIP or '')
@pytest.mark.parametrize('case', CASES or ['none'])
def test_nftables_kernel_dump_identical(case):
    ours_dump, libvirt_dump = _nftables_dumps(case)
    assert 'guest_cross' in ours_dump
    assert ours_dump == libvirt_dump


@pytest.mark.skipif(KERNEL_SKIP is not None, reason=KERNEL_SKIP or '')
def test_kernel_dump_summary(capsys):
    results = []
    for backend, dumps in (('iptables', _iptables_dumps), ('nftables', _nftables_dumps)):
        for case in CASES:
            ours_dump, libvirt_dump = dumps(case)
            results.append(('%s/%s' % (backend, case), ours_dump == libvirt_dump))
    identical = sum(1 for _name, same in results if same)
    with capsys.disabled():
        print('\nnetwork conformance (kernel dumps): %d/%d identical' % (identical, len(results)))
        for name, same in results:
            if not same:
                print('  MISMATCH: %s' % name)
    assert identical == len(results) == 2 * len(CASES)
