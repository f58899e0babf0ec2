# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our RelaxNG schema: structure is strict, values are never tighter than the parser."""

from __future__ import annotations

import time

import pytest
from lxml import etree

from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import protocols as P
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter import schema as S
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.values import IllegalValue, parse_value


def doc(body, head="<filter name='f'>"):
    return etree.fromstring(head + body + '</filter>')


def rule(element, attrs='', rule_attrs="action='accept' direction='in'"):
    return doc("<rule %s><%s %s/></rule>" % (rule_attrs, element, attrs))


def check(tree):
    S.validate_filter_tree(tree, 'test.xml')


def rejected(tree):
    with pytest.raises(FilterError) as info:
        check(tree)
    return info.value


def test_protocol_elements_match_the_protocol_tables():
    assert set(S.PROTOCOL_ELEMENTS) == set(P.PROTOCOLS)
    for name, spec in P.PROTOCOLS.items():
        assert S.element_attributes(name) == frozenset(spec.attr_names) | {'match'}, name


# Sample spellings per value kind: valid ones, odd ones libvirt accepts, and junk.
SAMPLES = {
    P.UINT8: ('0', '7', '63', '255', '0x3f', '0X1', 'ff', '256', '-1', '', 'x1', '1.5'),
    P.UINT16: ('0', '80', '65535', '0xffff', '1234', '65536', 'abc', ' 1', 'z'),
    P.UINT16_DEC: ('0', '5', '65535', '0x10', 'q'),
    P.UINT32: ('0', '4294967295', '0x11223344', '4294967296', 'g'),
    P.MAC: ('01:02:03:04:05:06', '1:2:3:4:5:6', 'AA:bb:CC:dd:EE:ff', '1:2:3:4:5', 'zz:1:1:1:1:1'),
    P.MACMASK: ('ff:ff:ff:ff:ff:ff', 'ff:ff:ff:ff:ff:80', 'ff:00:ff:00:00:00', '0:0:0:0:0:0'),
    P.IPV4: ('10.1.2.3', '0.0.0.0', '255.255.255.255', '10.1', '1.2.3.256', 'a.b.c.d', '::1', ''),
    P.IPV4MASK: ('0', '24', '32', '33', '255.255.255.0', '255.0.255.0', 'x'),
    P.IPV6: ('::', '::1', 'fe80::1', 'FE80::', '::ffff:10.1.2.3', 'a:b:c::d:e:f', '1.2.3.4', 'g::1', ':::'),
    P.IPV6MASK: ('0', '64', '128', '129', 'ffff:ffff::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:8000', 'q'),
    P.BOOLEAN: ('true', 'false', '1', '0', 'yes', 'no', 'maybe', ''),
    P.COMMENT: ('hello', '', 'a' * 300, '`ls`;$(x);"q"', "it's"),
    P.STATE: ('NEW', 'new,established', 'ESTABLISHED,RELATED', 'NONE', 'INVALID , NEW', 'BOGUS', ''),
    P.TCPFLAGS: ('SYN/SYN', 'SYN,ACK/ACK', 'ALL/NONE', 'fin,syn/fin', 'SYN', 'BOGUS/SYN'),
    P.IPSETNAME: ('test', 'test:_.-+', 'with space', 'a' * 31, 'a' * 32, 'bad/name', ''),
    P.IPSETFLAGS: ('src', 'dst', 'src,dst', 'SRC,DST,SRC', 'src,src,src,src,src,src', 'src,src,src,src,src,src,src', 'foo'),
}
VARIABLES = ('$A', '$A[0]', '$A[@1]', '$LONG_NAME_9', '$B[  @0 ] ')


def _cases():
    for name, spec in sorted(P.PROTOCOLS.items()):
        for attr in spec.attrs:
            samples = SAMPLES[attr.kind] + tuple(pair[0] for pair in attr.names) + VARIABLES
            for value in samples:
                yield name, attr, value


