# -*- coding: utf-8 -*-
# Copyright: hypervisor.netfilter contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canonical XML of filters and bindings (expectations written for this project;
where libvirt's behaviour was in doubt it was checked against a real libvirt)."""

from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.builtins import BUILTIN_FILTERS
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.format import (
    escape, format_binding, format_filter)
from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_binding, parse_filter

UUID = "<uuid>11111111-2222-3333-4444-555555555555</uuid>"


def canon(text, strict=True):
    return format_filter(parse_filter(text, source='test', strict=strict))


def one_rule(body, rule_attrs="action='accept' direction='out'", strict=True):
    """Canonical text of the rule line(s) of a one-rule filter."""
    text = canon("<filter name='f'>%s<rule %s>%s</rule></filter>" % (UUID, rule_attrs, body), strict=strict)
    lines = text.splitlines()
    return '\n'.join(lines[2:-1])


def test_whole_filter_layout():
    text = canon("""<filter name='web' chain='ipv4-web' priority='-300'>
        <uuid>11111111-2222-3333-4444-555555555555</uuid>
        <!-- comments vanish -->
        <rule action='accept' direction='in' priority='100'><tcp dstportstart='443'/></rule>
        <filterref filter='allow-dhcp'/>
        <rule action='drop' direction='inout'/>
      </filter>""")
    assert text == (
        "<filter name='web' chain='ipv4-web' priority='-300'>\n"
        "  <uuid>11111111-2222-3333-4444-555555555555</uuid>\n"
        "  <rule action='accept' direction='in' priority='100'>\n"
        "    <tcp dstportstart='443'/>\n"
        "  </rule>\n"
        "  <filterref filter='allow-dhcp'/>\n"
        "  <rule action='drop' direction='inout' priority='500'/>\n"
        "</filter>\n")


@pytest.mark.parametrize('head,expected', (
    ("<filter name='f'>", "<filter name='f' chain='root'>"),
    ("<filter name='f' chain='root' priority='-50'>", "<filter name='f' chain='root' priority='-50'>"),
    ("<filter name='f' chain='arp'>", "<filter name='f' chain='arp' priority='-500'>"),  # the chain's default
    ("<filter name='f' chain='arp-x'>", "<filter name='f' chain='arp-x' priority='-500'>"),
    ("<filter name='f' chain='rarp'>", "<filter name='f' chain='rarp' priority='-400'>"),
    ("<filter name='f' chain='mac'>", "<filter name='f' chain='mac' priority='-800'>"),
    ("<filter name='f' chain='vlan'>", "<filter name='f' chain='vlan' priority='-750'>"),
    ("<filter name='f' chain='ipv4'>", "<filter name='f' chain='ipv4' priority='-700'>"),
    ("<filter name='f' chain='ipv6'>", "<filter name='f' chain='ipv6' priority='-600'>"),
    ("<filter name='f' chain='stp'>", "<filter name='f' chain='stp'>"),  # stp defaults to 0
    ("<filter name='f' chain='ipv4' priority='0'>", "<filter name='f' chain='ipv4'>"),
))
def test_filter_head_and_chain_priority(head, expected):
    assert canon(head + UUID + '</filter>').splitlines()[0] == expected + ''


def test_priority_without_chain_is_ignored_when_lenient_and_refused_when_strict():
    # libvirt: no chain attribute makes a root filter whatever its priority says (checked with libvirt-oracle)
    assert format_filter(parse_filter("<filter name='f' priority='-50'>" + UUID + '</filter>', strict=False)
                         ).splitlines()[0] == "<filter name='f' chain='root'>"
    with pytest.raises(FilterError, match="attribute 'priority', value '-50': a filter priority without a chain"):
        parse_filter("<filter name='f' priority='-50'>" + UUID + '</filter>')


def test_filter_without_uuid_has_no_uuid_line():
    assert canon("<filter name='f'/>") == "<filter name='f' chain='root'>\n</filter>\n"


