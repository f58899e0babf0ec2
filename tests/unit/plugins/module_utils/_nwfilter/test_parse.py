# -*- coding: utf-8 -*-
import pytest

from ansible_collections.hypervisor.netfilter.plugins.module_utils._errors import FilterError
from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import (
    FilterRef, parse_binding, parse_filter)


def parse(body, attrs="name='f'", strict=False):
    return parse_filter("<filter %s>%s</filter>" % (attrs, body), strict=strict)


def test_defaults_and_chain_priorities():
    flt = parse('')
    assert (flt.chain, flt.priority, flt.chain_given) == ('root', 0, False)
    assert parse('', "name='f' chain='arp-ip'").priority == -500
    assert parse('', "name='f' chain='rarp'").priority == -400
    assert parse('', "name='f' chain='stp-x'").priority == 0  # libvirt has no stp default
    assert parse('', "name='f' chain='ipv4' priority='-710'").priority == -710
    # Without a chain attribute the priority is validated, then ignored.
    assert parse('', "name='f' priority='-100'").priority == 0


@pytest.mark.parametrize('attrs,attribute', [
    ("name='f' chain='rootx'", 'chain'),
    ("name='f' chain='tcp'", 'chain'),
    ("name='f' chain='ipv4-very-long-name'", 'chain'),
    ("name='f' chain='ipv4;x'", 'chain'),
    ("name='f' chain='ipv4' priority='1001'", 'priority'),
    ("name='f' chain='ipv4' priority='ten'", 'priority'),
])
def test_bad_filter_attributes(attrs, attribute):
    with pytest.raises(FilterError) as info:
        parse('', attrs)
    assert info.value.attribute == attribute
    assert "filter 'f'" in str(info.value)


def test_rule_attributes():
    flt = parse("<rule action='accept' direction='out' priority='2000' statematch='FALSE'><tcp/></rule>"
                "<rule action='drop' direction='inout'/>")
    first, second = flt.rules
    assert (first.priority, first.statematch, first.protocol) == (500, False, 'tcp')
    assert (second.priority, second.protocol) == (500, 'none')


def test_error_names_filter_rule_attribute_and_value():
    with pytest.raises(FilterError) as info:
        parse("<rule action='accept' direction='out'/>"
              "<rule action='accept' direction='in' priority='10'><udp dstportstart='70000'/></rule>")
    message = str(info.value)
    for part in ("filter 'f'", 'rule #2', 'priority 10', "'dstportstart'", "'70000'"):
        assert part in message


@pytest.mark.parametrize('rule', [
    "<rule action='allow' direction='in'/>",
    "<rule action='accept' direction='both'/>",
    "<rule direction='in'/>",
    "<rule action='accept' direction='in'><ip srcportstart='10'/></rule>",
    "<rule action='accept' direction='in'><ip protocol='icmp' srcportstart='10'/></rule>",
])
def test_bad_rules(rule):
    with pytest.raises(FilterError):
        parse(rule)


@pytest.mark.parametrize('text,lenient', [('x', 500), ('0x10', 500), ('', 500), ('5000', 500), (' 100', 100)])
def test_rule_priority_libvirt_cannot_read_is_500_when_lenient_and_refused_when_strict(text, lenient):
    # libvirt (checked with libvirt-oracle) uses 500 for what virStrToLong_i cannot read or is out of range
    rule = "<rule action='accept' direction='in' priority='%s'/>" % text
    assert parse(rule).rules[0].priority == lenient
    if lenient == 500:
        with pytest.raises(FilterError, match="attribute 'priority'"):
            parse(rule, strict=True)
    else:
        assert parse(rule, strict=True).rules[0].priority == lenient


def test_negation_leaders():
    flt = parse("<rule action='drop' direction='out'><tcp match='no' dstportstart='22'/></rule>"
                "<rule action='drop' direction='out'><tcp match='no' srcportstart='1'/><tcp dstportstart='2'/></rule>")
    first, second = flt.rules
    assert not first.get('dstportstart').negated  # follows the absent srcportstart
    assert second.get('srcportstart').negated and second.get('dstportstart').negated


