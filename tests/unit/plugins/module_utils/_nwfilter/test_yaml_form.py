# -*- coding: utf-8 -*-
from __future__ import annotations

import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.format import format_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_filter
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.yaml_form import (
    argument_spec, filter_from_options, filter_to_options, options_xml)

UUID = '5d0e0a7c-1f0c-4e5e-8d4f-6f2a9b3c1d05'


def web():
    return {
        'name': 'web-guest', 'chain': 'root', 'uuid': UUID,
        'filterrefs': [{'filter': 'clean-traffic'}],
        'rules': [
            {'action': 'accept', 'direction': 'in', 'priority': 100, 'tcp': {'dstportstart': 443}},
            {'action': 'accept', 'direction': 'in', 'priority': 110,
             'tcp': {'dstportstart': 22, 'srcipaddr': '192.0.2.0', 'srcipmask': 24, 'state': 'NEW'}},
            {'filter': 'allow-dhcp', 'parameters': {'DHCPSERVER': ['10.0.0.1', '10.0.0.2']}},
            {'action': 'drop', 'direction': 'in', 'priority': 1000, 'all': {}},
        ],
    }


def test_yaml_form_equals_the_xml_it_stands_for():
    xml = (
        "<filter name='web-guest' chain='root'><uuid>%s</uuid><filterref filter='clean-traffic'/>"
        "<rule action='accept' direction='in' priority='100'><tcp dstportstart='443'/></rule>"
        "<rule action='accept' direction='in' priority='110'>"
        "<tcp dstportstart='22' srcipaddr='192.0.2.0' srcipmask='24' state='NEW'/></rule>"
        "<filterref filter='allow-dhcp'><parameter name='DHCPSERVER' value='10.0.0.1'/>"
        "<parameter name='DHCPSERVER' value='10.0.0.2'/></filterref>"
        "<rule action='drop' direction='in' priority='1000'><all/></rule></filter>" % UUID)
    assert format_filter(filter_from_options(web())) == format_filter(parse_filter(xml))


def test_gathered_form_defines_the_same_filter():
    options = filter_to_options(filter_from_options(web()))
    assert options['filterrefs'] == [{'filter': 'clean-traffic'}]
    assert options['rules'][0] == {'action': 'accept', 'direction': 'in', 'priority': 100,
                                   'tcp': {'dstportstart': 443}}
    assert options['rules'][2] == {'filter': 'allow-dhcp', 'parameters': {'DHCPSERVER': ['10.0.0.1', '10.0.0.2']}}
    assert format_filter(filter_from_options(options)) == format_filter(filter_from_options(web()))


def test_negation_statematch_variables_comments_and_dashed_names():
    options = {'name': 'n', 'chain': 'ipv4-x', 'priority': -650, 'rules': [
        {'action': 'return', 'direction': 'out', 'statematch': False,
         'ip': [{'protocol': 'udp', 'comment': 'dns'}, {'match': False, 'dstipaddr': '$DNS[@1]'}]},
        {'action': 'drop', 'direction': 'inout', 'tcp_ipv6': {'match': 'no', 'srcipaddr': 'fd00::', 'srcipmask': 64}},
        {'action': 'accept', 'direction': 'in', 'all-ipv6': {'connlimit_above': 4}},
        {'action': 'accept', 'direction': 'out', 'arp': {'gratuitous': True}},
    ]}
    text = format_filter(filter_from_options(options))
    assert "<filter name='n' chain='ipv4-x' priority='-650'>" in text
    assert "statematch='false'" in text
    assert "<ip protocol='udp' comment='dns'/>" in text and "<ip match='no' dstipaddr='$DNS[@1]'/>" in text
    assert "<tcp-ipv6 match='no' srcipaddr='fd00::' srcipmask='64'/>" in text
    assert "<all-ipv6 connlimit-above='4'/>" in text and "<arp gratuitous='true'/>" in text
    again = filter_to_options(filter_from_options(options))
    assert again['rules'][0]['ip'] == [{'protocol': 'udp', 'comment': 'dns'}, {'match': False, 'dstipaddr': '$DNS[@1]'}]
    assert again['rules'][2]['all_ipv6'] == {'connlimit-above': 4}
    assert format_filter(filter_from_options(again)) == text