def test_rule_attributes():
    assert one_rule('', "action='reject' direction='in' priority='-7' statematch='FALSE'") == \
        "  <rule action='reject' direction='in' priority='-7' statematch='false'/>"
    # libvirt ignores these values (checked with libvirt-oracle): strict refuses, lenient reads them as libvirt
    assert one_rule('', "action='accept' direction='in' statematch='no'", strict=False) == \
        "  <rule action='accept' direction='in' priority='500'/>"  # only 0/false disable it
    assert one_rule('<all/>', "action='accept' direction='in' priority='5000'", strict=False) == \
        "  <rule action='accept' direction='in' priority='500'>\n    <all/>\n  </rule>"
    with pytest.raises(FilterError, match="attribute 'statematch', value 'no'"):
        one_rule('', "action='accept' direction='in' statematch='no'")
    with pytest.raises(FilterError, match="attribute 'priority', value '5000': rule priority must be an integer in"):
        one_rule('<all/>', "action='accept' direction='in' priority='5000'")


def test_values_are_normalised_in_table_order():
    got = one_rule("<tcp flags='syn,ack/ack' srcportstart='0x10' dscp='12' srcipmask='255.255.0.0' "
                   "srcipaddr='10.1' srcmacaddr='A:B:C:D:E:F' state='established,new' connlimit-above='3'/>")
    assert got == ("  <rule action='accept' direction='out' priority='500'>\n"
                   "    <tcp srcmacaddr='0a:0b:0c:0d:0e:0f' srcipaddr='10.0.0.1' srcipmask='16' dscp='12' "
                   "connlimit-above='3' state='NEW,ESTABLISHED' srcportstart='0x10' flags='SYN,ACK/ACK'/>\n"
                   "  </rule>")


@pytest.mark.parametrize('attrs,expected', (
    ("protocolid='1536'", "protocolid='1536'"),  # decimal stays decimal
    ("protocolid='0xABCD'", "protocolid='0xabcd'"),  # hex stays hex, lower case
    ("protocolid='2048'", "protocolid='ipv4'"),  # a named number prints its name
    ("protocolid='0x0806'", "protocolid='arp'"),
    ("protocolid='IPv6'", "protocolid='ipv6'"),
))
def test_mac_protocolid(attrs, expected):
    assert one_rule('<mac %s/>' % attrs).splitlines()[1] == '    <mac %s/>' % expected


def test_names_hex_and_booleans():
    assert one_rule("<arp opcode='0x2' hwtype='0xAB' gratuitous='yes'/>").splitlines()[1] == \
        "    <arp hwtype='0xab' opcode='Reply' gratuitous='true'/>"
    assert one_rule("<arp opcode='11' gratuitous='no'/>").splitlines()[1] == \
        "    <arp opcode='11' gratuitous='false'/>"
    # an opcode without a name prints in decimal even when written in hex (libvirt's printer)
    assert one_rule("<arp opcode='0x36c8' protocoltype='ff'/>").splitlines()[1] == \
        "    <arp protocoltype='0xff' opcode='14024'/>"
    assert one_rule("<ip protocol='6'/>").splitlines()[1] == "    <ip protocol='tcp'/>"
    assert one_rule("<ip protocol='0x7'/>").splitlines()[1] == "    <ip protocol='0x7'/>"
    assert one_rule("<vlan vlanid='0x12' encap-protocol='2048'/>").splitlines()[1] == \
        "    <vlan vlanid='0x12' encap-protocol='ipv4'/>"


def test_ipv6_spelling_keeps_dotted_tails():
    got = one_rule("<ipv6 srcipaddr='FE80::1' dstipaddr='::ffff:10.1.2.3' srcipmask='ffff:ffff::' "
                   "dstipmask='64'/>").splitlines()[1]
    assert got == "    <ipv6 srcipaddr='fe80::1' srcipmask='32' dstipaddr='::ffff:10.1.2.3' dstipmask='64'/>"


def test_variables_print_as_references():
    got = one_rule("<udp srcipaddr='$A[ 1 ]' dstipaddr='$B[@0]' srcportstart='$P[@2]' dscp='$D'/>").splitlines()[1]
    assert got == "    <udp srcipaddr='$A[1]' dstipaddr='$B' dscp='$D' srcportstart='$P[@2]'/>"