def test_same_protocol_elements_merge_later_wins():
    rule = parse("<rule action='accept' direction='in'><udp srcportstart='1'/><udp srcportstart='2'/>"
                 "<tcp dstportstart='3'/></rule>").rules[0]
    assert rule.protocol == 'udp' and rule.get('srcportstart').text == '2' and rule.get('dstportstart') is None


def test_ipset_fixups():
    rules = parse("<rule action='accept' direction='out'><tcp ipset='s' ipsetflags='src'/></rule>"
                  "<rule action='accept' direction='out'><tcp ipset='s'/></rule>"
                  "<rule action='accept' direction='out'><all ipset='s' ipsetflags='dst'/></rule>").rules
    assert rules[0].get('ipset') is None and not rules[0].ipset_unusable
    assert rules[1].ipset_unusable and rules[1].get('ipsetflags').text == 'src'
    assert rules[2].get('ipset').text == 's'


def test_filterref_parameters_lists_and_invalid_skipped():
    flt = parse("<filterref filter='g'><parameter name='A' value='1'/><parameter name='B' value='x'/>"
                "<parameter name='A' value='2'/><parameter name='bad-name' value='1'/>"
                "<parameter name='C' value='$(x)'/></filterref>")
    assert flt.entries == (FilterRef('g', (('A', ('1', '2')), ('B', ('x',))), flt.entries[0].line),)


@pytest.mark.parametrize('text', [
    '<filter name="f"><rule',
    '<nwfilter name="f"/>',
    '<filter/>',
    '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><filter name="&e;"/>',
])
def test_malformed_documents(text):
    with pytest.raises(FilterError):
        parse_filter(text, strict=False)


def test_binding():
    binding = parse_binding("""<filterbinding><owner><name>vm</name><uuid>d54df46f-1ab5-4a22-8618-4560ef5fac2c</uuid>
      </owner><portdev name='vnet0'/><mac address='52:54:00:AA:bb:1'/>
      <filterref filter='clean-traffic'><parameter name='IP' value='10.0.0.5'/><parameter name='IP' value='10.0.0.6'/>
      </filterref></filterbinding>""", strict=False)
    assert (binding.portdev, binding.mac, binding.filter) == ('vnet0', '52:54:00:aa:bb:01', 'clean-traffic')
    assert binding.parameters == (('IP', ('10.0.0.5', '10.0.0.6')),)
    assert binding.owner_name == 'vm'


def test_filterref_parameter_libvirt_drops_is_dropped_and_listed_in_both_modes():
    # OpenStack nova (stein) writes RASERVER with a /128 prefix length into its instance filter
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import ignored_parameter_notes
    text = ("<filter name='nova-i' chain='root'><filterref filter='nova-base'><parameter name='IP' value='10.0.0.5'/>"
            "<parameter name='RASERVER' value='2001:db8::1/128'/></filterref></filter>")
    for strict in (True, False):
        nwfilter = parse_filter(text, strict=strict)
        (ref,) = nwfilter.entries
        assert ref.parameters == (('IP', ('10.0.0.5',)),)
        assert [item[:2] for item in ref.ignored] == [('RASERVER', '2001:db8::1/128')]
    (note,) = ignored_parameter_notes(nwfilter)
    assert "parameter RASERVER='2001:db8::1/128' of the filterref to 'nova-base' is ignored" in note


def test_binding_keeps_parameters_libvirt_drops_for_the_compiler_to_judge():
    from ansible_collections.hypervisor.netfilter.plugins.module_utils._nwfilter.parse import parse_binding
    binding = parse_binding("<filterbinding><owner><name>vm</name><uuid>d217f2d7-5a04-4a35-a6ba-5b9f0e1f0a01</uuid>"
                            "</owner><portdev name='tap1'/><mac address='52:54:00:00:00:01'/>"
                            "<filterref filter='clean-traffic'><parameter name='IP' value='10.0.0.5'/>"
                            "<parameter name='RASERVER' value='fd00::1/128'/></filterref></filterbinding>")
    assert binding.parameters == (('IP', ('10.0.0.5',)), ('RASERVER', ('fd00::1/128',)))
