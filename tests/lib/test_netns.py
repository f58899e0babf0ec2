# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel tests of the namespace helpers themselves (root only)."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.fixtures import (  # noqa: F401 pylint: disable=unused-import
    hypervisor, hypervisor_factory, netns, require_tools)
from ansible_collections.hypervisor.netfilter.tests.lib.netns import (
    BRIDGE_NF_SYSCTLS, Netns, NetnsError, ThrowawayHypervisor, UnsafeNamespace, can_create_namespaces,
    cleanup_stale, list_namespaces)

pytestmark = pytest.mark.skipif(not can_create_namespaces()[0], reason=can_create_namespaces()[1] or 'ok')


def test_netns_exists_only_inside_the_with_block():
    with Netns(tag='life') as ns:
        assert ns.name in list_namespaces()
        assert ns.interfaces() == ['lo']
        assert 'UP' in ns.ip('-j', 'link', 'show', 'lo').stdout
    assert ns.name not in list_namespaces()


def test_netns_is_deleted_when_the_block_raises():
    with pytest.raises(RuntimeError):
        with Netns(tag='boom') as ns:
            name = ns.name
            raise RuntimeError('test failure inside the block')
    assert name not in list_namespaces()


def test_names_are_unique_and_carry_our_pid():
    first, second = Netns(), Netns()
    assert first.name != second.name
    assert first.name.startswith('hnf-%d-' % os.getpid())


def test_run_executes_inside_the_namespace_not_here(netns):
    inside = netns.run(['stat', '-L', '-c', '%i', '/proc/self/ns/net']).stdout.strip()
    assert inside != str(os.stat('/proc/self/ns/net').st_ino)
    netns.ip('link', 'add', 'hnfdummy0', 'type', 'bridge')
    assert 'hnfdummy0' in netns.run(['ip', '-o', 'link', 'show']).stdout
    assert not os.path.exists('/sys/class/net/hnfdummy0')


def test_run_rejects_a_shell_string(netns):
    with pytest.raises(TypeError):
        netns.run('ip link show')


def test_run_reports_failures_with_the_command(netns):
    with pytest.raises(NetnsError, match='exit code'):
        netns.run(['false'])
    assert netns.run(['false'], check=False).returncode == 1


def test_guard_refuses_interfaces_it_did_not_make(netns):
    netns.assert_isolated()
    netns.ip('link', 'add', 'stranger0', 'type', 'bridge')
    with pytest.raises(UnsafeNamespace, match='stranger0'):
        netns.assert_isolated()
    netns.assert_isolated(allowed=('stranger0',))


def test_refuses_to_adopt_an_existing_namespace(netns):
    with pytest.raises(UnsafeNamespace, match='exists already'):
        Netns(name=netns.name).create()
    assert netns.name in list_namespaces()


def test_sysctl_inside_does_not_change_the_callers_value(netns):
    key = 'net.ipv4.ip_forward'
    with open('/proc/sys/net/ipv4/ip_forward') as handle:
        before = handle.read().strip()
    wanted = '0' if before == '1' else '1'
    assert netns.sysctl(key, wanted) == wanted
    with open('/proc/sys/net/ipv4/ip_forward') as handle:
        assert handle.read().strip() == before


def test_hypervisor_wiring(hypervisor):
    host = hypervisor.host
    assert set(host.interfaces()) == {'lo', 'br0', 'vnet0', 'vnet1'}
    for guest in hypervisor.guests:
        master = host.ip('-j', 'link', 'show', guest.port).stdout
        assert '"master":"br0"' in master
        link = guest.ns.ip('-j', 'addr', 'show', guest.nic).stdout
        assert guest.mac in link and guest.ip in link and guest.ip6 in link
        assert guest.ns.interfaces() == ['lo', 'eth0']
    assert len({g.mac for g in hypervisor.guests}) == 2
    assert len({g.ns.name for g in hypervisor.guests} | {host.name}) == 3


