# -*- coding: utf-8 -*-
"""virt_network in real network namespaces: apply, idempotence, check mode, diff,
drift repair, several networks, admin rules, forwarding, bad input.

Every test works in throwaway namespaces (tests/lib/netns.py) deleted after it.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._compile import network_iptables as network_compile_iptables
from ansible_collections.hypervisor.netfilter.plugins.module_utils._network import parse as network_parse
from ansible_collections.hypervisor.netfilter.tests.lib.network_support import (
    dump_all, dump_nft, dump_xtables, require_kernel, rules_only, run_module, stored_networks, sysctl)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import Netns

BACKENDS = ('iptables', 'nftables')


@pytest.fixture
def ns():
    require_kernel()
    with Netns(tag='vn') as namespace:
        yield namespace


def _nat(state_dir, backend, name='default', bridge='virbr0', subnet='192.168.122', **extra):
    args = dict(name=name, bridge=bridge, forward_mode='nat', firewall_backend=backend, state_dir=str(state_dir),
                ipv4={'address': subnet + '.1/24', 'dhcp_range': {'start': subnet + '.2', 'end': subnet + '.254'}},
                ipv6=[{'address': 'fd00:%x::1' % (sum(map(ord, name)) % 65536), 'prefix': 64}])
    args.update(extra)
    return args


def _changed(args, **changes):
    out = dict(args)
    out.update(changes)
    return out


@pytest.mark.parametrize('backend', BACKENDS)
def test_check_apply_idempotent(ns, tmp_path, backend):
    before = dump_all(ns)
    args = _nat(tmp_path, backend)

    check = run_module(ns, check=True, **args)
    assert check['changed'] is True
    assert dump_all(ns) == before  # check mode touched nothing
    assert stored_networks(str(tmp_path)) == []
    assert 'virbr0' not in ns.ip('link', 'show').stdout

    first = run_module(ns, **args)
    assert first['changed'] is True and first['backend'] == backend
    assert first['changes'] == check['changes']
    assert first['diff'] == check['diff']
    applied = dump_all(ns)
    if backend == 'iptables':
        assert '-A LIBVIRT_FWX -i virbr0 -o virbr0 -j ACCEPT' in applied
        assert '-A LIBVIRT_PRT -s 192.168.122.0/24 ! -d 192.168.122.0/24 -j MASQUERADE' in applied
        assert 'libvirt_network' not in applied
    else:
        assert 'table ip libvirt_network' in applied and 'table ip6 libvirt_network' in applied
        assert 'LIBVIRT' not in applied
    assert stored_networks(str(tmp_path)) == ['default']
    assert sysctl(ns, 'net/ipv4/ip_forward') == '1'
    assert sysctl(ns, 'net/ipv6/conf/all/forwarding') == '1'
    assert '192.168.122.1/24' in ns.ip('addr', 'show', 'dev', 'virbr0').stdout

    second = run_module(ns, **args)
    assert second['changed'] is False and second['changes'] == []
    assert 'diff' not in second
    third = run_module(ns, check=True, **args)
    assert third['changed'] is False
    assert dump_all(ns) == applied


@pytest.mark.parametrize('backend', BACKENDS)
def test_drift_is_reported_in_check_mode_and_repaired(ns, tmp_path, backend):
    args = _nat(tmp_path, backend)
    run_module(ns, **args)
    applied = dump_all(ns)
    if backend == 'iptables':
        ns.run(['iptables', '-F', 'LIBVIRT_FWO'])
        ns.run(['iptables', '-t', 'nat', '-D', 'POSTROUTING', '-j', 'LIBVIRT_PRT'])
        missing = '-A LIBVIRT_FWO -s 192.168.122.0/24 -i virbr0 -j ACCEPT'
    else:
        ns.run(['nft', 'flush', 'chain', 'ip', 'libvirt_network', 'guest_output'])
        missing = 'ip saddr 192.168.122.0/24 iif "virbr0" counter accept'
    drifted = dump_all(ns)
    check = run_module(ns, check=True, **args)
    assert check['changed'] is True
    assert any(missing in d['after'] and missing not in d['before'] for d in check['diff'])
    assert dump_all(ns) == drifted
    repair = run_module(ns, **args)
    assert repair['changed'] is True
    assert dump_all(ns) == applied
    assert run_module(ns, **args)['changed'] is False


@pytest.mark.parametrize('backend', BACKENDS)
def test_external_full_flush_is_repaired(ns, tmp_path, backend):
    args = _nat(tmp_path, backend)
    run_module(ns, **args)
    applied = dump_all(ns)
    if backend == 'iptables':
        for tool in ('iptables', 'ip6tables'):
            for table in ('filter', 'nat', 'mangle'):
                ns.run([tool, '-t', table, '-F'])
                ns.run([tool, '-t', table, '-X'])
    else:
        ns.run(['nft', 'flush', 'ruleset'])
    assert run_module(ns, **args)['changed'] is True
    assert dump_all(ns) == applied


@pytest.mark.parametrize('backend', BACKENDS)
def test_admin_rules_stay_byte_identical(ns, tmp_path, backend):
    ns.run(['iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT'])
    ns.run(['iptables', '-A', 'FORWARD', '-s', '10.99.0.0/16', '-j', 'DROP'])
    ns.run(['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'eth9', '-j', 'MASQUERADE'])
    ns.run(['ip6tables', '-A', 'FORWARD', '-p', 'icmpv6', '-j', 'ACCEPT'])
    ns.run(['nft', 'add', 'table', 'inet', 'admin'])
    ns.run(['nft', 'add', 'chain', 'inet', 'admin', 'input', '{ type filter hook input priority 0; }'])
    ns.run(['nft', 'add', 'rule', 'inet', 'admin', 'input', 'tcp', 'dport', '2222', 'accept'])
    before = dump_all(ns)
    args = _nat(tmp_path, backend)
    run_module(ns, **args)
    during = dump_all(ns)
    for line in before.splitlines():
        if line.startswith('-A'):
            assert line in during
    xt = dump_xtables(ns)
    forward = [line for line in xt.splitlines() if line.startswith('-A FORWARD')]
    if backend == 'iptables':
        # our jumps first (libvirt inserts them at the top), the admin rule after them, order kept
        assert forward[:4] == ['-A FORWARD -j LIBVIRT_FWX', '-A FORWARD -j LIBVIRT_FWI',
                               '-A FORWARD -j LIBVIRT_FWO', '-A FORWARD -s 10.99.0.0/16 -j DROP']
    assert 'tcp dport 2222 accept' in dump_nft(ns)
    run_module(ns, name='default', state='absent', state_dir=str(tmp_path))
    assert rules_only(dump_all(ns)) == rules_only(before)
    assert 'LIBVIRT' not in dump_all(ns) and 'libvirt_network' not in dump_all(ns)


@pytest.mark.parametrize('backend', BACKENDS)
def test_two_networks_absent_removes_only_its_own(ns, tmp_path, backend):
    a = _nat(tmp_path, backend, name='neta', bridge='virbra', subnet='10.11.0')
    b = _nat(tmp_path, backend, name='netb', bridge='virbrb', subnet='10.12.0', forward_mode='route')
    empty = dump_all(ns)
    run_module(ns, **a)
    run_module(ns, **b)
    both = dump_all(ns)
    assert 'virbra' in both and 'virbrb' in both
    removed = run_module(ns, name='neta', state='absent', state_dir=str(tmp_path))
    assert removed['changed'] is True
    assert removed['network']['bridge'] == 'virbra'
    only_b = dump_all(ns)
    assert 'virbra' not in only_b and 'virbrb' in only_b
    assert 'virbra' not in ns.ip('link', 'show').stdout  # we created it, we removed it
    assert stored_networks(str(tmp_path)) == ['netb']
    # the same as a host that only ever had network b
    with Netns(tag='vn2') as fresh:
        run_module(fresh, **_changed(b, state_dir=str(tmp_path / 'fresh')))
        assert dump_all(fresh) == only_b
    assert run_module(ns, name='neta', state='absent', state_dir=str(tmp_path))['changed'] is False
    run_module(ns, name='netb', state='absent', state_dir=str(tmp_path))
    assert rules_only(dump_all(ns)) == rules_only(empty)
    assert 'LIBVIRT' not in dump_all(ns) and 'libvirt_network' not in dump_all(ns)


def test_two_networks_match_libvirts_insert_sequence(ns, tmp_path):
    """Union of two networks == libvirt's commands for a then b, run one by one."""
    a = _nat(tmp_path, 'iptables', name='neta', bridge='virbra', subnet='10.11.0')
    b = _nat(tmp_path, 'iptables', name='netb', bridge='virbrb', subnet='10.12.0', forward_mode='route')
    run_module(ns, **a)
    run_module(ns, **b)
    ours = dump_xtables(ns)
    with Netns(tag='lv') as libvirt:
        for argv in network_compile_iptables.private_chain_commands():
            if '--list-rules' not in argv:
                libvirt.run(list(argv))
        for args in (a, b):
            params = _changed(args, dns=None, forward_dev=None, ipv6_no_gateway=None, nat=None, zone=None)
            spec = network_parse.spec_from_options(params)
            for command in network_compile_iptables.network_commands(spec):
                libvirt.run(list(command.argv()))
        assert dump_xtables(libvirt) == ours


