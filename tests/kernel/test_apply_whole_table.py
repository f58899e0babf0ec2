# -*- coding: utf-8 -*-
"""The nft variants' "read the whole table" restore (``_ruleset.restore.WHOLE_TABLE_MIN_CHAINS``),
in throwaway namespaces: a big restore with one ``-L`` gives the same kernel
state as the plain restore, for a first apply, an incremental change, drift
repair and the removal of everything, with an admin's rules and chains in the
same table left as they were; for ebtables (``-L``) and iptables/ip6tables (``-S``).  The threshold is lowered so that small rule
sets take the path; bench_apply.py measures it at 1,000 NICs.
"""

from __future__ import annotations

from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends import xtables_diff
from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NWFILTER_OWNERSHIP
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import Ruleset, merge_rulesets
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns
from ansible_collections.hypervisor.netfilter.tests.lib.xtables_ns import (
    NsRunner, clean_traffic, dump, dumps, require_kernel, sync)

ADMIN_IP = ('*filter\n:ADMIN - [0:0]\n-A FORWARD -m comment --comment "admin first" -j ADMIN\n'
            '-A INPUT -i lo -j ACCEPT\n-A ADMIN -s 198.51.100.0/24 -j RETURN\nCOMMIT\n')
ADMIN_EB = '*nat\n:ADMIN-EB ACCEPT\n-A PREROUTING -i admin0 -j ADMIN-EB\n-A ADMIN-EB -p IPv4 -j ACCEPT\n'


def _engine(ns, state_dir):
    return XtablesEngine(NWFILTER_OWNERSHIP, backend='nft', ebtables_backend='nft', state_dir=state_dir,
                         runner=NsRunner(ns))


def _steps():
    """(name, desired ruleset, drift commands run before it) in order."""
    return [
        ('first apply', clean_traffic(6), ()),
        ('incremental', merge_rulesets([clean_traffic(2), clean_traffic(1, first=2, ip_base='192.0.3.'),
                                        clean_traffic(2, first=4), clean_traffic(3, first=9)]), ()),
        ('repair', merge_rulesets([clean_traffic(2), clean_traffic(1, first=2, ip_base='192.0.3.'),
                                   clean_traffic(2, first=4), clean_traffic(3, first=9)]),
         (['ebtables-nft', '-t', 'nat', '-F', 'PREROUTING'],
          ['ebtables-nft', '-t', 'nat', '-A', 'PREROUTING', '-i', 'admin0', '-j', 'ADMIN-EB'],
          ['ebtables-nft', '-t', 'nat', '-F', 'I-vnet1-mac'])),
        ('remove all', Ruleset(), ()),
    ]


def _run(tmp_path, tag, threshold, monkeypatch, admin, steps, families, read_state):
    """Apply ``steps`` ((desired, drift commands run before it), ...) over the ``admin`` rules
    ((restore tool, text)) with the given threshold: (kernel state after each step, restore texts)."""
    monkeypatch.setattr(xtables_diff, 'WHOLE_TABLE_MIN_CHAINS', threshold)
    states = []
    texts = []
    with Netns(tag=tag) as ns:
        ns.run([admin[0], '--noflush'], input_text=admin[1])
        state_dir = str(tmp_path / tag)
        for desired, drift in steps:
            for argv in drift:
                ns.run(argv)
            result = sync(_engine(ns, state_dir), desired)
            texts.append(''.join(result.plan.family(f).restore_text for f in families))
            states.append(read_state(ns))
            assert not sync(_engine(ns, state_dir), desired).changed
    return states, texts


def _run_eb(tmp_path, tag, threshold, monkeypatch):
    steps = [(desired, drift) for _name, desired, drift in _steps()]
    return _run(tmp_path, tag, threshold, monkeypatch, ('ebtables-nft-restore', ADMIN_EB), steps, ('eb',),
                lambda ns: dump(ns, 'eb'))


def test_whole_table_restore_gives_the_same_kernel_state(tmp_path, monkeypatch):
    require_kernel()
    plain, plain_texts = _run_eb(tmp_path, 'wtp', 10 ** 9, monkeypatch)
    whole, whole_texts = _run_eb(tmp_path, 'wtw', 3, monkeypatch)
    assert not any('\n-L\n' in text for text in plain_texts)
    # Every step but the repair of one chain and one hook declares >= 3 chains.
    assert ['\n-L\n' in text for text in whole_texts] == [True, True, False, True]
    for (name, _desired, _drift), before, after in zip(_steps(), plain, whole):
        assert after == before, name
    assert '-A PREROUTING -i admin0 -j ADMIN-EB' in whole[-1] and 'vnet' not in whole[-1]
    assert ':ADMIN-EB ACCEPT' in whole[-1] and '-A ADMIN-EB -p IPv4 -j ACCEPT' in whole[-1]


def test_threshold_not_reached_keeps_the_plain_restore(tmp_path):
    require_kernel()
    with Netns(tag='wts') as ns:
        result = sync(_engine(ns, str(tmp_path)), clean_traffic(1))
    assert '-L' not in result.plan.family('eb').restore_text.split('\n')


def _web(names):
    """NICs with iptables and ip6tables rules: per-NIC chains, shared libvirt-in/out, FORWARD/INPUT hooks."""
    xml = ("<filter name='t-web'><rule action='accept' direction='in'><tcp dstportstart='80'/></rule>"
           "<rule action='accept' direction='out'><all-ipv6/></rule>"
           "<rule action='drop' direction='inout'><all/></rule></filter>")
    flt = parse_filter(xml)
    return merge_rulesets([compile_binding(name, '52:54:00:00:01:%02x' % index, 't-web', {}, {'t-web': flt})
                           for index, name in enumerate(names)])


def _run_ip(tmp_path, tag, threshold, monkeypatch):
    steps = [(desired, ()) for desired in (_web(['vnet%d' % i for i in range(4)]),
                                           _web(['vnet0', 'vnet2', 'vnet5', 'vnet6']), Ruleset())]
    return _run(tmp_path, tag, threshold, monkeypatch, ('iptables-nft-restore', ADMIN_IP), steps, ('ip', 'ip6'), dumps)


def test_whole_table_restore_iptables(tmp_path, monkeypatch):
    require_kernel()
    plain, plain_texts = _run_ip(tmp_path, 'wtip', 10 ** 9, monkeypatch)
    whole, whole_texts = _run_ip(tmp_path, 'wtiw', 3, monkeypatch)
    assert not any('\n-S\n' in text for text in plain_texts)
    assert all('\n-S\n' in text for text in whole_texts)
    assert whole == plain
    assert '-A FORWARD -m comment --comment "admin first" -j ADMIN' in whole[-1]['ip']
    assert 'vnet' not in whole[-1]['ip'] and 'libvirt' not in whole[-1]['ip6']