@pytest.mark.parametrize('rule,expected', [
    ({'action': 'accept', 'direction': 'in', 'priority': 110, 'tcp': {'dstportstart': 99999}},
     "rules[1] (priority 110), key 'tcp.dstportstart', value '99999': illegal value in <tcp>"),
    ({'action': 'accept', 'direction': 'in', 'tcp': {'srcporttend': 3}},
     "rules[1] (priority 500), key 'tcp.srcporttend', value '3': schema violation: unknown attribute"),
    ({'action': 'accept', 'direction': 'in', 'priority': 2000, 'udp': {}},
     "rules[1] (priority 2000), key 'priority', value '2000': rule priority must be an integer in"),
    ({'action': 'jump', 'direction': 'in'}, "rules[1] (priority 500), key 'action', value 'jump'"),
    ({'action': 'accept', 'direction': 'in', 'tcp': {'dstportstart': None}},
     "rules[1] (priority 500), key 'tcp.dstportstart': a value is required"),
    ({'action': 'accept', 'direction': 'in', 'tcp': {'dstportstart': [1, 2]}},
     "rules[1] (priority 500), key 'tcp.dstportstart', value [1, 2]: must be a string, a number or a boolean"),
    ({'action': 'accept', 'direction': 'in', 'tcp': 'x'}, "rules[1] (priority 500), key 'tcp': a protocol takes"),
    ({'action': 'accept', 'direction': 'in', 'bogus': 1}, "rules[1] (priority 500), key 'bogus': unknown key"),
    ({'action': 'accept', 'direction': 'in', 'tcp': {}, 'udp': {}}, "rules[1] (priority 500)"),
])
def test_errors_name_the_rule_index_priority_key_and_value(rule, expected):
    options = {'name': 'e', 'rules': [{'action': 'accept', 'direction': 'in'}, rule]}
    with pytest.raises(FilterError) as refused:
        filter_from_options(options)
    assert expected in str(refused.value), str(refused.value)
    assert "filter 'e'" in str(refused.value) and 'line' not in str(refused.value)


def test_filterref_errors_and_lenient_mode():
    with pytest.raises(FilterError, match=r"filterrefs\[0\], key 'filter': filter must name"):
        filter_from_options({'name': 'e', 'filterrefs': [{'parameters': {'A': '1'}}]})
    # strict: false reads like libvirt: unknown attributes are ignored (and reported from the XML)
    options = {'name': 'e', 'rules': [{'action': 'drop', 'direction': 'out', 'tcp': {'srcporttend': 1,
                                                                                     'dstportstart': 80}}]}
    assert "<tcp dstportstart='80'/>" in format_filter(filter_from_options(options, strict=False))
    assert "srcporttend=\"1\"" in options_xml(options, strict=False)


def test_argument_spec_lists_every_protocol():
    spec = argument_spec()
    rule = spec['rules']['options']
    assert rule['tcp_ipv6'] == {'type': 'raw'}
    assert rule['action']['choices'] == ['drop', 'accept', 'reject', 'return', 'continue']
    assert spec['rules']['required_one_of'] == [('filter', 'action')]
    assert len([k for k in rule if k not in ('action', 'direction', 'priority', 'statematch', 'filter',
                                             'parameters')]) == 24


@pytest.mark.parametrize('options,expected', [
    ({'name': 'e', 'rules': [{'action': 'drop', 'direction': 'in', 'priority': 'abc'}]},
     "filter 'e', rules[0] (priority abc), key 'priority', value 'abc'"),
    ({'name': 'e', 'chain': 'bogus'}, "filter 'e', key 'chain', value 'bogus'"),
    ({'name': 'e', 'uuid': 'nope'}, "filter 'e', key 'uuid', value 'nope'"),
    ({'name': 'e', 'rules': [{'action': 'drop', 'direction': 'in', 'tcp': {'bad key': 1}}]},
     "filter 'e', rules[0] (priority 500), key 'tcp.bad key': not an attribute name"),
])
def test_filter_level_errors_name_the_key(options, expected):
    with pytest.raises(FilterError) as refused:
        filter_from_options(options)
    assert expected in str(refused.value), str(refused.value)