@pytest.mark.parametrize('backend', BACKENDS)
def test_changed_network_moves_above_the_others_as_a_libvirt_restart(ns, tmp_path, backend):
    """Finding N13 (network differential): libvirt must restart a network to
    change it, so its rules land above those of networks started after it; an
    unchanged re-run keeps the order (and changes nothing)."""
    a = _nat(tmp_path, backend, name='neta', bridge='virbra', subnet='10.11.0')
    b = _nat(tmp_path, backend, name='netb', bridge='virbrb', subnet='10.12.0', forward_mode='route')
    run_module(ns, **a)
    run_module(ns, **b)

    def order():
        # where each network's catch-all reject of guest output sits (FWO / guest_output)
        text = dump_all(ns)
        marks = [('-A LIBVIRT_FWO -i %s -j REJECT' if backend == 'iptables' else 'iif "%s" counter reject') % br
                 for br in ('virbra', 'virbrb')]
        return text.index(marks[0]), text.index(marks[1])

    first_a, first_b = order()
    assert first_b < first_a  # b started later: above a
    assert run_module(ns, **a)['changed'] is False
    assert order() == (first_a, first_b)
    run_module(ns, **_changed(a, ipv4={'address': '10.13.0.1/24'}))
    moved_a, moved_b = order()
    assert moved_a < moved_b  # a restarted with a change: above b
    assert run_module(ns, **b)['changed'] is False


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('bridge', ['a', 'addr'])
def test_bridge_named_like_an_ip_keyword(ns, tmp_path, backend, bridge):
    """Network differential seed 5 case 35: `ip link add a type bridge` reads 'a'
    as ip's 'address' keyword; libvirt starts such a network."""
    args = dict(name='kw', bridge=bridge, forward_mode='nat', firewall_backend=backend, state_dir=str(tmp_path),
                ipv4={'address': '10.58.167.1/24'})
    assert run_module(ns, **args)['changed'] is True
    assert bridge in ns.interfaces()
    assert ('-i %s ' % bridge if backend == 'iptables' else 'iif "%s"' % bridge) in dump_all(ns)
    assert run_module(ns, **args)['changed'] is False
    run_module(ns, name='kw', state='absent', state_dir=str(tmp_path))
    assert bridge not in ns.interfaces()


