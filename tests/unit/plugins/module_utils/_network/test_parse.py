# -*- coding: utf-8 -*-
"""Model of a virtual network: options and XML give the same model; bad input is named."""

from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._network.parse import (
    IpSpec, NetworkSpec, NetworkSpecError, check_no_overlap, spec_from_options, spec_from_xml)

NAT_XML = '''<network>
  <name>default</name>
  <bridge name="virbr0"/>
  <forward/>
  <ip address="192.168.122.1" netmask="255.255.255.0">
    <dhcp><range start="192.168.122.2" end="192.168.122.254"/></dhcp>
  </ip>
  <ip family="ipv6" address="2001:db8:ca2:2::1" prefix="64"/>
</network>'''


def _opts(**kwargs):
    base = dict(name='default', bridge='virbr0', forward_mode=None, forward_dev=None, ipv4=None, ipv6=None,
                ipv6_no_gateway=None, nat=None, dns=None, zone=None)
    base.update(kwargs)
    return base


def test_options_and_xml_give_the_same_model():
    from_xml = spec_from_xml(NAT_XML)
    from_opts = spec_from_options(_opts(
        forward_mode='nat',
        ipv4={'address': '192.168.122.1', 'netmask': '255.255.255.0',
              'dhcp_range': {'start': '192.168.122.2', 'end': '192.168.122.254'}},
        ipv6=[{'address': '2001:db8:ca2:2::1', 'prefix': 64}]))
    assert from_xml == from_opts
    assert from_xml.ips[0].network == '192.168.122.0/24'
    assert from_xml.ips[1].network == '2001:db8:ca2:2::/64'
    assert from_xml.ips[0].dhcp and not from_xml.ips[1].dhcp


def test_forward_without_mode_is_nat_and_missing_forward_is_isolated():
    assert spec_from_xml(NAT_XML).forward_mode == 'nat'
    isolated = spec_from_xml('<network><name>i</name><bridge name="br1"/></network>')
    assert isolated.forward_mode == 'isolated'
    none = spec_from_xml('<network><name>i</name><bridge name="br1"/><forward mode="none"/></network>')
    assert none.forward_mode == 'isolated'


def test_prefix_sources_in_libvirt_order():
    xml = ('<network><name>p</name><bridge name="br1"/>'
           '<ip address="10.1.2.1"/><ip address="172.16.0.1" prefix="0" netmask="255.255.0.0"/>'
           '<ip family="ipv6" address="fd00::1"/></network>')
    spec = spec_from_xml(xml)
    assert [ip.prefix for ip in spec.ips] == [8, 16, 64]
    assert spec.ips[0].network == '10.0.0.0/8'


def test_nat_and_forward_dev_from_xml():
    xml = ('<network><name>n</name><bridge name="br1"/><forward mode="nat" dev="eth1">'
           '<nat ipv6="yes"><address start="198.51.100.1" end="198.51.100.9"/><port start="500" end="1000"/>'
           '</nat></forward><ip address="10.1.2.1" prefix="24"/></network>')
    spec = spec_from_xml(xml)
    assert spec.forward_dev == 'eth1'
    assert spec.nat_ipv6
    assert spec.nat_addresses == ('198.51.100.1', '198.51.100.9')
    assert spec.port_range() == (500, 1000)


def test_forward_interface_dev_equivalent_to_dev():
    xml = ('<network><name>n</name><bridge name="br1"/><forward mode="route"><interface dev="eth2"/></forward>'
           '<ip address="10.0.0.1" prefix="24"/></network>')
    assert spec_from_xml(xml).forward_dev == 'eth2'
    bad = ('<network><name>n</name><bridge name="br1"/><forward mode="route" dev="eth1"><interface dev="eth2"/>'
           '</forward><ip address="10.0.0.1" prefix="24"/></network>')
    with pytest.raises(NetworkSpecError, match='disagrees'):
        spec_from_xml(bad)


def test_tftp_and_dns_and_ipv6_yes():
    xml = ('<network ipv6="yes"><name>t</name><bridge name="br1"/><dns enable="no"/>'
           '<ip address="10.1.2.1" prefix="24"><tftp root="/srv"/></ip></network>')
    spec = spec_from_xml(xml)
    assert spec.ips[0].tftp and not spec.dns and spec.ipv6_no_gateway and spec.ipv6_enabled