def test_negated_attributes_go_to_a_second_element():
    got = one_rule("<tcp match='no' srcipaddr='10.0.0.1'/><tcp srcportstart='22' comment='c'/>")
    assert got.splitlines()[1:3] == ["    <tcp srcportstart='22' comment='c'/>",
                                     "    <tcp match='no' srcipaddr='10.0.0.1'/>"]
    # dstportstart follows srcportstart's negation; a mask follows its address
    got = one_rule("<tcp match='no' srcportstart='1'/><tcp dstportstart='2' srcipmask='8'/><tcp srcipaddr='1.2.3.4'/>")
    assert got.splitlines()[1:3] == ["    <tcp srcipaddr='1.2.3.4' srcipmask='8'/>",
                                     "    <tcp match='no' srcportstart='1' dstportstart='2'/>"]
    # only negated attributes: one element
    assert one_rule("<all match='no' srcmacaddr='1:2:3:4:5:6'/>").splitlines()[1] == \
        "    <all match='no' srcmacaddr='01:02:03:04:05:06'/>"


def test_escaping():
    assert escape('''<a href="x">'&'</a>''') == '&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;'
    got = one_rule('''<udp comment="it's &lt;b&gt; &amp; &quot;q&quot;"/>''').splitlines()[1]
    assert got == "    <udp comment='it&apos;s &lt;b&gt; &amp; &quot;q&quot;'/>"
    assert canon("<filter name='a&amp;b'/>").startswith("<filter name='a&amp;b' chain='root'>")


def test_filterref_parameters_sorted_by_name_lists_in_order():
    text = canon("<filter name='f'><filterref filter='clean-traffic'>"
                 "<parameter name='IP' value='10.0.0.2'/><parameter name='DHCPSERVER' value='10.0.0.1'/>"
                 "<parameter name='IP' value='10.0.0.1'/></filterref></filter>", strict=False)
    assert text == ("<filter name='f' chain='root'>\n"
                    "  <filterref filter='clean-traffic'>\n"
                    "    <parameter name='DHCPSERVER' value='10.0.0.1'/>\n"
                    "    <parameter name='IP' value='10.0.0.2'/>\n"
                    "    <parameter name='IP' value='10.0.0.1'/>\n"
                    "  </filterref>\n"
                    "</filter>\n")


@pytest.mark.parametrize('name', sorted(BUILTIN_FILTERS))
def test_builtin_canonical_form_is_a_strict_fixed_point(name):
    first = canon(BUILTIN_FILTERS[name])
    assert canon(first) == first
    assert "<filter name='%s'" % name in first and '<uuid>' in first


def test_binding_format():
    text = ("<filterbinding>\n"
            "  <portdev name='vnet7'/>\n"
            "  <mac address='52:54:00:AA:0B:0c'/>\n"
            "  <owner><uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid><name>vm&lt;1&gt;</name></owner>\n"
            "  <linkdev name='eth0'/>\n"
            "  <filterref filter='clean-traffic'><parameter name='IP' value='10.0.0.9'/>"
            "<parameter name='CTRL_IP_LEARNING' value='none'/><parameter name='IP' value='10.0.0.8'/></filterref>\n"
            "</filterbinding>\n")
    assert format_binding(parse_binding(text, source='t')) == (
        "<filterbinding>\n"
        "  <owner>\n"
        "    <name>vm&lt;1&gt;</name>\n"
        "    <uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid>\n"
        "  </owner>\n"
        "  <portdev name='vnet7'/>\n"
        "  <linkdev name='eth0'/>\n"
        "  <mac address='52:54:00:aa:0b:0c'/>\n"
        "  <filterref filter='clean-traffic'>\n"
        "    <parameter name='CTRL_IP_LEARNING' value='none'/>\n"
        "    <parameter name='IP' value='10.0.0.9'/>\n"
        "    <parameter name='IP' value='10.0.0.8'/>\n"
        "  </filterref>\n"
        "</filterbinding>\n")