def test_schema_never_rejects_a_value_the_parser_accepts():
    accepted = 0
    for element, attr, value in _cases():
        try:
            parse_value(attr, value)
        except IllegalValue:
            continue
        accepted += 1
        tree = rule(element, "%s='%s'" % (attr.name, value.replace("'", '&apos;')))
        try:
            check(tree)
        except FilterError as exc:  # pragma: no cover - the failure message is the point
            pytest.fail('schema rejects %s %s=%r which the parser accepts: %s' % (element, attr.name, value, exc))
    assert accepted > 500  # the sample table exercises every attribute of every protocol


# Spellings a real libvirt (9.0.0, through tools/libvirt-oracle) accepted; the
# schema must accept them too even where they look wrong.
LIBVIRT_ACCEPTS = (
    ('tcp', 'srcmacaddr', '1:2:3:4:5:6 x'), ('tcp', 'srcportstart', ' 12'), ('tcp', 'srcportstart', '+12'),
    ('tcp', 'srcportstart', '-0'), ('tcp', 'srcipmask', '-0'), ('tcp', 'srcipmask', ' 8'),
    ('tcp', 'srcipaddr', '10.1'), ('tcp', 'srcipaddr', '010.0.0.1'), ('tcp', 'srcipaddr', '0x0a.0.0.1'),
    ('tcp-ipv6', 'srcipaddr', 'fe80::1%lo'), ('tcp', 'srcportstart', '0xffff'), ('tcp', 'state', 'new established'),
    ('tcp', 'state', ''), ('tcp', 'flags', '/'), ('all', 'ipset', ''), ('tcp', 'srcipaddr', '$A[1]junk'),
    ('tcp', 'srcipaddr', '$A[ @1 ]'), ('tcp', 'srcipaddr', '$A[1001]'), ('mac', 'protocolid', 'IPv4'),
    ('arp', 'opcode', 'request'), ('ip', 'protocol', 'TCP'), ('tcp', 'comment', '$X'), ('stp', 'type', '$X'),
)


@pytest.mark.parametrize('element,attr,value', LIBVIRT_ACCEPTS)
def test_schema_accepts_what_libvirt_accepts(element, attr, value):
    check(rule(element, "%s='%s'" % (attr, value)))


@pytest.mark.parametrize('value', ('', 'x', '1:2:3', 'ab:cd', '1.2.3.4:1', '001:2:3:4:5:6'))
def test_malformed_macs_are_rejected(value):
    error = rejected(rule('mac', "srcmacaddr='%s'" % value))
    assert error.attribute == 'srcmacaddr' and error.value == value
    assert error.filter_name == 'f' and 'rule #1' in error.rule


@pytest.mark.parametrize('attr,value', (
    ('srcportstart', 'eighty'), ('dscp', '-'), ('srcipaddr', 'host.example'), ('state', 'NEW;'),
    ('flags', 'SYN'), ('connlimit-above', '1.5'), ('srcipmask', '/24'),
))
def test_malformed_values_name_attribute_and_value(attr, value):
    error = rejected(rule('tcp', "%s='%s'" % (attr, value)))
    assert (error.attribute, error.value) == (attr, value)
    assert "filter 'f'" in str(error) and 'line 1' in str(error)


def test_every_protocol_accepts_match_no_and_an_empty_element():
    for name in S.PROTOCOL_ELEMENTS:
        check(rule(name))
        check(rule(name, "match='no'"))


def test_unknown_attribute_is_named():
    error = rejected(rule('tcp', "srcporttend='24'"))
    assert error.attribute == 'srcporttend' and error.value == '24'
    assert 'unknown attribute' in str(error) and 'srcportstart' in str(error)


def test_attribute_of_another_protocol_is_unknown():
    error = rejected(rule('tcp-ipv6', "flags='SYN/SYN'"))  # flags exists for tcp only
    assert error.attribute == 'flags'
    error = rejected(rule('udp', "option='2'"))
    assert error.attribute == 'option'