def test_default_nat_ports_and_zero_means_default():
    spec = spec_from_options(_opts(forward_mode='nat', ipv4={'address': '10.0.0.1/24'},
                                   nat={'ports': {'start': 0, 'end': 0}, 'addresses': None, 'ipv6': False}))
    assert spec.port_range() == (1024, 65535)


@pytest.mark.parametrize('kwargs, message', [
    (dict(ipv4={'address': '10.0.0.1', 'prefix': 33}), 'prefix 33 is out of range for IPV4'),
    (dict(ipv6={'address': 'fd00::1', 'prefix': 129}), 'prefix 129 is out of range for IPV6'),
    (dict(ipv4={'address': '10.0.0.0/24'}), 'not a host address inside its subnet'),
    (dict(ipv4={'address': '10.0.0.255/24'}), 'broadcast'),
    (dict(ipv4={'address': '10.0.0.1/24', 'dhcp_range': {'start': '10.0.1.2', 'end': '10.0.1.9'}}),
     'dhcp range start 10.0.1.2 is not inside the subnet 10.0.0.0/24'),
    (dict(ipv4={'address': 'fd00::1'}), 'is not an IPV4 address'),
    (dict(ipv4={'address': 'banana'}), "'banana' is not an IP address"),
    (dict(forward_mode='bridgey'), "unknown forward mode 'bridgey'"),
    (dict(bridge='br/0'), "bridge 'br/0' is not a valid interface name"),
    (dict(bridge='a-very-long-bridge-name'), 'is not a valid interface name'),
    (dict(forward_mode='isolated', forward_dev='eth0'), 'not allowed with forward mode isolated'),
    (dict(forward_mode='route', nat={'ports': {'start': 1, 'end': 2}}), 'only allowed with forward mode nat'),
    (dict(forward_mode='nat', nat={'ports': {'start': 900, 'end': 900}}), 'nat port range 900-900 is invalid'),
    (dict(forward_mode='nat', nat={'addresses': {'start': '10.0.0.9', 'end': '10.0.0.1'}}), 'is after end'),
    (dict(ipv4=[{'address': '10.0.0.1/24'}, {'address': '10.0.0.129/25'}]), 'overlap'),
    (dict(ipv4={'address': '10.0.0.1/24', 'colour': 'red'}), r'unknown key\(s\) colour'),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(NetworkSpecError, match=message):
        spec_from_options(_opts(**kwargs))


@pytest.mark.parametrize('xml, message', [
    ('<network><name>x</name></network>', 'bridge name'),
    ('<network><bridge name="b"/></network>', '<name> is missing'),
    ('<net/>', 'expected <network>'),
    ('<network><name>x</name><bridge name="b"/><forward mode="vepa"/></network>', "'vepa' uses no libvirt"),
    ('<network><name>x</name><bridge name="b"/><forward mode="weird"/></network>', "unknown forward mode 'weird'"),
    ('<network><name>x</name><bridge name="b"/><ip address="10.0.0.1" prefix="40"/></network>', 'prefix 40'),
    ('<network><name>x</name><bridge name="b"/><ip address="10.0.0.1" netmask="255.0.255.0"/></network>',
     'not a valid IPv4 netmask'),
    ('<network><name>x</name', 'not well-formed'),
])
def test_bad_xml_is_named(xml, message):
    with pytest.raises(NetworkSpecError, match=message):
        spec_from_xml(xml)


def test_overlap_and_shared_bridge_between_networks():
    a = spec_from_options(_opts(name='a', bridge='br-a', ipv4={'address': '10.1.0.1/24'}))
    b = spec_from_options(_opts(name='b', bridge='br-b', ipv4={'address': '10.1.0.129/25'}))
    c = spec_from_options(_opts(name='c', bridge='br-a', ipv4={'address': '10.2.0.1/24'}))
    with pytest.raises(NetworkSpecError, match='subnet 10.1.0.128/25 overlaps subnet 10.1.0.0/24 of network'):
        check_no_overlap(b, [a])
    with pytest.raises(NetworkSpecError, match='bridge br-a is already used by network'):
        check_no_overlap(c, [a])
    check_no_overlap(a, [a])  # the same network again is fine


def test_round_trip_through_stored_dict():
    spec = spec_from_xml(NAT_XML)
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
    assert isinstance(spec.ips[0], IpSpec)


# Findings of the random network differential against libvirt 9.0
# (tests/differential/NETWORK_FINDINGS.md): what libvirt refuses when the
# network is defined, we refuse too, naming the value.

def _xml(body, attrs=''):
    return '<network%s><name>f</name><bridge name="brf"/>%s</network>' % (attrs, body)


@pytest.mark.parametrize('mode', ['nat', 'route', 'open'])
def test_n1_forwarding_modes_need_an_address(mode):
    with pytest.raises(NetworkSpecError, match='forward mode %s needs at least one IPv4 or IPv6 address' % mode):
        spec_from_xml(_xml('<forward mode="%s"/>' % mode))
    with pytest.raises(NetworkSpecError, match="network 'default': forward mode %s needs" % mode):
        spec_from_options(_opts(forward_mode=mode))
    assert spec_from_xml(_xml('')).forward_mode == 'isolated'  # isolated needs none


def test_n2_prefix_and_netmask_together_are_refused():
    with pytest.raises(NetworkSpecError, match=r"<ip> #1: prefix 16 and netmask 255.255.255.0 are both given"):
        spec_from_xml(_xml('<ip address="10.5.0.1" prefix="16" netmask="255.255.255.0"/>'))
    # prefix='0' means "no prefix": the netmask is used, as libvirt does
    assert spec_from_xml(_xml('<ip address="10.5.0.1" prefix="0" netmask="255.255.255.0"/>')).ips[0].prefix == 24


def test_n3_ipv6_address_needs_family():
    with pytest.raises(NetworkSpecError, match=r"<ip> #2: address fd00:7::1 is IPv6 but the element has no "
                                               r"family='ipv6'"):
        spec_from_xml(_xml('<ip address="10.7.0.1"/><ip address="fd00:7::1" prefix="64"/>'))


@pytest.mark.parametrize('tftp', ['<tftp/>', '<tftp root=""/>'])
def test_n4_tftp_without_root_opens_no_tftp(tftp):
    spec = spec_from_xml(_xml('<ip address="10.8.0.1" prefix="24">%s</ip>' % tftp))
    assert spec.ips[0].tftp is False
    assert spec_from_xml(_xml('<ip address="10.8.0.1" prefix="24"><tftp root="/t"/></ip>')).ips[0].tftp is True


@pytest.mark.parametrize('nat, message', [
    ('<port end="2000"/>', r'<nat><port> needs both start and end \(start is missing\)'),
    ('<port start="2000"/>', r'<nat><port> needs both start and end \(end is missing\)'),
    ('<port start="1" end="9"/><port start="1" end="9"/>', 'only one <port> element is allowed in <nat>'),
    ('<address start="1.2.3.4" end="1.2.3.4"/><address start="1.2.3.5" end="1.2.3.5"/>',
     'only one <address> element is allowed in <nat>'),
])
def test_n5_nat_elements_checked_as_libvirt_does(nat, message):
    with pytest.raises(NetworkSpecError, match=message):
        spec_from_xml(_xml('<forward mode="nat"><nat>%s</nat></forward><ip address="10.9.0.1"/>' % nat))


def test_n6_nat_element_only_in_nat_mode_and_yes_no_values():
    with pytest.raises(NetworkSpecError, match=r"<nat> is only allowed in <forward mode='nat'> \(mode is route\)"):
        spec_from_xml(_xml('<forward mode="route"><nat/></forward><ip address="10.9.0.1"/>'))
    with pytest.raises(NetworkSpecError, match="only one <nat> element is allowed in <forward>"):
        spec_from_xml(_xml('<forward mode="nat"><nat/><nat/></forward><ip address="10.9.0.1"/>'))
    with pytest.raises(NetworkSpecError, match=r"<nat ipv6='maybe'> must be 'yes' or 'no'"):
        spec_from_xml(_xml('<forward mode="nat"><nat ipv6="maybe"/></forward><ip address="10.9.0.1"/>'))
    with pytest.raises(NetworkSpecError, match=r"<network ipv6='1'> must be 'yes' or 'no'"):
        spec_from_xml(_xml('', attrs=' ipv6="1"'))


def test_n7_disabled_dns_takes_no_records_and_enable_is_yes_or_no():
    for record in ('<forwarder addr="192.0.2.53"/>', '<host ip="10.9.0.5"><hostname>a</hostname></host>',
                   '<txt name="a" value="b"/>', '<srv service="s" protocol="tcp"/>'):
        with pytest.raises(NetworkSpecError, match=r"<dns enable='no'> must not contain <(forwarder|host|txt|srv)>"):
            spec_from_xml(_xml('<dns enable="no">%s</dns>' % record))
    assert spec_from_xml(_xml('<dns enable="yes"><forwarder addr="192.0.2.53"/></dns>')).dns is True
    assert spec_from_xml(_xml('<dns enable="no"/>')).dns is False
    with pytest.raises(NetworkSpecError, match=r"<dns enable='off'> must be 'yes' or 'no'"):
        spec_from_xml(_xml('<dns enable="off"/>'))


def test_n8_static_route_gateway_must_be_on_a_subnet():
    ip = '<ip address="10.41.0.1" prefix="24"/><ip family="ipv6" address="fd00:41::1" prefix="64"/>'
    with pytest.raises(NetworkSpecError, match=r"<route> #1 gateway 10.42.0.9 is not on any of the network's "
                                               r"subnets"):
        spec_from_xml(_xml(ip + '<route address="10.99.0.0" prefix="16" gateway="10.42.0.9"/>'))
    with pytest.raises(NetworkSpecError, match=r"<route> #2 has no gateway"):
        spec_from_xml(_xml(ip + '<route address="10.99.0.0" prefix="16" gateway="10.41.0.9"/>'
                                '<route address="10.98.0.0" prefix="16"/>'))
    spec = spec_from_xml(_xml(ip + '<route address="10.99.0.0" prefix="16" gateway="10.41.0.9"/>'
                                   '<route family="ipv6" address="fd00:99::" prefix="64" gateway="fd00:41::9"/>'))
    assert len(spec.ips) == 2


@pytest.mark.parametrize('element', ['<vlan><tag id="42"/></vlan>',
                                     '<portgroup name="p"><vlan><tag id="7"/></vlan></portgroup>'])
def test_n9_vlan_is_refused(element):
    with pytest.raises(NetworkSpecError, match=r"<vlan> is not supported by a network with a libvirt-managed bridge"):
        spec_from_xml(_xml('<forward/>%s<ip address="10.47.0.1" prefix="24"/>' % element))
    # libvirt accepts (and ignores) a <virtualport> on these bridges
    assert spec_from_xml(_xml('<forward/><virtualport type="openvswitch"/><ip address="10.47.0.1"/>'))


def test_n10_dev_of_an_isolated_network_is_ignored_as_libvirt_does():
    spec = spec_from_xml(_xml('<forward mode="none" dev="eth1"/><ip address="10.57.0.1" prefix="24"/>'))
    assert spec.forward_mode == 'isolated' and spec.forward_dev is None
    with pytest.raises(NetworkSpecError, match='forward_dev .eth1. is not allowed with forward mode isolated'):
        spec_from_options(_opts(forward_dev='eth1', ipv4={'address': '10.57.0.1/24'}))


def test_n11_attributes_are_read_as_written():
    with pytest.raises(NetworkSpecError, match=r"<ip> #1 address: ' 10.61.0.1' is not an IP address"):
        spec_from_xml(_xml('<ip address=" 10.61.0.1" prefix="24"/>'))


def test_n12_empty_attributes_as_libvirt_reads_them():
    # <network ipv6=''> and dev='' are "not given"; prefix='' and <nat ipv6=''> are errors
    spec = spec_from_xml(_xml('<forward mode="nat" dev=""/><ip address="10.77.0.1" prefix="24"/>', attrs=' ipv6=""'))
    assert spec.forward_dev is None and spec.ipv6_no_gateway is False
    with pytest.raises(NetworkSpecError, match=r"<ip> #1 prefix: '' is not an integer"):
        spec_from_xml(_xml('<ip address="10.76.0.1" prefix="" netmask="255.255.255.0"/>'))
    with pytest.raises(NetworkSpecError, match=r"<nat ipv6=''> must be 'yes' or 'no'"):
        spec_from_xml(_xml('<forward><nat ipv6=""/></forward><ip address="10.71.0.1"/>'))


def test_n15_class_d_and_e_addresses_have_no_default_prefix():
    with pytest.raises(NetworkSpecError, match=r"<ip> #1: address 230.1.2.3 has no default prefix \(class D/E\)"):
        spec_from_xml(_xml('<ip address="230.1.2.3"/>'))
    with pytest.raises(NetworkSpecError, match=r"ipv4\[0\] address: address 240.1.2.3 has no default prefix"):
        spec_from_options(_opts(ipv4={'address': '240.1.2.3'}))
    assert spec_from_xml(_xml('<ip address="240.1.2.3" prefix="24"/>')).ips[0].network == '240.1.2.0/24'
    assert spec_from_xml(_xml('<ip address="0.0.0.1"/>')).ips[0].prefix == 8