def test_ipv4_mapped_ipv6_gateway_is_idempotent(ns, tmp_path):
    """Finding N16: iproute2 prints ::ffff:10.1.2.3 where the model writes
    ::ffff:a01:203; the run added the address a second time and failed."""
    args = dict(name='mapped', bridge='virbrm', firewall_backend='iptables', state_dir=str(tmp_path),
                ipv6={'address': '::ffff:10.1.2.3', 'prefix': 120})
    assert run_module(ns, **args)['changed'] is True
    assert run_module(ns, **args)['changed'] is False


def test_isolated_leaves_forwarding_alone_nat_turns_it_on(ns, tmp_path):
    assert sysctl(ns, 'net/ipv4/ip_forward') == '0'
    result = run_module(ns, name='iso', bridge='virbri', forward_mode='isolated', firewall_backend='iptables',
                        state_dir=str(tmp_path), ipv4={'address': '10.20.0.1/24', 'dhcp': True})
    assert result['forwarding'] == {}
    assert sysctl(ns, 'net/ipv4/ip_forward') == '0'
    result = run_module(ns, name='nat', bridge='virbrn', forward_mode='nat', firewall_backend='iptables',
                        state_dir=str(tmp_path), ipv4={'address': '10.21.0.1/24'})
    assert result['forwarding'] == {'net/ipv4/ip_forward': '1'}
    assert sysctl(ns, 'net/ipv4/ip_forward') == '1'
    assert sysctl(ns, 'net/ipv6/conf/all/forwarding') == '0'  # no IPv6 address: left alone
    run_module(ns, name='nat', state='absent', state_dir=str(tmp_path))
    assert sysctl(ns, 'net/ipv4/ip_forward') == '1'  # never turned off


