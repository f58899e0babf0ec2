# -*- coding: utf-8 -*-
"""Real traffic through networks set up by virt_network, both backends.

Topology (all namespaces made and deleted by each test):

    guest g0 (eth0) --vnet0--+                      +-- up0 -- eth0 upstream u
    guest g1 (eth0) --vnet1--+-- BRIDGE  host h ----+   203.0.113.1   203.0.113.2

The module runs in the host namespace and creates the bridge with its gateway
address; the test then plugs the guests' veths into it. Connections are made
with small Python socket programs; results are exact: which peer address the
server saw, and whether a connection was accepted, refused (REJECT) or timed
out (DROP).
"""

from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.tests.lib.network_support import require_kernel, run_module
from ansible_collections.hypervisor.netfilter.tests.lib.network_traffic import UPSTREAM, UPSTREAM_HOST, Lab, connect

BACKENDS = ('iptables', 'nftables')


@pytest.fixture
def lab(request):
    require_kernel()
    with Lab('tr') as made:
        yield made


@pytest.mark.parametrize('backend', BACKENDS)
def test_nat_guest_reaches_upstream_as_the_host(lab, tmp_path, backend):
    run_module(lab.host, name='natnet', bridge='virbrt', forward_mode='nat', firewall_backend=backend,
               state_dir=str(tmp_path), ipv4={'address': '10.50.0.1/24'})
    lab.plug_guests('virbrt', '10.50.0')
    # upstream has no route to 10.50.0.0/24: only masquerading can make replies come back
    assert '10.50.0' not in lab.upstream.ip('route', 'show').stdout
    server = lab.server(lab.upstream, UPSTREAM, 8080)
    assert connect(lab.guests[0], UPSTREAM, 8080) == 'ok'
    assert connect(lab.guests[1], UPSTREAM, 8080) == 'ok'
    assert server.peers() == [UPSTREAM_HOST, UPSTREAM_HOST]
    # upstream cannot open connections into the NAT network (no route, and FWI only allows replies)
    lab.upstream.ip('route', 'add', '10.50.0.0/24', 'via', UPSTREAM_HOST)
    lab.server(lab.guests[0], '10.50.0.10', 9090)
    assert connect(lab.upstream, '10.50.0.10', 9090) == 'refused'
    # guests reach each other
    peer = lab.server(lab.guests[1], '10.50.0.11', 7070)
    assert connect(lab.guests[0], '10.50.0.11', 7070) == 'ok'
    assert peer.peers() == ['10.50.0.10']


@pytest.mark.parametrize('backend', BACKENDS)
def test_isolated_guests_reach_each_other_and_host_services_only(lab, tmp_path, backend):
    run_module(lab.host, name='isonet', bridge='virbri', forward_mode='isolated', firewall_backend=backend,
               state_dir=str(tmp_path), ipv4={'address': '10.51.0.1/24', 'dhcp': True})
    lab.plug_guests('virbri', '10.51.0')
    # forwarding on (the module left it alone): the firewall, not the sysctl, must stop traffic
    lab.host.run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'])
    if backend == 'iptables':
        # an admin's restrictive host policy: libvirt's LIBVIRT_INP punches DNS/DHCP holes
        lab.host.run(['iptables', '-P', 'INPUT', 'DROP'])
    upstream = lab.server(lab.upstream, UPSTREAM, 8080)
    lab.upstream.ip('route', 'add', '10.51.0.0/24', 'via', UPSTREAM_HOST)
    assert connect(lab.guests[0], UPSTREAM, 8080) == 'refused'  # FWO REJECT
    assert upstream.peers() == []
    lab.server(lab.guests[0], '10.51.0.10', 9090)
    assert connect(lab.upstream, '10.51.0.10', 9090) == 'refused'  # FWI REJECT
    # guest <-> guest
    peer = lab.server(lab.guests[1], '10.51.0.11', 7070)
    assert connect(lab.guests[0], '10.51.0.11', 7070) == 'ok'
    assert peer.peers() == ['10.51.0.10']
    # host DNS (udp+tcp 53) and DHCP (udp 67)
    dns_udp = lab.server(lab.host, '10.51.0.1', 53, 'udp')
    dns_tcp = lab.server(lab.host, '10.51.0.1', 53, 'tcp')
    dhcp = lab.server(lab.host, '10.51.0.1', 67, 'udp')
    assert connect(lab.guests[0], '10.51.0.1', 53, 'udp') == 'ok'
    assert connect(lab.guests[0], '10.51.0.1', 53, 'tcp') == 'ok'
    assert connect(lab.guests[1], '10.51.0.1', 67, 'udp') == 'ok'
    assert dns_udp.peers() == ['10.51.0.10']
    assert dns_tcp.peers() == ['10.51.0.10']
    assert dhcp.peers() == ['10.51.0.11']
    if backend == 'iptables':
        other = lab.server(lab.host, '10.51.0.1', 2222)
        assert connect(lab.guests[0], '10.51.0.1', 2222) == 'timeout'  # host policy DROP, no hole
        assert other.peers() == []