def test_bridge_nf_sysctls_are_per_namespace(hypervisor):
    for key in BRIDGE_NF_SYSCTLS:
        path = '/proc/sys/' + key.replace('.', '/')
        if hypervisor.bridge_nf.get(key) is None:
            pytest.skip('br_netfilter is not available: %s missing' % path)
        assert hypervisor.host.sysctl(key) == '1'
        # Setting it inside must not leak into the caller's namespace.
        with open(path) as handle:
            before = handle.read().strip()
        hypervisor.host.sysctl(key, '0')
        with open(path) as handle:
            assert handle.read().strip() == before
        hypervisor.host.sysctl(key, '1')


def test_guests_reach_each_other_and_the_host(hypervisor):
    require_tools('ping')
    first, second = hypervisor.guests
    first.ns.run(['ping', '-c', '1', '-W', '2', second.ip])
    first.ns.run(['ping', '-c', '1', '-W', '2', hypervisor.host_ip])
    second.ns.run(['ping', '-6', '-c', '1', '-W', '2', first.ip6])


def test_host_iptables_filters_bridged_traffic(hypervisor):
    """br_netfilter in the host namespace: a FORWARD rule there sees bridged guest traffic."""
    require_tools('ping', 'iptables')
    if hypervisor.bridge_nf.get('net.bridge.bridge-nf-call-iptables') != '1':
        pytest.skip('br_netfilter is not available')
    first, second = hypervisor.guests
    first.ns.run(['ping', '-c', '1', '-W', '2', second.ip])
    hypervisor.host.run(['iptables', '-A', 'FORWARD', '-s', first.ip, '-j', 'DROP'])
    blocked = first.ns.run(['ping', '-c', '1', '-W', '1', second.ip], check=False)
    assert blocked.returncode != 0
    hypervisor.host.run(['iptables', '-D', 'FORWARD', '-s', first.ip, '-j', 'DROP'])
    first.ns.run(['ping', '-c', '1', '-W', '2', second.ip])


def test_teardown_removes_every_namespace():
    with ThrowawayHypervisor(guests=3) as hv:
        names = [ns.name for ns in hv.namespaces]
        assert len(names) == 4 and all(n in list_namespaces() for n in names)
    remaining = list_namespaces()
    assert not [n for n in names if n in remaining]


def test_failed_build_leaves_nothing_behind():
    hv = ThrowawayHypervisor(guests=2, bridge='br0')
    hv._port_prefix = 'bad name '  # pylint: disable=protected-access  # ip rejects it mid-build
    with pytest.raises(NetnsError):
        hv.__enter__()
    remaining = list_namespaces()
    assert not [n for n in remaining if n.startswith(hv.host.name[:-len('-host')])]


def test_factory_builds_custom_sizes(hypervisor_factory):
    hv = hypervisor_factory(guests=1, ipv6=False, bridge_nf=False)
    assert [g.port for g in hv.guests] == ['vnet0']
    assert hv.bridge_nf == {}


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        ThrowawayHypervisor(guests=-1)
    with pytest.raises(ValueError):
        ThrowawayHypervisor(bridge='a-bridge-name-far-too-long')
    with pytest.raises(ValueError):
        Netns(name='bad name')


def test_cleanup_stale_removes_only_namespaces_of_dead_processes():
    dead_pid = _dead_pid()
    # A prefix of its own: never touch stale namespaces of other runs here.
    prefix = 'hnfstale%s' % os.urandom(3).hex()
    stale = Netns(name='%s-%d-x' % (prefix, dead_pid)).create()
    alive = Netns(name='%s-%d-y' % (prefix, os.getpid())).create()
    try:
        deleted = cleanup_stale(prefix)
        assert deleted == [stale.name]
        assert stale.name not in list_namespaces()
        assert alive.name in list_namespaces() and alive.name not in deleted
    finally:
        stale.created = stale.name in list_namespaces()
        stale.delete()
        alive.delete()


def _dead_pid():
    proc = subprocess.Popen(['true'])  # pylint: disable=consider-using-with
    proc.wait()
    return proc.pid