def test_create_bridge_false_only_rules(ns, tmp_path):
    result = run_module(ns, name='r', bridge='virbrx', forward_mode='route', firewall_backend='iptables',
                        create_bridge=False, state_dir=str(tmp_path), ipv4={'address': '10.22.0.1/24'})
    assert result['changed'] is True
    assert 'virbrx' not in ns.ip('link', 'show').stdout
    assert '-A LIBVIRT_FWO -s 10.22.0.0/24 -i virbrx -j ACCEPT' in dump_xtables(ns)
    failed = run_module(ns, expect_failure=True, name='r2', bridge='virbry', forward_mode='route',
                        firewall_backend='nftables', create_bridge=False, state_dir=str(tmp_path),
                        ipv4={'address': '10.23.0.1/24'})
    assert 'bridge virbry does not exist' in failed['msg']


@pytest.mark.parametrize('args, message', [
    (dict(ipv4={'address': '10.11.0.129/25'}), 'subnet 10.11.0.128/25 overlaps subnet 10.11.0.0/24 of network'),
    (dict(ipv4={'address': '10.30.0.1', 'prefix': 33}), 'prefix 33 is out of range'),
    (dict(ipv4={'address': '10.30.0.0/24'}), 'not a host address inside its subnet 10.30.0.0/24'),
    (dict(ipv4={'address': '10.30.0.1/24', 'dhcp_range': {'start': '10.31.0.2', 'end': '10.31.0.9'}}),
     'dhcp range start 10.31.0.2 is not inside the subnet'),
    (dict(forward_mode='tunnel'), 'value of forward_mode must be one of: isolated, nat, route, open, got: tunnel'),
    (dict(bridge='bad bridge'), "bridge 'bad bridge' is not a valid interface name"),
    (dict(bridge='waytoolongbridgename'), 'is not a valid interface name'),
    (dict(forward_dev='nosuchdev0'), 'forward_dev nosuchdev0 does not exist on this host'),
    (dict(xml='<network><name>x</name><bridge name="b1"/><forward mode="hostdev"/></network>', bridge=None,
          forward_mode=None, ipv4=None, name=None), "'hostdev' uses no libvirt bridge firewall"),
])
@pytest.mark.parametrize('backend', BACKENDS)
def test_bad_input_fails_and_changes_nothing(ns, tmp_path, args, message, backend):
    run_module(ns, **_nat(tmp_path, backend, name='neta', bridge='virbra', subnet='10.11.0'))
    before = dump_all(ns)
    links = ns.ip('link', 'show').stdout
    params = dict(name='bad', bridge='virbrz', forward_mode='nat', firewall_backend=backend,
                  state_dir=str(tmp_path), ipv4={'address': '10.40.0.1/24'})
    params.update(args)
    params = dict((k, v) for k, v in params.items() if v is not None)
    result = run_module(ns, expect_failure=True, **params)
    assert message in result['msg']
    assert dump_all(ns) == before
    assert ns.ip('link', 'show').stdout == links
    assert stored_networks(str(tmp_path)) == ['neta']


def test_rendered_loads_into_an_empty_namespace(ns, tmp_path):
    args = _nat(tmp_path, 'iptables')
    rendered = run_module(ns, **_changed(args, state='rendered'))
    assert rendered['changed'] is False and rendered['rendered']['nftables'] == ''
    assert dump_all(ns).count('LIBVIRT') == 0 and not os.path.exists(str(tmp_path / 'networks'))
    ns.run(['iptables-restore', '--noflush'], input_text=rendered['rendered']['iptables'])
    ns.run(['ip6tables-restore', '--noflush'], input_text=rendered['rendered']['ip6tables'])
    loaded = dump_all(ns)
    # the module then finds everything in place (only bridge/state/forwarding left to do)
    result = run_module(ns, **args)
    assert not any('iptables' in line for line in result['changes'])
    assert dump_all(ns) == loaded

    nft_rendered = run_module(ns, **_changed(args, state='rendered', firewall_backend='nftables'))['rendered']
    assert nft_rendered['iptables'] == '' and nft_rendered['ip6tables'] == ''
    with Netns(tag='vnr') as empty:
        empty.ip('link', 'add', 'virbr0', 'type', 'bridge')
        empty.run(['nft', '-f', '-'], input_text=nft_rendered['nftables'])
        assert 'chain guest_nat' in dump_nft(empty)


