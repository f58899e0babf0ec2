# -*- coding: utf-8 -*-
import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import protocols as P
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.values import (
    IllegalValue, VarRef, parse_ipv4, parse_ipv6, parse_mask, parse_state, parse_tcp_flags, parse_value,
    parse_var_access)
import socket


def spec(protocol, attr):
    return P.protocol(protocol).attr(attr)


@pytest.mark.parametrize('raw,text,number,is_hex', [
    ('22', '22', 22, False),
    ('0x16', '22', 22, True),
    ('ff', '255', 255, True),
    ('65535', '65535', 65535, False),
])
def test_ports_decimal_then_hex(raw, text, number, is_hex):
    value = parse_value(spec('tcp', 'dstportstart'), raw)
    assert (value.text, value.number, value.hex) == (text, number, is_hex)


@pytest.mark.parametrize('protocol,attr,raw', [
    ('tcp', 'dstportstart', '65536'),
    ('tcp', 'dstportstart', '-1'),
    ('tcp', 'dstportstart', '22 '),
    ('tcp', 'dscp', '64'),
    ('mac', 'protocolid', '15'),
    ('mac', 'protocolid', 'appletalk'),
    ('vlan', 'vlanid', '4096'),
    ('vlan', 'encap-protocol', '0x3b'),
    ('tcp', 'connlimit-above', '0x10'),
    ('icmp', 'type', '256'),
    ('tcp', 'srcipaddr', '10.0.0.300'),
    ('tcp', 'srcipmask', '33'),
    ('tcp', 'srcipmask', '255.0.255.0'),
    ('tcp-ipv6', 'srcipmask', '129'),
    ('tcp-ipv6', 'srcipaddr', 'a:b:c'),
    ('tcp-ipv6', 'dstipto', '::5'),
    ('mac', 'srcmacaddr', '00:11:22:33:44'),
    ('mac', 'srcmacaddr', '00:11:22:33:44:100'),
    ('mac', 'srcmacmask', 'ff:00:ff:00:00:00'),
    ('tcp', 'state', 'NEW,BOGUS'),
    ('tcp', 'flags', 'SYN'),
    ('all', 'ipset', 'a;b'),
    ('all', 'ipset', 'x' * 32),
    ('all', 'ipsetflags', 'src,foo'),
    ('all', 'ipsetflags', 'src,src,src,src,src,src,src'),
])
def test_illegal_values(protocol, attr, raw):
    with pytest.raises(IllegalValue):
        parse_value(spec(protocol, attr), raw)


def test_names_for_numbers():
    assert parse_value(spec('mac', 'protocolid'), 'ARP').number == 0x806
    assert parse_value(spec('arp', 'opcode'), 'request_reverse').number == 3
    assert parse_value(spec('ip', 'protocol'), 'udp').number == 17
    assert parse_value(spec('vlan', 'encap-protocol'), 'ipv6').number == 0x86dd


def test_addresses_and_masks_normalised():
    assert parse_value(spec('mac', 'srcmacaddr'), '1:2:3:A:b:C').text == '01:02:03:0a:0b:0c'
    assert parse_value(spec('tcp', 'srcipmask'), '255.255.255.0').text == '24'
    assert parse_value(spec('tcp-ipv6', 'srcipmask'), 'ffff:ffff:ffff:ffff:8000::').text == '65'
    assert parse_ipv6('FE80::1') == 'fe80::1'
    assert parse_ipv6('::ffff:10.1.2.3') == '::ffff:10.1.2.3'  # inet_ntop keeps the dotted tail
    assert parse_ipv4('10.1') == '10.0.0.1'  # getaddrinfo's inet_aton short form, as libvirt
    assert parse_mask('0', socket.AF_INET) == 0


def test_state_and_flags():
    assert parse_state('established,new') == 'NEW,ESTABLISHED'
    assert parse_state('NEW,NONE') == 'NONE'
    assert parse_tcp_flags('syn,ack/ALL') == 'SYN,ACK/ALL'
    assert parse_tcp_flags('NONE/FIN,SYN,RST,PSH,ACK,URG') == 'NONE/ALL'


def test_boolean_and_comment():
    assert parse_value(spec('arp', 'gratuitous'), 'yes').text == 'true'
    assert parse_value(spec('arp', 'gratuitous'), 'on').text == 'false'  # libvirt: anything else is false
    assert parse_value(spec('tcp', 'comment'), 'x' * 300).text == 'x' * 256


def test_variables():
    assert parse_var_access('IP') == VarRef('IP')
    assert parse_var_access('B[  @2 ]') == VarRef('B', iterator=2)
    assert parse_var_access('A[1]') == VarRef('A', index=1)
    assert str(VarRef('A', iterator=0)) == '$A'
    value = parse_value(spec('tcp', 'srcipaddr'), '$IP', negated=True)
    assert value.var == VarRef('IP') and value.negated and value.text is None
    with pytest.raises(IllegalValue):
        parse_var_access('A[@1001]')
    with pytest.raises(IllegalValue):
        parse_var_access('A;rm')


@pytest.mark.parametrize('protocol,attr,raw,text', [
    ('tcp', 'dstportstart', ' 12', '12'),
    ('tcp', 'dstportstart', '+12', '12'),
    ('tcp', 'dstportstart', '-0', '0'),
    ('tcp', 'srcipmask', ' 8', '8'),
    ('stp', 'root-cost', '-1', '4294967295'),  # strtoul wraps negatives, as libvirt reads them
    ('mac', 'srcmacaddr', '1:2:3:4:5:6 x', '01:02:03:04:05:06'),
    ('tcp', 'state', '', ''),
    ('all', 'ipset', '', ''),
])
def test_spellings_libvirt_accepts(protocol, attr, raw, text):
    assert parse_value(spec(protocol, attr), raw).text == text


def test_spellings_libvirt_rejects():
    for raw in ('001:2:3:4:5:6', '1:2:3:4:5:6x', '0x1:2:3:4:5:6'):
        with pytest.raises(IllegalValue):
            parse_value(spec('mac', 'srcmacaddr'), raw)
    with pytest.raises(IllegalValue):
        parse_value(spec('tcp', 'dstportstart'), '-1')
