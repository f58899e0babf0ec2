# -*- coding: utf-8 -*-
"""The host after *our apply* equals the host after libvirt's nwfilter-binding-create.

For each example the libvirt oracle recorded (../shared/tools/libvirt-oracle-examples:
bindings, filters and the full ebtables/iptables/ip6tables dumps libvirt 9.0 left),
the same bindings go through nic_sync.sync_host -- the guest_nic_filter code
path: store, compile, read, diff, one restore per family -- in a fresh namespace,
and the resulting dumps are compared with libvirt's line for line.  Then a second
run must change nothing, and unbinding must leave empty tables.
"""

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._store import bindings as binding_store
from ansible_collections.hypervisor.netfilter.plugins.module_utils._reconcile import nics as nic_sync
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_binding, parse_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.filters import builtin_filters
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NWFILTER_OWNERSHIP
from ansible_collections.hypervisor.netfilter.tests.lib.xtables_ns import NsRunner, require_kernel
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(os.path.dirname(REPO), 'shared', 'tools', 'libvirt-oracle-examples')
CASES = {
    'clean-traffic-ip-mac': ['clean-traffic-vnet0.xml'],
    'clean-traffic-ip-list': ['clean-traffic-list-vnet1.xml'],
    'custom-tcp-udp-icmp-filterref': ['custom-vnet2.xml'],
    'three-nics': ['clean-traffic-vnet0.xml', 'clean-traffic-list-vnet1.xml', 'custom-vnet2.xml'],
}
SECTIONS = {'ebtables-save': 'eb', 'iptables-save': 'ip', 'ip6tables-save': 'ip6'}


def _read(*parts):
    with open(os.path.join(EXAMPLES, *parts), encoding='utf-8') as handle:
        return handle.read()


def expected_dumps(name):
    """{family: [lines]} from an oracle golden file (sections '### <tool>')."""
    out = {}
    current = None
    for line in _read('expected', name + '.txt').splitlines():
        if line.startswith('### '):
            current = SECTIONS.get(line[4:].strip())
            if current:
                out[current] = []
            continue
        if current and line.strip() and not line.startswith('#'):
            out[current].append(line)
    return out


def live_dumps(ns):
    out = {}
    for tool, family in SECTIONS.items():
        text = ns.run(['%s' % tool]).stdout
        # The recorded dumps leave out the [packets:bytes] counters of chain declarations.
        out[family] = [re.sub(r' \[\d+:\d+\]$', '', line) for line in text.splitlines()
                       if line.strip() and not line.startswith('#')]
    return out


@pytest.mark.parametrize('case', sorted(CASES))
def test_apply_matches_libvirt_dump(case, tmp_path):
    if not os.path.isdir(EXAMPLES):
        reason = 'libvirt oracle examples not found at %s (../shared is absent)' % EXAMPLES
        print(reason)
        pytest.skip(reason)
    require_kernel()
    filters = builtin_filters()
    for entry in sorted(os.listdir(os.path.join(EXAMPLES, 'filters'))):
        parsed = parse_filter(_read('filters', entry), source=entry)
        filters[parsed.name] = parsed
    bindings = [binding_store.from_filterbinding(parse_binding(_read('bindings', f), source=f))
                for f in CASES[case]]
    state_dir = str(tmp_path / 'state')
    with Netns(tag='df') as ns:
        def sync(**kwargs):
            engine = XtablesEngine(NWFILTER_OWNERSHIP, backend='nft', ebtables_backend='nft', state_dir=state_dir,
                                   runner=NsRunner(ns))
            return nic_sync.sync_host(state_dir, engine, filters=filters,
                                      interface_exists_fn=lambda name: True, **kwargs)

        first = sync(upserts=bindings)
        assert first.kernel_changed
        expected = expected_dumps(case)
        ours = live_dumps(ns)
        for family in ('eb', 'ip', 'ip6'):
            assert ours[family] == expected[family], '%s %s differs:\nours:\n%s\nlibvirt:\n%s' % (
                case, family, '\n'.join(ours[family]), '\n'.join(expected[family]))
        assert not sync(upserts=bindings).changed
        sync(upserts=[], exclusive=True)
        for family, lines in live_dumps(ns).items():
            assert not [l for l in lines if 'vnet' in l or 'libvirt' in l], family