@pytest.mark.parametrize('backend', BACKENDS)
def test_routed_subnet_reachable_from_upstream_only_for_its_subnet(lab, tmp_path, backend):
    run_module(lab.host, name='rtnet', bridge='virbrr', forward_mode='route', firewall_backend=backend,
               state_dir=str(tmp_path), ipv4={'address': '10.60.0.1/24'})
    lab.plug_guests('virbrr', '10.60.0')
    lab.upstream.ip('route', 'add', '10.60.0.0/24', 'via', UPSTREAM_HOST)
    # an address outside the network's subnet behind the same bridge
    lab.guests[0].ip('addr', 'add', '10.61.0.10/24', 'dev', 'eth0')
    lab.host.ip('route', 'add', '10.61.0.0/24', 'dev', 'virbrr')
    lab.upstream.ip('route', 'add', '10.61.0.0/24', 'via', UPSTREAM_HOST)
    inside = lab.server(lab.guests[0], '10.60.0.10', 9090)
    outside = lab.server(lab.guests[0], '10.61.0.10', 9091)
    assert connect(lab.upstream, '10.60.0.10', 9090) == 'ok'
    assert connect(lab.upstream, '10.61.0.10', 9091) == 'refused'
    assert inside.peers() == [UPSTREAM]  # routed: no address translation
    assert outside.peers() == []
    server = lab.server(lab.upstream, UPSTREAM, 8080)
    assert connect(lab.guests[1], UPSTREAM, 8080) == 'ok'
    assert server.peers() == ['10.60.0.11']


@pytest.mark.parametrize('backend', BACKENDS)
def test_absent_takes_the_network_off_the_wire(lab, tmp_path, backend):
    args = dict(name='natnet', bridge='virbrt', forward_mode='nat', firewall_backend=backend,
                state_dir=str(tmp_path), ipv4={'address': '10.52.0.1/24'}, create_bridge=False)
    lab.host.ip('link', 'add', 'virbrt', 'type', 'bridge')
    lab.host.own_interfaces.add('virbrt')
    lab.host.ip('addr', 'add', '10.52.0.1/24', 'dev', 'virbrt')
    lab.host.ip('link', 'set', 'virbrt', 'up')
    run_module(lab.host, **args)
    lab.plug_guests('virbrt', '10.52.0')
    server = lab.server(lab.upstream, UPSTREAM, 8080)
    assert connect(lab.guests[0], UPSTREAM, 8080) == 'ok'
    run_module(lab.host, name='natnet', state='absent', state_dir=str(tmp_path))
    # no masquerading any more: the reply has no way back
    assert connect(lab.guests[0], UPSTREAM, 8080) == 'timeout'
    assert server.peers() == [UPSTREAM_HOST]


@pytest.mark.parametrize('backend', BACKENDS)
def test_snat_address_and_port_range(lab, tmp_path, backend):
    run_module(lab.host, name='snat', bridge='virbrs', forward_mode='nat', firewall_backend=backend,
               state_dir=str(tmp_path), ipv4={'address': '10.53.0.1/24'},
               nat={'addresses': {'start': '198.51.100.7', 'end': '198.51.100.7'},
                    'ports': {'start': 20000, 'end': 20009}})
    lab.plug_guests('virbrs', '10.53.0')
    # replies to the translated address go back through the host
    lab.upstream.ip('route', 'add', '198.51.100.0/24', 'via', UPSTREAM_HOST)
    server = lab.server(lab.upstream, UPSTREAM, 8080, with_port=True)
    assert connect(lab.guests[0], UPSTREAM, 8080) == 'ok'
    assert connect(lab.guests[1], UPSTREAM, 8080) == 'ok'
    peers = server.peers()
    assert [peer.split(':')[0] for peer in peers] == ['198.51.100.7', '198.51.100.7']
    assert all(20000 <= int(peer.split(':')[1]) <= 20009 for peer in peers)