def test_repeated_elements_of_one_protocol_are_one_rule():
    check(doc("<rule action='accept' direction='in'><tcp srcipaddr='1.2.3.4'/><tcp match='no' srcportstart='1'/></rule>"))


def test_two_protocols_in_one_rule_are_rejected():
    error = rejected(doc("<rule action='accept' direction='in'><tcp/><udp/></rule>"))
    assert 'one protocol' in str(error) and 'rule #1' in error.rule


def test_unknown_elements_are_rejected():
    assert 'not allowed inside <rule>' in str(rejected(doc("<rule action='accept' direction='in'><tcpx/></rule>")))
    assert 'not allowed inside <filter>' in str(rejected(doc('<comment/>')))
    error = rejected(doc("<filterref filter='x'><param name='a' value='b'/></filterref>"))
    assert 'not allowed inside <filterref>' in str(error)


@pytest.mark.parametrize('attrs', (
    "action='accept' direction='in'", "action='drop' direction='out' priority='-1000'",
    "action='reject' direction='inout' priority='+7'", "action='return' direction='in' statematch='false'",
    "action='continue' direction='in' statematch='0'", "action='accept' direction='in' priority='2000'",
))
def test_rule_attributes(attrs):
    check(doc('<rule %s/>' % attrs))


@pytest.mark.parametrize('attrs,bad', (
    ("action='ACCEPT' direction='in'", 'action'), ("action='allow' direction='in'", 'action'),
    ("action='accept' direction='both'", 'direction'), ("action='accept' direction='in' priority='1.5'", 'priority'),
    ("action='accept' direction='in' priority='high'", 'priority'), ("direction='in'", 'action'),
    ("action='accept'", 'direction'), ("action='accept' direction='in' state='NEW'", 'state'),
))
def test_bad_rule_attributes(attrs, bad):
    assert rejected(doc('<rule %s/>' % attrs)).attribute == bad


@pytest.mark.parametrize('chain', ('root', 'mac', 'stp-xyz', 'vlan', 'arp-ip', 'arp-testme', 'rarp', 'ipv4-ip',
                                   'ipv6', 'macfoo', 'ipv4_a.b:c-d', 'arpabcdefghi'))
def test_valid_chains(chain):
    check(doc('', head="<filter name='f' chain='%s' priority='-100'>" % chain))


@pytest.mark.parametrize('chain', ('rootx', 'ROOT', 'foo', 'ipv5', 'arpabcdefghij', 'mac/x', '', 'mac x'))
def test_invalid_chains(chain):
    error = rejected(doc('', head="<filter name='f' chain='%s'>" % chain))
    assert (error.attribute, error.value) == ('chain', chain)


def test_filter_needs_a_name_and_knows_only_its_attributes():
    assert rejected(doc('', head='<filter>')).attribute == 'name'
    assert rejected(doc('', head="<filter name='f' prio='1'>")).attribute == 'prio'
    assert rejected(doc('', head="<filter name='f' priority='x'>")).attribute == 'priority'


@pytest.mark.parametrize('text', ('5c6d49af-b071-6127-b4ec-6f8ed4b55335', '5C6D49AFB0716127B4EC6F8ED4B55335',
                                  ' 5c6d49af-b071-6127-b4ec-6f8ed4b55335 ', '5c-6d-49-af-b0-71-61-27-b4-ec-6f-8e-d4-b5-53-35'))
def test_uuid_spellings(text):
    check(doc('<uuid>%s</uuid>' % text))


@pytest.mark.parametrize('text', ('', 'nope', '5c6d49af-b071-6127-b4ec-6f8ed4b5533', '5c6d49af-b071-6127-b4ec-6f8ed4b55335a'))
def test_bad_uuids(text):
    error = rejected(doc('<uuid>%s</uuid>' % text))
    assert 'UUID' in str(error)