def test_backend_switch_and_changed_addresses(ns, tmp_path):
    args = _nat(tmp_path, 'iptables', name='sw', bridge='virbrs', subnet='10.80.0')
    run_module(ns, **args)
    assert 'virbrs' in dump_xtables(ns)
    switched = run_module(ns, **_changed(args, firewall_backend='nftables'))
    assert switched['changed'] is True and switched['backend'] == 'nftables'
    assert 'LIBVIRT' not in dump_xtables(ns)  # the last iptables network went: chains and jumps too
    assert 'iif "virbrs"' in dump_nft(ns)
    moved = run_module(ns, **_changed(args, firewall_backend='nftables',
                                      ipv4={'address': '10.81.0.1/24'}, ipv6=None))
    assert moved['changed'] is True
    addresses = ns.ip('addr', 'show', 'dev', 'virbrs').stdout
    assert '10.81.0.1/24' in addresses and '10.80.0.1/24' not in addresses
    assert '10.80.0.0/24' not in dump_nft(ns) and '10.81.0.0/24' in dump_nft(ns)
    renamed = run_module(ns, **_changed(args, firewall_backend='nftables', bridge='virbrs2',
                                        ipv4={'address': '10.81.0.1/24'}, ipv6=None))
    assert renamed['changed'] is True
    links = ns.ip('link', 'show').stdout
    assert 'virbrs2' in links and 'virbrs:' not in links
    assert 'virbrs"' not in dump_nft(ns)


def test_iptables_legacy_backend(ns, tmp_path):
    require_kernel('iptables-legacy-save', 'iptables-legacy-restore')
    args = _nat(tmp_path, 'iptables', xtables_backend='legacy')
    first = run_module(ns, **args)
    assert first['changed'] is True
    legacy = ns.run(['iptables-legacy-save']).stdout
    assert '-A LIBVIRT_FWX -i virbr0 -o virbr0 -j ACCEPT' in legacy
    assert 'LIBVIRT' not in ns.run(['iptables-nft-save']).stdout  # nothing in the other variant
    assert run_module(ns, **args)['changed'] is False
    ns.run(['iptables-legacy', '-F', 'LIBVIRT_FWI'])
    assert run_module(ns, **args)['changed'] is True
    assert ns.run(['iptables-legacy-save']).stdout.count('-A LIBVIRT_FWI') == 2
    run_module(ns, name='default', state='absent', state_dir=str(tmp_path))
    assert 'LIBVIRT' not in ns.run(['iptables-legacy-save']).stdout


def test_concurrent_runs_are_serialised(ns, tmp_path):
    """Two playbooks at once on one host: the state_dir lock makes the union right."""
    import threading
    nets = [_nat(tmp_path, backend, name='c%d' % i, bridge='virbrc%d' % i, subnet='10.9%d.0' % i)
            for i, backend in enumerate(('iptables', 'iptables', 'nftables', 'nftables'))]
    results = {}
    errors = []

    def worker(args):
        try:
            results[args['name']] = run_module(ns, **args)
        except AssertionError as exc:  # ModuleFailed
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(args,)) for args in nets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(result['changed'] for result in results.values())
    dump = dump_all(ns)
    for i in range(4):
        assert 'virbrc%d' % i in dump
    assert stored_networks(str(tmp_path)) == ['c0', 'c1', 'c2', 'c3']
    again = [run_module(ns, **args) for args in nets]
    assert [r['changes'] for r in again] == [[], [], [], []]


@pytest.mark.parametrize('backend', BACKENDS)
def test_name_alone_reapplies_the_stored_network_after_a_reboot(tmp_path, backend):
    """Issue 10: the stored network comes back from ``name`` alone (no bridge or options restated)
    in a fresh namespace (a reboot: no bridge, no rules); gathered says what is missing first."""
    require_kernel()
    args = _nat(tmp_path, backend)
    with Netns(tag='vnr') as first:
        run_module(first, **args)
        applied = dump_all(first)
    with Netns(tag='vnr') as rebooted:
        state_dir = str(tmp_path)
        gathered = run_module(rebooted, name='default', state='gathered', state_dir=state_dir)
        assert gathered['changed'] is False and gathered['in_sync'] is False
        assert [(o['name'], o['status']) for o in gathered['objects']] == [('default', 'would_repair')]
        assert gathered['networks'][0]['bridge'] == 'virbr0' and gathered['networks'][0]['backend'] == backend
        assert 'virbr0' not in rebooted.ip('link', 'show').stdout  # gathered changed nothing
        again = run_module(rebooted, name='default', state_dir=state_dir)
        assert again['changed'] is True and again['network']['bridge'] == 'virbr0' and again['backend'] == backend
        assert dump_all(rebooted) == applied
        assert sysctl(rebooted, 'net/ipv4/ip_forward') == '1'
        assert run_module(rebooted, name='default', state_dir=state_dir)['changed'] is False
        assert run_module(rebooted, name='default', state='gathered', state_dir=state_dir)['in_sync'] is True
        missing = run_module(rebooted, expect_failure=True, name='other', state_dir=state_dir)
        assert "network 'other' is not stored in %s" % state_dir in missing['msg']
