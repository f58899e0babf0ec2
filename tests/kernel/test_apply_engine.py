# -*- coding: utf-8 -*-
"""The xtables apply engine against the real tools and kernel, in throwaway namespaces.

* every rule shape of libvirt's nwfilter test vectors and of the built-in
  filters round-trips: apply, then a fresh engine (no cache: the scratch
  namespace canonicalises) and a cached engine both see no change and write
  nothing; tearing down leaves the dump exactly as before;
* drift (flush, deleted hook, edited rule) is found by check mode with a diff
  and repaired; admin rules keep their bytes and order;
* a restore the kernel rejects leaves the previous ruleset and reports the
  tool's error text; iptables-legacy works the same as iptables-nft.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.nwfilter import compile_binding
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._store.filters import builtin_filters
from ansible_collections.hypervisor.netfilter.plugins.module_utils._ruleset.model import (
    Chain, Hook, Ruleset, Table, merge_rulesets)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_engine import XtablesEngine
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NWFILTER_OWNERSHIP
from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_tools import detect_backend
from ansible_collections.hypervisor.netfilter.plugins.module_utils._host.commands import CommandError
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns
from ansible_collections.hypervisor.netfilter.tests.lib.xtables_ns import (
    NsRunner, clean_traffic, dump, dumps, require_kernel, sync)


@pytest.fixture
def ns():
    require_kernel()
    with Netns(tag='ap') as namespace:
        yield namespace


def engine_in(ns, state_dir=None, backend='nft'):
    return XtablesEngine(NWFILTER_OWNERSHIP, backend=backend, ebtables_backend='nft', state_dir=state_dir,
                         runner=NsRunner(ns))


def content(family_dumps):
    """Rules and user chains only: nft keeps a table with its empty built-in chains once
    anything created it, which is not state of ours."""
    out = {}
    for family, text in family_dumps.items():
        out[family] = [line for line in text.splitlines()
                       if line.startswith('-A ') or (line.startswith(':') and line[1:].split()[0] not in
                                                     ('INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING'))]
    return out


ADMIN = {
    'ip': ('*filter\n:ADMIN - [0:0]\n-A INPUT -i lo -j ACCEPT\n-A FORWARD -m comment --comment "admin first" '
           '-j ADMIN\n-A FORWARD -p tcp --dport 25 -j DROP\n-A ADMIN -s 198.51.100.0/24 -j RETURN\nCOMMIT\n'),
    'ip6': '*filter\n-A FORWARD -p tcp --dport 25 -j DROP\nCOMMIT\n',
    'eb': '*nat\n:ADMIN-EB ACCEPT\n-A PREROUTING -i admin0 -j ADMIN-EB\n-A ADMIN-EB -p IPv4 -j ACCEPT\n',
}


def load_admin_rules(ns, backend='nft'):
    for family, text in ADMIN.items():
        tool = {'eb': 'ebtables-nft-restore', 'ip': 'iptables-%s-restore' % backend,
                'ip6': 'ip6tables-%s-restore' % backend}[family]
        ns.run([tool, '--noflush'], input_text=text)


def _vector_rulesets():
    from ansible_collections.hypervisor.netfilter.tests.conformance.libvirt_vectors import (
        HARNESS_INTERFACE, HARNESS_VARIABLES, NWFILTER_VECTORS, reference_missing_reason, vector_names)
    reason = reference_missing_reason()
    if reason:
        print('vector round-trips skipped: %s' % reason)
        pytest.skip(reason)
    out = []
    for name in vector_names():
        with open(os.path.join(NWFILTER_VECTORS, name + '.xml')) as handle:
            flt = parse_filter(handle.read(), source=name + '.xml', strict=False)
        out.append((name, compile_binding(HARNESS_INTERFACE, None, flt.name, HARNESS_VARIABLES, {flt.name: flt})))
    return out


BUILTIN_PARAMETERS = {'IP': ['192.0.2.10', '192.0.2.11'], 'IPV6': '2001:db8::10', 'DHCPSERVER': '192.0.2.1',
                      'CTRL_IP_LEARNING': 'none', 'DHCPSERVER_IPV6': '2001:db8::1', 'GATEWAY_MAC': '52:54:00:ff:ff:fe'}


def _builtin_rulesets():
    filters = builtin_filters()
    out = []
    for index, name in enumerate(sorted(filters)):
        interface = 'vnet%d' % index
        parameters = dict(BUILTIN_PARAMETERS)
        if 'v6' in name:
            parameters['DHCPSERVER'] = '2001:db8::1'
        out.append((name, compile_binding(interface, '52:54:00:12:34:%02x' % index, name, parameters, filters)))
    return out


def _roundtrip(ns, tmp_path, cases, backend):
    """Apply each case, check both no-op paths and the teardown; returns failures."""
    if 'tck_test' not in ns.run(['ipset', 'list', '-n']).stdout:
        ns.run(['ipset', 'create', 'tck_test', 'hash:ip'])
    pristine = content(dumps(ns, backend))
    failures = []
    for index, (name, ruleset) in enumerate(cases):
        state_dir = str(tmp_path / ('s%d' % index))
        try:
            first = sync(engine_in(ns, state_dir, backend), ruleset)
            if not first.changed:
                failures.append('%s: first apply saw no change' % name)
            fresh = engine_in(ns, None, backend)  # no cache: canonicalised in a scratch namespace
            second = sync(fresh, ruleset)
            if second.changed or second.writes:
                failures.append('%s: no-op (scratch) saw changes:\n%s' % (name, second.diff))
            cached = engine_in(ns, state_dir, backend)  # cache learnt after the first apply
            third = sync(cached, ruleset)
            kinds = set(kind for kind, _argv in cached.runner.calls)
            if third.changed or kinds != {'read'}:
                failures.append('%s: no-op (cache) changed=%s calls=%s' % (name, third.changed, sorted(kinds)))
        except CommandError as exc:
            failures.append('%s: %s' % (name, exc))
        sync(engine_in(ns, None, backend), Ruleset())
        after = content(dumps(ns, backend))
        if after != pristine:
            failures.append('%s: teardown left\n%s' % (name, after))
            ns.run(['iptables-%s' % backend, '-F'])
    return failures


@pytest.mark.parametrize('backend', ['nft', 'legacy'])
def test_libvirt_vector_shapes_roundtrip(ns, tmp_path, backend, capsys):
    cases = _vector_rulesets()
    failures = _roundtrip(ns, tmp_path, cases, backend)
    with capsys.disabled():
        print('\nengine round-trip (%s): %d/%d libvirt vector rule sets' % (
            backend, len(cases) - len(failures), len(cases)))
    assert not failures, '\n'.join(failures)


def test_builtin_filters_roundtrip(ns, tmp_path, capsys):
    cases = _builtin_rulesets()
    # All built-ins on one host at once as well: shared chains with many NICs.
    cases.append(('all built-ins together', merge_rulesets([r for n, r in cases])))
    failures = _roundtrip(ns, tmp_path, cases, 'nft')
    with capsys.disabled():
        print('\nengine round-trip: %d/%d built-in filter rule sets' % (len(cases) - len(failures), len(cases)))
    assert not failures, '\n'.join(failures)


def _with_iptables(name):
    """A NIC with iptables and ip6tables rules (shared libvirt-in/out chains, FORWARD/INPUT hooks)."""
    xml = ("<filter name='t-web'><rule action='accept' direction='in'><tcp dstportstart='80'/></rule>"
           "<rule action='accept' direction='out'><all-ipv6/></rule>"
           "<rule action='drop' direction='inout'><all/></rule></filter>")
    flt = parse_filter(xml)
    return compile_binding(name, '52:54:00:00:01:01', 't-web', {}, {'t-web': flt})


def test_admin_rules_untouched_drift_check_and_repair(ns, tmp_path):
    load_admin_rules(ns)
    admin_before = dumps(ns)
    desired = clean_traffic(3).merge(_with_iptables('vnet9'))
    state_dir = str(tmp_path)
    sync(engine_in(ns, state_dir), desired)
    applied = dumps(ns)
    forward = [l for l in applied['ip'].splitlines() if l.startswith('-A FORWARD')]
    assert forward == ['-A FORWARD -j libvirt-in', '-A FORWARD -j libvirt-out', '-A FORWARD -j libvirt-in-post',
                       '-A FORWARD -m comment --comment "admin first" -j ADMIN',
                       '-A FORWARD -p tcp -m tcp --dport 25 -j DROP']

    def admin_lines(text):
        return [l for l in text.splitlines() if 'ADMIN' in l or 'admin' in l or '--dport 25' in l or '-i lo' in l]
    for family in admin_before:
        assert admin_lines(applied[family]) == admin_lines(admin_before[family])

    # Drift: someone flushes iptables' FORWARD and one NIC's ebtables chain and edits another.
    ns.run(['iptables-nft', '-F', 'FORWARD'])
    ns.run(['ebtables-nft', '-t', 'nat', '-F', 'I-vnet1-mac'])
    ns.run(['ebtables-nft', '-t', 'nat', '-A', 'I-vnet2-ipv4-ip', '-j', 'ACCEPT'])
    drifted = dumps(ns)
    check = sync(engine_in(ns, state_dir), desired, check_mode=True)
    assert check.changed and check.writes == ()
    assert dumps(ns) == drifted
    text = ''.join(d['before'] + d['after'] for d in check.diff)
    assert '-A I-vnet1-mac -s 52:54:00:00:00:01 -j RETURN' in text
    assert '-I FORWARD 1 -j libvirt-in' in text
    eb = check.plan.family('eb')
    assert sorted(c.chain for c in eb.chain_changes) == ['I-vnet1-mac', 'I-vnet2-ipv4-ip']

    repair = sync(engine_in(ns, state_dir), desired)
    assert repair.changed
    after = dumps(ns)
    assert after['eb'] == applied['eb']
    # The admin's FORWARD rules were flushed by the admin; ours are back at 1..3.
    assert [l for l in after['ip'].splitlines() if l.startswith('-A FORWARD')] == forward[:3]
    assert not sync(engine_in(ns, state_dir), desired).changed

    # Unbind everything: nothing of ours is left, the admin's rules are as they were.
    sync(engine_in(ns, state_dir), Ruleset())
    final = dumps(ns)
    for family in final:
        assert 'libvirt' not in final[family] and 'vnet' not in final[family]
    assert final['eb'] == admin_before['eb']
    assert final['ip6'] == admin_before['ip6']


def test_one_nic_change_among_many_touches_only_its_chains(ns, tmp_path):
    state_dir = str(tmp_path)
    sync(engine_in(ns, state_dir), clean_traffic(20))
    before = dump(ns, 'eb')
    changed = merge_rulesets([clean_traffic(7), clean_traffic(1, first=7, ip_base='192.0.3.'),
                              clean_traffic(12, first=8)])
    result = sync(engine_in(ns, state_dir), changed)
    eb = result.plan.family('eb')
    assert [c.chain for c in eb.chain_changes] == ['I-vnet7-ipv4-ip', 'I-vnet7-arp-ip']
    assert eb.hook_changes == ()
    after = dump(ns, 'eb')
    differing = list(set(before.splitlines()) ^ set(after.splitlines()))
    assert sorted(differing) == sorted([
        '-A I-vnet7-arp-ip -p ARP --arp-ip-src 192.0.2.17 -j RETURN',
        '-A I-vnet7-arp-ip -p ARP --arp-ip-src 192.0.3.17 -j RETURN',
        '-A I-vnet7-ipv4-ip -p IPv4 --ip-src 192.0.2.17 -j RETURN',
        '-A I-vnet7-ipv4-ip -p IPv4 --ip-src 192.0.3.17 -j RETURN'])


def test_rejected_restore_leaves_previous_ruleset(ns, tmp_path):
    state_dir = str(tmp_path)
    good = clean_traffic(2)
    sync(engine_in(ns, state_dir), good)
    before = dumps(ns)
    # Same chains, one rule the kernel rejects (a jump to a chain that does not exist).
    bad_table = good.table('eb', 'nat')
    chains = tuple(Chain(c.name, c.rules + ((('-j', 'NO-SUCH-CHAIN'),) if c.name == 'I-vnet1-mac' else ()))
                   for c in bad_table.chains)
    bad = Ruleset((Table('eb', 'nat', chains, bad_table.hooks),))
    with pytest.raises(CommandError) as info:
        sync(engine_in(ns, state_dir), bad)
    assert 'NO-SUCH-CHAIN' in str(info.value)
    assert dumps(ns) == before
    # A new chain (no scratch pass: it does not exist live) rejected by the live restore.
    extra = Ruleset((Table('ip', 'filter', (Chain('FI-vnet5', (('-p', 'tcp', '--dport', '99999', '-j', 'DROP'),)),
                                            Chain('libvirt-in', (('-j', 'FI-vnet5'),))),
                           (Hook('FORWARD', ('-j', 'libvirt-in'), 1),)),))
    with pytest.raises(CommandError) as info:
        sync(engine_in(ns, state_dir), good.merge(extra))
    assert '99999' in str(info.value) or 'port' in info.value.stderr.lower()
    assert info.value.stderr
    assert dumps(ns) == before


def test_legacy_backend_and_autodetect(ns, tmp_path):
    desired = _with_iptables('vnet3')
    engine = engine_in(ns, str(tmp_path), backend='legacy')
    assert engine.backends['ip'].name == 'legacy' and engine.backends['eb'].name == 'nft'
    assert sync(engine, desired).changed
    legacy = ns.run(['iptables-legacy-save']).stdout
    assert '-A FI-vnet3 -p tcp -m tcp --sport 80' in legacy or 'FI-vnet3' in legacy
    assert 'FI-vnet3' not in ns.run(['iptables-nft-save']).stdout
    assert not sync(engine_in(ns, str(tmp_path), backend='legacy'), desired).changed
    sync(engine_in(ns, str(tmp_path), backend='legacy'), Ruleset())
    assert 'vnet3' not in ns.run(['iptables-legacy-save']).stdout
    assert detect_backend('iptables') in ('nft', 'legacy')


def test_ebtables_legacy_unsupported_is_reported(ns, tmp_path):
    engine = XtablesEngine(NWFILTER_OWNERSHIP, backend='nft', ebtables_backend='legacy',
                           state_dir=str(tmp_path), runner=NsRunner(ns))
    probe = ns.run(['ebtables-legacy', '-t', 'nat', '-L'], check=False)
    if probe.returncode == 0:
        pytest.skip('this kernel supports ebtables-legacy nat')
    for check_mode in (True, False):
        with pytest.raises(CommandError) as info:
            sync(engine, clean_traffic(1), check_mode=check_mode)
        assert "doesn't support the ebtables 'nat' table" in str(info.value)
        assert 'use ebtables_backend: nft' in str(info.value)
        assert engine.runner.writes() == []


def test_coexists_with_virt_network_owner(ns, tmp_path):
    """nwfilter and virt_network both hook FORWARD at positions 1..3: neither undoes the other."""
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile.network_iptables import private_ruleset
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._backends.xtables_ownership import NETWORK_OWNERSHIP
    network = XtablesEngine(NETWORK_OWNERSHIP, backend='nft', state_dir=str(tmp_path / 'net'),
                            runner=NsRunner(ns))
    nwfilter = _with_iptables('vnet4')
    sync(network, private_ruleset())
    sync(engine_in(ns, str(tmp_path / 'nwf')), nwfilter)
    forward = [l for l in dump(ns, 'ip').splitlines() if l.startswith('-A FORWARD')]
    assert forward == ['-A FORWARD -j libvirt-in', '-A FORWARD -j libvirt-out', '-A FORWARD -j libvirt-in-post',
                       '-A FORWARD -j LIBVIRT_FWX', '-A FORWARD -j LIBVIRT_FWI', '-A FORWARD -j LIBVIRT_FWO']
    before = dumps(ns)
    assert not sync(XtablesEngine(NETWORK_OWNERSHIP, backend='nft', state_dir=str(tmp_path / 'net'),
                                  runner=NsRunner(ns)), private_ruleset()).changed
    assert not sync(engine_in(ns, str(tmp_path / 'nwf')), nwfilter).changed
    assert dumps(ns) == before
    # Removing all guest filters leaves the network's chains and jumps alone.
    sync(engine_in(ns, str(tmp_path / 'nwf')), Ruleset())
    forward = [l for l in dump(ns, 'ip').splitlines() if l.startswith('-A FORWARD')]
    assert forward == ['-A FORWARD -j LIBVIRT_FWX', '-A FORWARD -j LIBVIRT_FWI', '-A FORWARD -j LIBVIRT_FWO']


def test_ebtables_chain_policy_drift_repaired(ns):
    """Our ebtables chains have policy ACCEPT (like libvirt's -N); another policy is drift."""
    sync(engine_in(ns), clean_traffic(1))
    ns.run(['ebtables-nft', '-t', 'nat', '-P', 'I-vnet0-mac', 'RETURN'])
    result = sync(engine_in(ns), clean_traffic(1))
    assert result.changed and [c.chain for c in result.plan.family('eb').chain_changes] == ['I-vnet0-mac']
    assert ':I-vnet0-mac ACCEPT' in dump(ns, 'eb')
    assert not sync(engine_in(ns), clean_traffic(1)).changed