def test_uuid_anywhere_but_once():
    check(doc("<rule action='accept' direction='in'/><uuid>5c6d49af-b071-6127-b4ec-6f8ed4b55335</uuid>"))
    error = rejected(doc('<uuid>5c6d49af-b071-6127-b4ec-6f8ed4b55335</uuid>'
                         '<uuid>5c6d49af-b071-6127-b4ec-6f8ed4b55335</uuid>'))
    assert 'uuid' in str(error)


def test_filterref_and_parameters():
    check(doc("<filterref filter='clean-traffic'><parameter name='IP' value='10.0.0.1'/>"
              "<parameter name='IP' value='10.0.0.2'/></filterref><filterref filter='x'/>"))
    assert rejected(doc('<filterref/>')).attribute == 'filter'
    error = rejected(doc("<filterref filter='x'><parameter value='1'/></filterref>"))
    assert error.attribute == 'name' and "filterref #1 to 'x'" in error.rule


def test_error_names_the_line_and_rule_position():
    text = ("<filter name='multi'>\n  <rule action='accept' direction='in' priority='10'/>\n"
            "  <rule action='accept' direction='in' priority='20'>\n    <ip srcipaddr='nope'/>\n  </rule>\n</filter>")
    with pytest.raises(FilterError) as info:
        S.validate_filter_tree(etree.fromstring(text), 'multi.xml')
    error = info.value
    assert error.rule == 'rule #2 (priority 20, line 3)'
    assert 'multi.xml' in str(error) and '(line 4)' in str(error) and "value 'nope'" in str(error)


def test_wrong_root_element():
    error = rejected(etree.fromstring('<network/>'))
    assert 'expected <filter>' in str(error)


def test_validation_is_fast_for_rules_with_many_attributes():
    names = ('type', 'flags', 'root-priority', 'root-priority-hi', 'root-cost', 'root-cost-hi', 'sender-priority',
             'sender-priority-hi', 'port', 'port-hi', 'age', 'age-hi', 'max-age', 'max-age-hi', 'hello-time',
             'hello-time-hi', 'forward-delay', 'forward-delay-hi')
    attrs = ' '.join("%s='1'" % name for name in names)
    body = "<rule action='accept' direction='in'><stp %s srcmacaddr='1:2:3:4:5:6'/></rule>" % attrs * 50
    tree = doc(body)
    start = time.monotonic()
    check(tree)
    assert time.monotonic() - start < 1.0


BINDING = ("<filterbinding><owner><name>vm</name><uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid></owner>"
           "<portdev name='vnet0'/>%s<mac address='%s'/><filterref filter='clean-traffic'>"
           "<parameter name='IP' value='10.0.0.1'/></filterref></filterbinding>")


def test_binding_schema():
    S.validate_binding_tree(etree.fromstring(BINDING % ('', '52:54:00:7b:35:93')))
    S.validate_binding_tree(etree.fromstring(BINDING % ("<linkdev name='eth0'/>", '52:54:00:7B:35:93')))
    with pytest.raises(FilterError) as info:
        S.validate_binding_tree(etree.fromstring(BINDING % ('', '52:54:00:7b:35')))
    assert info.value.attribute == 'address'
    with pytest.raises(FilterError) as info:
        S.validate_binding_tree(etree.fromstring(BINDING.replace("<portdev name='vnet0'/>", '') % ('', '1:2:3:4:5:6')))
    assert 'portdev' in str(info.value)
    with pytest.raises(FilterError) as info:
        S.validate_binding_tree(etree.fromstring(BINDING % ("<target dev='x'/>", '1:2:3:4:5:6')))
    assert 'target' in str(info.value)


def test_schema_text_is_a_grammar_of_our_own():
    assert S.FILTER_SCHEMA_TEXT.startswith('<grammar') and '<ref name="filter"/>' in S.FILTER_SCHEMA_TEXT
    assert '<ref name="filterbinding"/>' in S.BINDING_SCHEMA_TEXT
